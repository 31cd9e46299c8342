"""The store of originals in an S3-compatible bucket, shared by any number of stateless nodes.

Layout: `{prefix}originals/{id}` holds the exact bytes of an original, with its facts (format,
size, phash…) as object metadata (`x-amz-meta-*`), so listing and `/info` never decode and
there is no index object to keep in step; `{prefix}previews/{id}` the preview of a large
original (previews.py), written before the original and deleted before it, with a
`preview` flag in the original's metadata;
`{prefix}sources/{hash}` holds remote sources shared between nodes (`cache.sources_in_store`).
Uploads are spooled to a local temp file through SHA-256, checked, then written with one PUT
(multipart above PART bytes): an object appears whole or not at all, and two nodes storing the
same bytes write the same key with the same content, so concurrent identical uploads cannot
corrupt it.

Existence is remembered in process for `storage.consistency_s` seconds: that is the bound on
how long another node may still serve an id deleted here. Absence is not remembered, so an
original stored again after a DELETE is served by every node at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import aiobotocore.session
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError
from cachetools import TTLCache

from ..config import StorageConfig
from ..errors import NotFound, ProxyError
from ..urls import ID_RE, SourceRef
from . import Blob, Describe, Original, Record, ingest, started
from .local import BLOB_RE, _writer_alive

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
PART = 16 * 1024 * 1024  # larger uploads go up in parts of this size (S3 minimum: 5 MiB)
LIST_HEADS = 16  # HEAD requests in flight at once while listing
KNOWN_IDS = 100_000  # ids whose existence is remembered for consistency_s
CONNECTIONS = 64
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


def client(endpoint_url: str | None, region: str | None, *, read_timeout: float = 30) -> Any:
    """An S3 client (an async context manager) with credentials from the standard AWS chain."""
    config = AioConfig(
        max_pool_connections=CONNECTIONS,
        connect_timeout=5,
        read_timeout=read_timeout,
        retries={"max_attempts": 3, "mode": "standard"},
        # Custom endpoints (MinIO, SeaweedFS, Ceph…) rarely serve virtual-host buckets.
        s3={"addressing_style": "path"} if endpoint_url else None,
        # Checksums only where S3 requires them: not every compatible store knows the
        # newer flexible-checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    session = aiobotocore.session.get_session()
    return session.create_client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class StoreUnavailable(ProxyError):
    """The object store failed or cannot be reached: the client may retry."""

    status, title, slug = 503, "Service Unavailable", "store-unavailable"

    def __init__(self, detail: str = "the object store is not available") -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class S3Store:
    """Originals in `bucket` under `prefix`; credentials come from the standard AWS chain
    (environment, shared config files, instance/container roles), never from config.yaml."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        consistency_s: float = 5.0,
        tmp: str | os.PathLike,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self.tmp = Path(tmp)
        self._known: TTLCache[str, Any] | None = (
            TTLCache(KNOWN_IDS, consistency_s) if consistency_s > 0 else None
        )
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    @classmethod
    def from_config(cls, storage: StorageConfig) -> S3Store:
        """Uploads are spooled under `storage.path`/tmp on the node itself."""
        assert storage.bucket, "config validation requires storage.bucket for s3"
        return cls(
            bucket=storage.bucket,
            prefix=storage.prefix,
            endpoint_url=storage.endpoint_url,
            region=storage.region,
            consistency_s=storage.consistency_s,
            tmp=Path(storage.path) / "tmp",
        )

    async def open(self) -> None:
        await asyncio.to_thread(self._open_tmp)
        self._client = await self._stack.enter_async_context(client(self.endpoint_url, self.region))

    def _open_tmp(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            if not _writer_alive(leftover.name):
                leftover.unlink(missing_ok=True)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    def _key(self, image_id: str) -> str:
        return f"{self.prefix}originals/{image_id}"

    # --- existence and records

    def _remember(self, image_id: str, record: Record | None) -> None:
        """Keep what the bucket said of an id for consistency_s; absence is never kept: an
        upload through another node must be served here at once, and a cached "absent" would
        hide it (the bucket is asked again on every request for an id it lacked)."""
        if self._known is None:
            return
        if record is None:
            self._known.pop(image_id, None)
        else:
            self._known[image_id] = record

    async def _head(self, image_id: str) -> Record | None:
        """The record as the bucket says now (no cache)."""
        try:
            head = await self._call("head_object", Bucket=self.bucket, Key=self._key(image_id))
        except NotFound:
            return None
        return _record(image_id, head["ContentLength"], head.get("Metadata", {}))

    async def record(self, image_id: str) -> Record:
        if not ID_RE.match(image_id):
            raise NotFound(f"no image with id {image_id}")
        known = self._known.get(image_id) if self._known is not None else None
        if known is None:
            known = await self._head(image_id)
            self._remember(image_id, known)
        if known is None:
            raise NotFound(f"no image with id {image_id}")
        return known

    async def exists(self, image_id: str) -> bool:
        try:
            await self.record(image_id)
        except NotFound:
            return False
        return True

    # --- reading

    async def open_range(self, image_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        response = await self._get(image_id, Range=f"bytes={start}-{end}")
        return await started(_stream(response["Body"]))

    async def fetch(self, ref: SourceRef) -> Original:
        """The original, and with it (both GETs at once) the preview its record says was kept:
        a render that can use the preview then decodes ~8x fewer bytes."""
        record = await self.record(ref.value)
        original, preview = await asyncio.gather(self._download(ref.value), self._preview(record))
        return Original(
            original, identity=ref.value, tag=ref.value, preview=preview, known=record.header
        )

    async def _download(self, image_id: str) -> bytes:
        response = await self._get(image_id)
        async with response["Body"] as body:
            return await self._guard(body.read())

    async def _preview(self, record: Record) -> bytes | None:
        if not record.preview:  # none was kept: no request at all
            return None
        try:
            blob = await self.get_blob(_preview_name(record.id))
        except ProxyError:
            return None  # renders fall back to the original
        return blob.data if blob is not None else None

    async def _get(self, image_id: str, **kwargs: Any) -> dict[str, Any]:
        if not ID_RE.match(image_id):
            raise NotFound(f"no image with id {image_id}")
        try:
            return await self._call(
                "get_object", Bucket=self.bucket, Key=self._key(image_id), **kwargs
            )
        except NotFound:
            self._remember(image_id, None)
            raise NotFound(f"no image with id {image_id}") from None

    # --- writing

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int, describe: Describe
    ) -> tuple[Record, bool]:
        """Spool through SHA-256 to a local temp file, check it, then PUT it whole."""

        async def existing(image_id: str) -> Record | None:
            # Asked afresh, not from the cache: a stale "exists" must never swallow an upload.
            found = await self._head(image_id)
            self._remember(image_id, found)
            return found

        async def commit(tmp: Path, record: Record, preview: bytes | None) -> None:
            if preview is not None:
                # First: a visible original has its preview already. Removed again (best
                # effort) when the original does not make it.
                await self.put_blob(_preview_name(record.id), preview, {})
            try:
                await self._upload(tmp, record)
            except BaseException:
                if preview is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._delete_preview(record.id))
                raise
            self._remember(record.id, record)

        # Spooled locally (not fsynced: the PUT is what makes it durable), then PUT whole.
        return await ingest(
            chunks, self.tmp, max_bytes=max_bytes, durable=False, describe=describe,
            existing=existing, commit=commit,
        )  # fmt: skip

    async def _upload(self, tmp: Path, record: Record) -> None:
        fields = {
            "Bucket": self.bucket,
            "Key": self._key(record.id),
            "ContentType": record.mime,
            "Metadata": _metadata(record),
        }
        if record.size <= PART:
            body = await asyncio.to_thread(tmp.read_bytes)
            await self._call("put_object", Body=body, **fields)
            return
        upload = await self._call("create_multipart_upload", **fields)
        target = {"Bucket": self.bucket, "Key": fields["Key"], "UploadId": upload["UploadId"]}
        try:
            parts = []
            with open(tmp, "rb") as handle:  # noqa: ASYNC230 - reads go through to_thread
                number = 1
                while part := await asyncio.to_thread(handle.read, PART):
                    done = await self._call("upload_part", PartNumber=number, Body=part, **target)
                    parts.append({"PartNumber": number, "ETag": done["ETag"]})
                    number += 1
            await self._call(
                "complete_multipart_upload", MultipartUpload={"Parts": parts}, **target
            )
        except BaseException:
            # Nothing became visible; free the parts (best effort, even when cancelled).
            with contextlib.suppress(Exception):
                await asyncio.shield(self._call("abort_multipart_upload", **target))
            raise

    async def delete(self, image_id: str) -> None:
        if not ID_RE.match(image_id):
            raise NotFound(f"no image with id {image_id}")
        if await self._head(image_id) is None:
            self._remember(image_id, None)
            raise NotFound(f"no image with id {image_id}")
        # The preview first: an original without one renders from itself, so a failure here
        # leaves a retry-able DELETE and nothing orphaned. A missing key deletes fine in S3.
        await self._delete_preview(image_id)
        await self._call("delete_object", Bucket=self.bucket, Key=self._key(image_id))
        self._remember(image_id, None)

    async def _delete_preview(self, image_id: str) -> None:
        await self._call(
            "delete_object", Bucket=self.bucket, Key=self.prefix + _preview_name(image_id)
        )

    # --- listing

    async def list(self, *, limit: int, after: str | None) -> list[Record]:
        """Keys from ListObjectsV2 (in id order), facts from one HEAD each, LIST_HEADS at once
        (or from the record cache): no sidecar index that could drift from the objects."""
        ids = await self._ids_after(after, limit)
        gate = asyncio.Semaphore(LIST_HEADS)

        async def one(image_id: str) -> Record | None:
            async with gate:
                try:
                    return await self.record(image_id)
                except NotFound:
                    return None  # deleted between the listing and the HEAD

        found = await asyncio.gather(*(one(image_id) for image_id in ids))
        return [record for record in found if record is not None]

    async def _ids_after(self, after: str | None, limit: int) -> list[str]:
        base = self._key("")
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base}
        if after:
            request["StartAfter"] = base + after
        ids: list[str] = []
        while len(ids) < limit:
            request["MaxKeys"] = min(1000, limit - len(ids))
            page = await self._call("list_objects_v2", **request)
            for item in page.get("Contents", []):
                name = item["Key"][len(base) :]
                if ID_RE.match(name):
                    ids.append(name)
            if not page.get("IsTruncated") or not page.get("NextContinuationToken"):
                break
            request["ContinuationToken"] = page["NextContinuationToken"]
        return ids[:limit]

    # --- named side objects

    async def get_blob(self, name: str) -> Blob | None:
        if not BLOB_RE.match(name):
            raise ValueError(f"bad blob name {name!r}")
        try:
            response = await self._call("get_object", Bucket=self.bucket, Key=self.prefix + name)
        except NotFound:
            return None
        async with response["Body"] as body:
            data = await self._guard(body.read())
        return Blob(data, dict(response.get("Metadata", {})))

    async def put_blob(self, name: str, data: bytes, meta: dict[str, str]) -> None:
        if not BLOB_RE.match(name):
            raise ValueError(f"bad blob name {name!r}")
        await self._call(
            "put_object", Bucket=self.bucket, Key=self.prefix + name, Body=data, Metadata=meta
        )

    # --- one place where S3 errors become ours

    async def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        if self._client is None:
            raise StoreUnavailable("the object store is not open")
        return await self._guard(getattr(self._client, operation)(**kwargs))

    async def _guard(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                raise NotFound("no such object") from exc
            log.warning("object store error: %s", exc)
            raise StoreUnavailable(f"the object store answered {code or 'an error'}") from exc
        except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("object store unreachable: %r", exc)
            raise StoreUnavailable() from exc


def _preview_name(image_id: str) -> str:
    return f"previews/{image_id}"


async def _stream(body: Any) -> AsyncGenerator[bytes, None]:
    async with body:
        yield b""  # opened: see started()
        async for chunk in body.iter_chunks(CHUNK):
            yield chunk


_INT_FIELDS = ("width", "height", "bands", "pages", "orientation")
_PLACEHOLDERS = ("blurhash", "thumbhash", "dominant_color")


def _metadata(record: Record) -> dict[str, str]:
    """The facts of a record as x-amz-meta-* values (ASCII strings, lower-case names)."""
    meta = {name: str(getattr(record, name)) for name in _INT_FIELDS}
    meta.update(
        format=record.format,
        mime=record.mime,
        phash=record.phash,
        created=repr(record.created),
        alpha="1" if record.has_alpha else "0",
        preview="1" if record.preview else "0",
    )
    for name in _PLACEHOLDERS:  # ASCII already: base83, base64 and hex
        value = getattr(record, name)
        if value is not None:
            meta[name.replace("_", "-")] = value  # no underscores in header names
    return meta


def _record(image_id: str, size: int, meta: dict[str, str]) -> Record | None:
    try:
        return Record(
            id=image_id,
            format=meta["format"],
            mime=meta["mime"],
            has_alpha=meta["alpha"] == "1",
            preview=meta.get("preview") == "1",  # absent on objects stored before previews
            phash=meta["phash"],
            created=float(meta["created"]),
            size=int(size),
            **{name: int(meta[name]) for name in _INT_FIELDS},
            **{name: meta.get(name.replace("_", "-")) for name in _PLACEHOLDERS},
        )
    except (KeyError, ValueError):
        # Not written by this service (or by a future version it cannot read): not ours.
        log.warning("object %s has no readable image metadata: ignored", image_id)
        return None
