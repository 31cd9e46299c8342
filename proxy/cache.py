"""Result identity and the in-process cache: ETags from canonical paths, bytes-bounded LRU."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import LRUCache

from . import __version__

V = TypeVar("V")


def result_key(
    canonical_path: str, identity: str, negotiated: str | None, settings: str = ""
) -> str:
    """The strong ETag value (without quotes) of one derived image.

    A function of the source identity, the canonical operations, the negotiated output
    format, the service version and the encoder `settings` the URL does not name (default
    quality, effort, metadata), so neither a new release nor a new config serves stale renders.
    """
    material = "\n".join((__version__, identity, canonical_path, negotiated or "-", settings))
    digest = hashlib.sha256(material.encode()).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def url_tag(url: str) -> str:
    """A purge tag for a remote source: the first 128 bits of the SHA-256 of its URL."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match semantics (weak comparison, as RFC 9110 asks for this header)."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = (c.strip() for c in header.split(","))
    return any(c.removeprefix("W/") == etag for c in candidates)


class BytesLRU(Generic[V]):
    """An LRU bounded by the total size of its values, not by their count."""

    def __init__(
        self,
        max_bytes: int,
        size_of: Callable[[V], int],
        observe: Callable[[bool], None] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._observe = observe
        self._lru: LRUCache | None = (
            LRUCache(maxsize=max_bytes, getsizeof=size_of) if max_bytes > 0 else None
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> V | None:
        value = self._lru.get(key) if self._lru is not None else None
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        if self._observe is not None:
            self._observe(value is not None)
        return value

    def put(self, key: str, value: V) -> None:
        if self._lru is None:
            return
        try:
            self._lru[key] = value
        except ValueError:
            pass  # larger than the whole cache: serve it, do not keep it

    def discard_where(self, predicate: Callable[[str, V], bool]) -> None:
        if self._lru is None:
            return
        for key in [k for k, v in self._lru.items() if predicate(k, v)]:
            self._lru.pop(key, None)

    @property
    def size(self) -> int:
        return int(self._lru.currsize) if self._lru is not None else 0
