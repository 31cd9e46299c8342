"""The content-addressed store of originals on local disk: atomic writes, sidecar metadata."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import BadRequest, InsufficientStorage, NotFound, PayloadTooLarge
from ..metadata import Facts
from ..urls import ID_RE, SourceRef
from . import Original


@dataclass(frozen=True, slots=True)
class Record:
    """A stored original as the API describes it."""

    id: str
    format: str
    mime: str
    width: int
    height: int
    bands: int
    has_alpha: bool
    pages: int
    orientation: int
    size: int
    created: float
    phash: str

    def info(self) -> dict[str, object]:
        """The body of `GET /images/{id}/info`."""
        body = asdict(self)
        del body["created"]
        return body

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "size": self.size,
            "created": self.created,
        }


Describe = Callable[[Path], Awaitable[Facts]]


class LocalStore:
    """Originals under `root/originals/ab/<id>` with `<id>.json` beside; uploads land in
    `root/tmp` first and appear only through an atomic rename, after they were checked."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.originals = self.root / "originals"
        self.tmp = self.root / "tmp"

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self.originals.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        # Partial uploads of a previous run (crash, SIGKILL) are never served: drop them. Not
        # those of a sibling worker process still writing them: it may have started first.
        for leftover in self.tmp.iterdir():
            if not _writer_alive(leftover.name):
                leftover.unlink(missing_ok=True)

    def path(self, image_id: str) -> Path:
        return self.originals / image_id[:2] / image_id

    def _meta_path(self, image_id: str) -> Path:
        return self.originals / image_id[:2] / f"{image_id}.json"

    def exists(self, image_id: str) -> bool:
        # One stat of a hot inode: cheap enough for the event loop, and it makes a DELETE
        # through any worker process visible to all of them at once.
        return self.path(image_id).is_file()

    async def fetch(self, ref: SourceRef) -> Original:
        if not self.exists(ref.value):
            raise NotFound(f"no image with id {ref.value}")
        return Original(self.path(ref.value), identity=ref.value, tag=ref.value)

    async def record(self, image_id: str) -> Record:
        if not ID_RE.match(image_id) or not self.exists(image_id):
            raise NotFound(f"no image with id {image_id}")
        try:
            text = await asyncio.to_thread(self._meta_path(image_id).read_text)
        except FileNotFoundError as exc:
            raise NotFound(f"no image with id {image_id}") from exc
        return Record(**json.loads(text))

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int, describe: Describe
    ) -> tuple[Record, bool]:
        """Stream to a temp file through SHA-256, check it, then rename it into place.

        Returns the record and whether it is new. Nothing is visible until the final rename,
        so a cancelled or failed upload leaves nothing behind.
        """
        tmp = self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            handle = await asyncio.to_thread(open, tmp, "wb")
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"the upload is larger than {max_bytes} bytes")
                    await asyncio.to_thread(_write_hashed, handle, digest, chunk)
                await asyncio.to_thread(_sync, handle)
            finally:
                await asyncio.to_thread(handle.close)
            if size == 0:
                raise BadRequest("the request body is empty: send the image bytes")
            image_id = digest.hexdigest()[:32]
            if self.exists(image_id):
                return await self.record(image_id), False
            facts = await describe(tmp)
            record = Record(
                id=image_id, size=size, created=round(time.time(), 3), **facts.as_dict()
            )
            await asyncio.to_thread(self._commit, tmp, record)
            return record, True
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise InsufficientStorage("no space left to store the image") from exc
            raise
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    def _commit(self, tmp: Path, record: Record) -> None:
        final = self.path(record.id)
        final.parent.mkdir(exist_ok=True)
        meta_tmp = self.tmp / f"{os.getpid()}-{record.id}.{uuid.uuid4().hex}.json"
        with open(meta_tmp, "w") as f:
            json.dump(asdict(record), f)
            f.flush()
            os.fsync(f.fileno())
        # Metadata first: the original's rename is the commit point that makes it visible.
        os.replace(meta_tmp, self._meta_path(record.id))
        os.replace(tmp, final)
        _sync_dir(final.parent)

    async def list(self, *, limit: int, after: str | None) -> list[Record]:
        ids = await asyncio.to_thread(self._ids_after, after, limit)
        records = []
        for image_id in ids:
            try:
                records.append(await self.record(image_id))
            except NotFound:
                continue  # deleted between the listing and the read
        return records

    def _ids_after(self, after: str | None, limit: int) -> list[str]:
        found: list[str] = []
        shards = sorted(p.name for p in self.originals.iterdir() if len(p.name) == 2)
        for shard in shards:
            if after and shard < after[:2]:
                continue
            names = sorted(n for n in os.listdir(self.originals / shard) if ID_RE.match(n))
            found.extend(n for n in names if not after or n > after)
            if len(found) >= limit:
                break
        return found[:limit]

    async def delete(self, image_id: str) -> None:
        if not ID_RE.match(image_id) or not self.exists(image_id):
            raise NotFound(f"no image with id {image_id}")
        await asyncio.to_thread(self._delete, image_id)

    def _delete(self, image_id: str) -> None:
        self.path(image_id).unlink(missing_ok=True)
        self._meta_path(image_id).unlink(missing_ok=True)


def _writer_alive(name: str) -> bool:
    """Whether the temp file `name` (`{pid}-…`) belongs to another process that still runs."""
    pid_text = name.split("-", 1)[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_hashed(handle, digest, chunk: bytes) -> None:
    digest.update(chunk)
    handle.write(chunk)


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
