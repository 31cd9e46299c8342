"""The results store: rendered images kept, so a restart (or another node) serves them unrendered.

Enabled by `cache.results_in_store`. With the local backend, results live on the node's disk
(`ResultStore`, below); with `storage.backend: s3` in the bucket under `{prefix}results/{etag}`
(`BucketResults`), so N nodes render each variant once, not N times; expiry there is a bucket
lifecycle rule on that prefix (README), not `cache.results_store_mb`. Both hold the same bytes:
a header line, then the encoded image.

On disk: One file per result, `{root}/{etag[:2]}/{etag}`, named by
the result's ETag (which already names the source identity, the canonical operations, the
output format and the service version). A file is a short header line with the facts a
`Result` needs (format, mime, size, pages, bands, alpha, body length) followed by the encoded
bytes: one file, so one atomic rename makes a result visible and one unlink removes it, and no
sidecar can outlive or precede its image.

Bounded by `cache.results_store_mb`: least recently used first out. Recency is the file's
mtime, touched on read (at most once a minute per file), so every worker process on the node
shares one LRU order. Each process tracks the sizes it knows of in memory (a directory scan at
start, then its own reads and writes); when that total passes the bound it rescans the
directory in a thread and deletes the oldest files down to 90% of it. With several workers the
directory may briefly exceed the bound by what the others wrote since their last scan.

Reachability is not this module's business: a result of a deleted original stays stored until
evicted or expired, but `Renderer.prepare` answers 404 for the deleted id before any lookup
here, and the ETag of any other source names its version.
Writes are not fsynced (this is a cache): a file cut short by a power loss fails the length
check on read and is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import uuid
from pathlib import Path

from . import metrics, ops
from .pipeline import Result
from .sources import Store

log = logging.getLogger("proxy.results")

KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAGIC = b"progimage-result 1 "
# After an eviction the store holds at most this share of its bound: one scan buys room
# for many writes instead of one.
LOW_WATER = 0.9
# A read refreshes a file's mtime (its LRU position) only when older than this: a hot result
# must not cost a metadata write per hit.
TOUCH_AFTER = 60.0
# Temp files older than this at start belong to a crashed writer.
STALE_TMP = 3600.0


class ResultStore:
    """Rendered results on disk under `root`, at most `max_bytes` of them (0: keep none)."""

    def __init__(self, root: str | os.PathLike, max_bytes: int) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.max_bytes = max_bytes
        self._sizes: dict[str, int] = {}
        self._total = 0
        self._recent: dict[str, int] | None = None  # writes seen while an eviction scans
        self._evicting: asyncio.Task | None = None
        self._observe = metrics.cache_observer("results_store")

    @property
    def size(self) -> int:
        """Bytes this process believes the store holds."""
        return self._total

    async def open(self) -> None:
        entries = await asyncio.to_thread(self._open)
        self._sizes = dict(entries)
        self._total = sum(self._sizes.values())

    async def close(self) -> None:
        if self._evicting is not None:
            await asyncio.gather(self._evicting, return_exceptions=True)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / key

    async def get(self, key: str) -> Result | None:
        """The stored result for this ETag, or None."""
        found = None
        if self.max_bytes > 0 and KEY_RE.match(key):
            found = await asyncio.to_thread(self._read, key)
        self._observe(found is not None)
        if found is None:
            return None
        result, size = found
        self._remember(key, size)
        return result

    async def put(self, key: str, result: Result) -> None:
        """Keep `result` under its ETag. A failure to write is logged, never raised: the
        response it belongs to is already good."""
        if self.max_bytes <= 0 or not KEY_RE.match(key):
            return
        header = _header(result)
        size = len(header) + len(result.body)
        if size > self.max_bytes:
            return
        try:
            await asyncio.to_thread(self._write, key, header, result.body)
        except OSError as exc:
            log.warning("results store: cannot write %s: %s", key, exc)
            return
        self._remember(key, size)
        if self._total > self.max_bytes and (self._evicting is None or self._evicting.done()):
            self._evicting = asyncio.create_task(self._evict())

    # --- bookkeeping on the event loop

    def _remember(self, key: str, size: int) -> None:
        self._total += size - self._sizes.get(key, 0)
        self._sizes[key] = size
        if self._recent is not None:
            self._recent[key] = size

    async def _evict(self) -> None:
        self._recent = {}
        try:
            kept = await asyncio.to_thread(self._evict_sync, int(self.max_bytes * LOW_WATER))
        except OSError as exc:
            log.warning("results store: eviction failed: %s", exc)
            return
        finally:
            recent, self._recent = self._recent, None
        sizes = dict(kept)
        for key, size in (recent or {}).items():
            sizes.setdefault(key, size)  # written after the scan had passed its shard
        self._sizes = sizes
        self._total = sum(sizes.values())

    # --- file work, in threads

    def _open(self) -> list[tuple[str, int]]:
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        cutoff = time.time() - STALE_TMP
        for leftover in self.tmp.iterdir():
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)
            except FileNotFoundError:
                continue
        return [(key, size) for _mtime, key, size in self._scan()]

    def _scan(self) -> list[tuple[float, str, int]]:
        """Every stored result as (mtime, key, size), least recently used first."""
        found = []
        for shard in os.scandir(self.root):
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                if not KEY_RE.match(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # evicted by another worker meanwhile
                found.append((st.st_mtime, entry.name, st.st_size))
        found.sort()
        return found

    def _evict_sync(self, target: int) -> list[tuple[str, int]]:
        entries = self._scan()
        total = sum(size for _mtime, _key, size in entries)
        first_kept = 0
        for _mtime, key, size in entries:
            if total <= target:
                break
            self.path(key).unlink(missing_ok=True)
            total -= size
            first_kept += 1
        return [(key, size) for _mtime, key, size in entries[first_kept:]]

    def _read(self, key: str) -> tuple[Result, int] | None:
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                mtime = os.fstat(f.fileno()).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None
        result = _parse(data)
        if result is None:
            log.warning("results store: dropping unreadable %s", key)
            path.unlink(missing_ok=True)
            return None
        if time.time() - mtime > TOUCH_AFTER:
            try:
                os.utime(path)
            except FileNotFoundError:
                pass  # evicted meanwhile: we still have the bytes
        return result, len(data)

    def _write(self, key: str, header: bytes, body: bytes) -> None:
        final = self.path(key)
        final.parent.mkdir(exist_ok=True)
        tmp = self.tmp / f"{os.getpid()}-{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as f:
                f.write(header)
                f.write(body)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


class BucketResults:
    """Rendered results as objects `results/{etag}` of the store (the bucket, backend s3).

    Failures of the store are misses on read and are logged on write: a result store is a
    cache, and the response it belongs to is good without it.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._observe = metrics.cache_observer("results_store")

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def get(self, key: str) -> Result | None:
        found = None
        if KEY_RE.match(key):
            try:
                blob = await self.store.get_blob(f"results/{key}")
            except Exception as exc:
                log.warning("results store: cannot read %s: %r", key, exc)
                blob = None
            found = _parse(blob.data) if blob is not None else None
        self._observe(found is not None)
        return found

    async def put(self, key: str, result: Result) -> None:
        if not KEY_RE.match(key):
            return
        try:
            await self.store.put_blob(f"results/{key}", _header(result) + result.body, {})
        except Exception as exc:
            log.warning("results store: cannot write %s: %r", key, exc)


def _header(result: Result) -> bytes:
    facts = {
        "format": result.format,
        "mime": result.mime,
        "width": result.width,
        "height": result.height,
        "pages": result.pages,
        "bands": result.bands,
        "has_alpha": result.has_alpha,
        "length": len(result.body),
    }
    # Only when set: most results have neither, and the header stays as short as before.
    if result.over_budget is not None:
        facts["over_budget"] = result.over_budget
    if result.placeholders is not None:
        facts["placeholders"] = result.placeholders
    if result.faces is not None:
        facts["faces"] = [list(box) for box in result.faces]
    return MAGIC + json.dumps(facts, separators=(",", ":")).encode() + b"\n"


def _parse(data: bytes) -> Result | None:
    """A Result from a stored file, or None when the file is not one whole result."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        facts = json.loads(data[len(MAGIC) : end])
        body = data[end + 1 :]
        if len(body) != facts["length"] or facts["format"] not in ops.MIME_TYPES:
            return None
        return Result(
            body=body,
            format=facts["format"],
            width=int(facts["width"]),
            height=int(facts["height"]),
            pages=int(facts["pages"]),
            bands=int(facts["bands"]),
            has_alpha=bool(facts["has_alpha"]),
            process_ms=0.0,
            encode_ms=0.0,
            # Absent from files written before `maxbytes` and placeholders existed.
            over_budget=facts.get("over_budget"),
            placeholders=facts.get("placeholders"),
            faces=tuple(tuple(box) for box in facts["faces"]) if "faces" in facts else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
