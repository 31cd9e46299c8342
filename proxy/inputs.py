"""An original as the pipeline reads it: its header, and for the formats libvips here does not
read (HEIC, PDF, video, JPEG XL, BMP, ICO) the pixels decoded in the sandbox.

Those decoders are native code fed bytes nobody vouches for, so they run in a child process
with CPU, memory and wall-clock limits (decoders/sandbox.py): a crash or a hang costs the
request that brought the bytes (422 or 504) and nothing else. What comes back is an
uncompressed TIFF of the upright pixels of one page or frame, which then goes through the
same pipeline as any TIFF; the header keeps the original's format, page count and duration.
"""

from __future__ import annotations

from pathlib import Path

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


def sandboxed(source: Source) -> bool:
    return imaging.sniff(imaging.read_head(source)) in DECODERS


def open_source(
    source: Source,
    *,
    allow_svg: bool,
    max_pixels: int,
    page: int | None = None,
    at: float | None = None,
    box: tuple[int | None, int | None] | None = None,
) -> tuple[Source, Header]:
    """The source the pipeline reads and its header: 415 for what is not an image we read,
    422 for what is corrupt or over `max_pixels` (checked before pixels are decoded), 400
    for a `page` past the end. `box` (output pixels) sets the density a PDF page is drawn
    at; `at` the second of a video's frame."""
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
    data = _read(source)
    facts, raster = _sandbox.run(
        decoder,
        data,
        max_pixels=max_pixels,
        page=page,
        at=at,
        box=list(box) if box else None,
    )
    image = imaging.open_image(raster, "tiff", access="sequential")
    header = Header(
        facts["format"],
        image.width,
        image.height,
        int(facts.get("pages", 1)),
        image.bands,
        bool(image.hasalpha()),
        1,
        facts.get("duration"),
    )
    return raster, header


def _read(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        return Path(source).read_bytes()
    except FileNotFoundError as exc:
        raise imaging.gone() from exc
