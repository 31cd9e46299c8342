"""The content-addressed store of originals on local disk: atomic writes, sidecar metadata."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import stat
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import asdict
from pathlib import Path

from ..errors import NotFound
from ..imaging import Header
from ..urls import ID_RE, SourceRef
from . import Blob, Describe, Original, Record, ingest, started

CHUNK = 256 * 1024
# `sources/{hash}`, `previews/{id}`, `results/{etag}`, `jobs/{job}`: never a dot or a slash.
BLOB_RE = re.compile(r"^[a-z]+/[A-Za-z0-9_-]{16,64}$")


class LocalStore:
    """Originals under `root/originals/ab/<id>` with `<id>.json` (and, for large ones, the
    `<id>.preview` working copy) beside; uploads land in `root/tmp` first and appear only
    through an atomic rename, after they were checked."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.originals = self.root / "originals"
        self._originals = os.fspath(self.originals)
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

    def _preview_path(self, image_id: str) -> Path:
        return self.originals / image_id[:2] / f"{image_id}.preview"

    async def close(self) -> None:
        pass

    def _exists(self, image_id: str) -> bool:
        # One stat of a hot inode: cheap enough for the event loop, and it makes a DELETE
        # through any worker process visible to all of them at once. A plain string path:
        # on a cache hit, pathlib's own work cost five times the stat.
        try:
            mode = os.stat(f"{self._originals}/{image_id[:2]}/{image_id}").st_mode
        except OSError:
            return False
        return stat.S_ISREG(mode)

    async def exists(self, image_id: str) -> bool:
        return bool(ID_RE.match(image_id)) and self._exists(image_id)

    async def fetch(self, ref: SourceRef) -> Original:
        if not self._exists(ref.value):
            raise NotFound(f"no image with id {ref.value}")
        preview = self._preview_path(ref.value)
        return Original(
            self.path(ref.value),
            identity=ref.value,
            tag=ref.value,
            preview=preview if preview.is_file() else None,
            known=functools.partial(self._known, ref.value),
        )

    def _known(self, image_id: str) -> Header | None:
        """Blocking: called from the render pool, and only for sandboxed originals."""
        try:
            return Record(**json.loads(self._meta_path(image_id).read_text())).header()
        except (OSError, ValueError, TypeError):
            return None  # no record: the decoder reads the header

    async def record(self, image_id: str) -> Record:
        if not ID_RE.match(image_id) or not self._exists(image_id):
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

        async def existing(image_id: str) -> Record | None:
            return await self.record(image_id) if self._exists(image_id) else None

        async def commit(tmp: Path, record: Record, preview: bytes | None) -> None:
            await asyncio.to_thread(self._commit, tmp, record, preview)

        return await ingest(
            chunks, self.tmp, max_bytes=max_bytes, durable=True, describe=describe,
            existing=existing, commit=commit,
        )  # fmt: skip

    def _commit(self, tmp: Path, record: Record, preview: bytes | None) -> None:
        final = self.path(record.id)
        final.parent.mkdir(exist_ok=True)
        # Sidecars first: the original's rename is the commit point that makes it visible.
        self._write_durably(self._meta_path(record.id), json.dumps(asdict(record)).encode())
        if preview is not None:
            self._write_durably(self._preview_path(record.id), preview)
        os.replace(tmp, final)
        _sync_dir(final.parent)

    def _write_durably(self, path: Path, data: bytes) -> None:
        """Whole or not at all: a temp file, fsynced, renamed over `path`."""
        tmp = self.tmp / f"{os.getpid()}-{path.name}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

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
        if not ID_RE.match(image_id) or not self._exists(image_id):
            raise NotFound(f"no image with id {image_id}")
        await asyncio.to_thread(self._delete, image_id)

    def _delete(self, image_id: str) -> None:
        self.path(image_id).unlink(missing_ok=True)  # first: the id is gone from here on
        self._meta_path(image_id).unlink(missing_ok=True)
        self._preview_path(image_id).unlink(missing_ok=True)

    async def open_range(self, image_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        if not ID_RE.match(image_id):
            raise NotFound(f"no image with id {image_id}")
        try:
            # Opened on the loop (one cheap syscall): an open awaited in a thread could finish
            # after a cancelled request stopped waiting, leaving the file open for nobody.
            handle = open(self.path(image_id), "rb")  # noqa: ASYNC230, SIM115
        except FileNotFoundError as exc:
            raise NotFound(f"no image with id {image_id}") from exc
        return await started(_read_range(handle, start, end))

    # --- named side objects (remote sources shared by the worker processes)

    def _blob_path(self, name: str) -> Path:
        if not BLOB_RE.match(name):
            raise ValueError(f"bad blob name {name!r}")
        return self.root / "blobs" / name

    async def get_blob(self, name: str) -> Blob | None:
        path = self._blob_path(name)
        try:
            return await asyncio.to_thread(_read_blob, path)
        except FileNotFoundError:
            return None

    async def put_blob(self, name: str, data: bytes, meta: dict[str, str]) -> None:
        await asyncio.to_thread(self._put_blob, self._blob_path(name), data, meta)

    def _put_blob(self, path: Path, data: bytes, meta: dict[str, str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One file, metadata line first: a reader sees the old blob or the new, never a mix.
        tmp = self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}.blob"
        try:
            with open(tmp, "wb") as f:
                f.write(json.dumps(meta).encode() + b"\n")
                f.write(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


async def _read_range(handle, start: int, end: int) -> AsyncGenerator[bytes, None]:
    try:
        yield b""  # opened: see started()
        handle.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _read_blob(path: Path) -> Blob:
    raw = path.read_bytes()
    head, _, data = raw.partition(b"\n")
    return Blob(data, json.loads(head))


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


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
