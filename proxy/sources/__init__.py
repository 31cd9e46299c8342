"""Where originals come from: one small interface over the local store and remote URLs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..urls import SourceRef


@dataclass(frozen=True, slots=True)
class Original:
    """An original ready to render: a file path (zero-copy for libvips) or bytes in memory."""

    data: bytes | Path
    identity: str  # what the ETag is derived from: the id, or the URL plus its validator
    tag: str  # the Cache-Tag / Surrogate-Key for CDN purges


class Source(Protocol):
    async def fetch(self, ref: SourceRef) -> Original: ...
