"""What the `s3:` and `local:` sources share with remote URLs: the one source LRU
(`cache.sources_mb` bounds all of them together) and the check that bytes are an image."""

from __future__ import annotations

from dataclasses import dataclass

from .. import imaging
from ..errors import UnsupportedMediaType
from . import Original


@dataclass(frozen=True, slots=True)
class Kept:
    """An original in the source LRU. `expires` (time.monotonic()) bounds how long it may be
    served unchecked; `stamp` is what must still match for it to be served at all."""

    original: Original
    expires: float = float("inf")
    stamp: tuple[int, ...] = ()


def check_image(data: bytes, *, allow_svg: bool) -> None:
    """415 unless the bytes sniff as an image this server reads."""
    kind = imaging.sniff(data[: imaging.SNIFF_BYTES])
    if kind is None:
        raise UnsupportedMediaType("the source is not an image in a supported format")
    if kind == "svg" and not allow_svg:
        raise UnsupportedMediaType("SVG input is disabled on this server")
