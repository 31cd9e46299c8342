"""An original as the pipeline reads it: its header, and for the formats libvips here does not
read (HEIC, PDF, video, JPEG XL, BMP, ICO) the pixels decoded in the sandbox.

Those decoders are native code fed bytes nobody vouches for, so they run in a child process
with CPU, memory and wall-clock limits (decoders/sandbox.py): a crash or a hang costs the
request that brought the bytes (422 or 504) and nothing else. What comes back is an
uncompressed TIFF of the upright pixels of one page or frame, which then goes through the
same pipeline as any TIFF; the header keeps the original's format, page count and duration.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cachetools

from . import imaging
from .decoders.sandbox import Limits, Sandbox
from .errors import BadRequest
from .imaging import Header, Source

# Sniffed family → the function (of decoders/formats.py) the child runs on it.
DECODERS = {
    kind: f"proxy.decoders.formats:{function}"
    for kind, function in (
        ("heic", "heic"), ("pdf", "pdf"), ("video", "video"), ("jxl", "jxl"),
        ("bmp", "raster"), ("ico", "raster"),
    )
}  # fmt: skip

_sandbox = Sandbox()


def configure(limits: Limits) -> None:
    """Process-wide, at start-up: how much one decode may cost, and how many run at once."""
    global _sandbox
    _sandbox = Sandbox(limits)


@dataclass(frozen=True, slots=True)
class Pending:
    """A sandboxed original whose header is known (remembered from an earlier decode) and
    whose pixels are decoded only if the render needs them: a thumbnail its preview serves
    never starts the decoder."""

    data: Source
    options: dict[str, object]

    def pixels(self) -> bytes:
        return _decode(self.data, self.options)[1]


# Headers of sandboxed originals by (identity, page, at): bytes by their hash, files by
# inode, size and mtime, so that what is under a key never changes.
_headers: cachetools.LRUCache[tuple, Header] = cachetools.LRUCache(maxsize=4096)
_headers_lock = threading.Lock()


def pixels(source: Source | Pending) -> Source:
    """The bytes a loader reads: a Pending original is decoded now."""
    return source.pixels() if isinstance(source, Pending) else source


def open_source(
    source: Source,
    *,
    allow_svg: bool,
    max_pixels: int,
    page: int | None = None,
    at: float | None = None,
    box: tuple[int | None, int | None] | None = None,
    inside: bool = True,
    known: Callable[[], Header | None] | None = None,
) -> tuple[Source | Pending, Header]:
    """The source the pipeline reads and its header: 415 for what is not an image we read,
    422 for what is corrupt or over `max_pixels` (checked before pixels are decoded), 400
    for a `page` past the end.

    For a sandboxed format the header is the original's (a PDF page's size in points) and the
    source is the decoded TIFF, or a Pending one when the header was known. `box` (output
    pixels) sets the density a PDF page is drawn at: to fit `inside` it, else to cover it.
    `known` gives the header a store recorded at upload (of the default page and frame).
    """
    kind = imaging.sniff(imaging.read_head(source))
    decoder = DECODERS.get(kind)
    if decoder is None:
        header, _ = imaging.read_header(source, allow_svg=allow_svg, max_pixels=max_pixels)
        if page is not None:
            if page > header.pages:
                pages = f"{header.pages} page" + ("s" if header.pages > 1 else "")
                raise BadRequest(f"'page/{page}': the image has {pages}")
            if page > 1:  # pages of one file may differ in size
                header, _ = imaging.read_header(
                    source, allow_svg=allow_svg, max_pixels=max_pixels, page=page - 1
                )
        return source, header
    options = {
        "decoder": decoder, "max_pixels": max_pixels, "page": page, "at": at,
        "box": list(box) if box else None, "inside": inside,
    }  # fmt: skip
    key = (_identity(source), page, at)
    with _headers_lock:
        header = _headers.get(key)
    if header is None and known is not None and page is None and at is None:
        header = known()
        if header is not None and header.format in imaging.RASTERISED:
            with _headers_lock:
                _headers[key] = header
        else:
            header = None
    # One page or frame is all that is ever decoded of these: that is what the limit bounds.
    if header is not None and header.width * header.height <= max_pixels:
        return Pending(source, options), header
    header, raster = _decode(source, options)
    with _headers_lock:
        _headers[key] = header
    return raster, header


def _decode(source: Source, options: dict[str, object]) -> tuple[Header, bytes]:
    options = dict(options)
    decoder = options.pop("decoder")
    facts, raster = _sandbox.run(decoder, _read(source), **options)
    image = imaging.open_image(raster, "tiff", access="sequential")
    header = Header(
        facts["format"],
        int(facts["width"]),
        int(facts["height"]),
        int(facts.get("pages", 1)),
        image.bands,
        bool(image.hasalpha()),
        1,
        facts.get("duration"),
    )
    return header, raster


def _identity(source: Source) -> tuple:
    if isinstance(source, bytes):
        return ("bytes", hashlib.sha256(source).digest())
    try:
        stat = Path(source).stat()
    except FileNotFoundError as exc:
        raise imaging.gone() from exc
    # Not the path: an upload is checked as a temporary file, then renamed into the store.
    return ("file", stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except FileNotFoundError as exc:
        raise imaging.gone() from exc
