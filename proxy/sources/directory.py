"""`local:///{path}`: image files read from a directory the server is given, never outside it.

The URL's path has passed paths.local_path (no `..`, no absolute path, no odd encodings) before
it gets here; what is left is the file system's own way out: symlinks. A path is resolved with
realpath and refused (403) unless it stays under the root's realpath; the file is then opened
without following a final symlink, and the path the kernel says it opened (/proc/self/fd) is
checked again, so a symlink swapped in between the check and the open gains nothing.

The ETag names the file's size, mtime and inode: a file changed in place or replaced gets a new
one. Bytes are kept in the shared source LRU while those still match, so another transform of
an unchanged file costs one open and fstat, not a read. All file work runs in threads.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat

from .. import cache, paths
from ..config import Config
from ..errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from ..urls import SourceRef
from . import Original
from .kept import Kept, check_image

PREFIX = "local:///"
READ_ATTEMPTS = 3  # a file rewritten while it is read is read again, this many times at most


class DirectorySource:
    """Files under `sources.local.root`; every `local:` URL is 403 when it is unset."""

    def __init__(self, config: Config, kept: cache.BytesLRU) -> None:
        root = config.sources.local.root
        self.root = os.path.realpath(root) if root else None
        self.max_bytes = config.limits.max_source_bytes
        self.allow_svg = config.sources.allow_svg
        self.kept = kept  # shared with the other sources: one cache.sources_mb for all
        self.reads = 0  # files actually read (not answered from the LRU)

    async def fetch(self, ref: SourceRef) -> Original:
        if self.root is None:
            raise Forbidden("local: sources are off (set sources.local.root)")
        relative = ref.value.removeprefix(PREFIX)
        paths.check_plain(relative, "local:")  # parsed already; cheap to be sure
        known = self.kept.get(ref.value)
        found = await asyncio.to_thread(self._read, relative, known)
        if found is not known:
            self.kept.put(ref.value, found)
        return found.original

    def _read(self, relative: str, known: Kept | None) -> Kept:
        fd = self._open(relative)
        try:
            for attempt in range(READ_ATTEMPTS):
                before = os.fstat(fd)
                stamp = (before.st_size, before.st_mtime_ns, before.st_ino, before.st_dev)
                if known is not None and known.stamp == stamp:
                    return known
                if before.st_size > self.max_bytes:
                    raise PayloadTooLarge(f"the file is larger than {self.max_bytes} bytes")
                data = os.pread(fd, before.st_size + 1, 0)
                after = os.fstat(fd)
                if len(data) > self.max_bytes:
                    raise PayloadTooLarge(f"the file is larger than {self.max_bytes} bytes")
                same = (after.st_size, after.st_mtime_ns) == stamp[:2] and len(data) == stamp[0]
                if same or attempt == READ_ATTEMPTS - 1:
                    break
        finally:
            os.close(fd)
        self.reads += 1
        check_image(data, allow_svg=self.allow_svg)
        value = PREFIX + relative
        identity = f"{value}\nsize={stamp[0]} mtime_ns={stamp[1]} ino={stamp[2]}"
        original = Original(data, identity=identity, tag=cache.url_tag(value))
        return Kept(original, stamp=stamp)

    def _open(self, relative: str) -> int:
        """An fd of the regular file at `relative` under the root, or the right refusal."""
        assert self.root is not None
        real = os.path.realpath(os.path.join(self.root, relative))
        if not _inside(real, self.root):
            raise Forbidden("local: the path leads out of sources.local.root")
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # FIFOs never block
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise _refusal(exc) from None
        try:
            opened = _opened_path(fd)
            if opened is not None and not _inside(opened, self.root):
                raise Forbidden("local: the path leads out of sources.local.root")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotFound("local: no such file (not a regular file)")
        except BaseException:
            os.close(fd)
            raise
        return fd


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _opened_path(fd: int) -> str | None:
    """What the kernel says `fd` is (Linux); None where /proc is not there to ask."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _refusal(exc: OSError) -> Exception:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound("local: no such file")
    if exc.errno == errno.ELOOP:  # the last component became a symlink after realpath
        return Forbidden("local: the path leads out of sources.local.root")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return Forbidden("local: the file cannot be read by the server")
    if exc.errno == errno.ENAMETOOLONG:
        return BadRequest("local: the path is too long")
    return exc
