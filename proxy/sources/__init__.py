"""Where originals come from: one small interface over the stores and remote URLs."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import BadRequest, InsufficientStorage, PayloadTooLarge
from ..imaging import Header
from ..metadata import Facts
from ..urls import SourceRef

if TYPE_CHECKING:
    from ..config import StorageConfig


@dataclass(frozen=True, slots=True)
class Original:
    """An original ready to render: a file path (zero-copy for libvips) or bytes in memory."""

    data: bytes | Path
    identity: str  # what the ETag is derived from: the id, or the URL plus its validator
    tag: str  # the Cache-Tag / Surrogate-Key for CDN purges
    preview: bytes | Path | None = None  # a small working copy (see previews.py), if kept
    # The stored record's header, read only when asked: a render of a sandboxed original
    # (inputs.py) whose preview serves it then never starts the decoder, in any process.
    known: Callable[[], Header | None] | None = None


class Source(Protocol):
    async def fetch(self, ref: SourceRef) -> Original: ...


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
    preview: bool = False  # a preview was kept beside it (previews.py); records before: none
    blurhash: str | None = None  # placeholders (placeholders.py); records before: none
    thumbhash: str | None = None
    dominant_color: str | None = None
    duration: float | None = None  # seconds, of a video

    def header(self) -> Header:
        """What the upload's check read from the original's header."""
        return Header(
            self.format, self.width, self.height, self.pages, self.bands, self.has_alpha,
            self.orientation, self.duration,
        )  # fmt: skip

    def info(self) -> dict[str, object]:
        """The body of `GET /images/{id}/info`."""
        body = asdict(self)
        del body["created"], body["preview"]
        if body["duration"] is None:
            del body["duration"]
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


@dataclass(frozen=True, slots=True)
class Blob:
    """A small named object kept beside the originals (a remote source shared by all nodes)."""

    data: bytes
    meta: dict[str, str] = field(default_factory=dict)


async def started(chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """Run a chunk generator up to its first `yield b""`, after it has acquired its resource:
    from then on `aclose()` releases it even if no chunk is ever read."""
    await anext(chunks)
    return chunks


# Checks an upload spooled to a local file: raises (415, 422…) or returns its facts and,
# for a large original, the encoded preview to keep beside it (previews.py).
Describe = Callable[[Path], Awaitable[tuple[Facts, bytes | None]]]


class Store(Protocol):
    """The originals, wherever they live: a local directory or an S3-compatible bucket.

    Ids are content hashes, so an original never changes once stored; it only appears
    (`put`) or disappears (`delete`). Nothing here hands out local paths except `fetch`,
    which may return one for zero-copy rendering.
    """

    tmp: Path  # on this node: request bodies in flight are spooled here

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def exists(self, image_id: str) -> bool:
        """Whether the id is stored; may be up to `storage.consistency_s` seconds stale."""
        ...

    async def record(self, image_id: str) -> Record:
        """The stored facts of an original (no decode); NotFound when absent."""
        ...

    async def put(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int, describe: Describe
    ) -> tuple[Record, bool]:
        """Hash, cap, check and store an upload; the record and whether it is new."""
        ...

    async def list(self, *, limit: int, after: str | None) -> list[Record]:
        """Up to `limit` records ordered by id, those after `after` only."""
        ...

    async def delete(self, image_id: str) -> None:
        """Remove an original; NotFound when absent."""
        ...

    async def open_range(self, image_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes start..end (inclusive) of an original, opened now (NotFound if absent),
        read as the returned iterator is consumed; close it with `aclose()`."""
        ...

    async def fetch(self, ref: SourceRef) -> Original:
        """The original of a stored id, ready to render; NotFound when absent."""
        ...

    async def get_blob(self, name: str) -> Blob | None:
        """A named side object (`sources/…`), or None."""
        ...

    async def put_blob(self, name: str, data: bytes, meta: dict[str, str]) -> None:
        """Store a named side object atomically (last writer wins)."""
        ...


def make_store(storage: StorageConfig) -> Store:
    """The store `storage.backend` names (not opened yet)."""
    if storage.backend == "s3":
        from .s3 import S3Store  # aiobotocore is imported only by nodes that use it

        return S3Store.from_config(storage)
    from .local import LocalStore

    return LocalStore(storage.path)


# Writes go to a thread in batches of this much: one thread hop per body chunk (64-256 KiB)
# cost ~10 % of upload throughput in `make bench`.
SPOOL_BATCH = 1024 * 1024


async def spool(
    chunks: AsyncIterable[bytes], tmp: Path, max_bytes: int, *, durable: bool
) -> tuple[int, str]:
    """Write an upload to `tmp` through SHA-256 under the byte cap: (size, id).

    `durable` fsyncs before returning, for files that become originals by a rename.
    """
    digest = hashlib.sha256()
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    handle = await asyncio.to_thread(open, tmp, "wb")
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"the upload is larger than {max_bytes} bytes")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= SPOOL_BATCH:
                await asyncio.to_thread(_write_hashed, handle, digest, pending)
                pending, pending_size = [], 0
        await asyncio.to_thread(_write_hashed, handle, digest, pending, durable)
    finally:
        await asyncio.to_thread(handle.close)
    if size == 0:
        raise BadRequest("the request body is empty: send the image bytes")
    return size, digest.hexdigest()[:32]


def _write_hashed(handle, digest, chunks: list[bytes], sync: bool = False) -> None:
    for chunk in chunks:
        digest.update(chunk)
        handle.write(chunk)
    if sync:
        handle.flush()
        os.fsync(handle.fileno())


async def ingest(
    chunks: AsyncIterable[bytes],
    tmp_dir: Path,
    *,
    max_bytes: int,
    durable: bool,
    describe: Describe,
    existing: Callable[[str], Awaitable[Record | None]],
    commit: Callable[[Path, Record, bytes | None], Awaitable[None]],
) -> tuple[Record, bool]:
    """The upload flow every store shares: spool through SHA-256 to a temp file, return the
    stored record if those bytes are there already, else check them and commit.

    Returns the record and whether it is new. The temp file is always removed, so a
    cancelled or refused upload leaves nothing behind.
    """
    tmp = tmp_dir / f"{os.getpid()}-{uuid.uuid4().hex}.part"
    try:
        size, image_id = await spool(chunks, tmp, max_bytes, durable=durable)
        found = await existing(image_id)
        if found is not None:
            return found, False
        facts, preview = await describe(tmp)
        record = Record(
            id=image_id, size=size, created=round(time.time(), 3), preview=preview is not None,
            **facts.as_dict(),
        )  # fmt: skip
        await commit(tmp, record, preview)
        return record, True
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise InsufficientStorage("no space left to store the image") from exc
        raise
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)
