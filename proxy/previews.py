"""Previews: a small working copy kept beside each large original.

Most derived images are far smaller than their originals (thumbnails, srcset widths of a
camera photo). Even with shrink-on-load, a 12-megapixel JPEG costs its whole entropy decode
on every render (~25 ms of W1's ~30 ms in `make bench`). So at upload, when the original is
decoded anyway to check it and hash it, we keep an upright 8-bit sRGB copy at most EDGE
pixels on a side; renders whose output is at most half its size read that instead.

A render from the preview is as close to a reference made from the fully decoded original as
the render from the original itself (tests/test_previews.py): both are reductions of the same
pixels, and the preview's own JPEG loss vanishes in the further 2x (or more) reduction.
"""

from __future__ import annotations

import pyvips

from . import imaging, inputs
from .errors import ProxyError
from .imaging import Header, Source

EDGE = 1024  # the preview fits in EDGE x EDGE…
DCT_EDGE = 768  # …but a JPEG's DCT-scaled decode whose long side is at least this is kept as is
MIN_EDGE = 2 * EDGE  # smaller originals decode fast enough on their own
# Single-frame formats a preview can stand in for (animations keep every frame).
FORMATS = frozenset({"jpeg", "png", "webp", "tiff", "avif"})
# Measured on W1's photograph: a Q85 preview is ~225 KB for 12 MP, and W1 renders from it differ
# from renders of the original by 1.6 levels in 255 on average (Q92: 380 KB, 1.4 levels).
JPEG_QUALITY = 85
WEBP_QUALITY = 85


def eligible(header: Header) -> bool:
    """Large originals; and every one the sandbox decodes, whatever its size, since starting
    the decoder's process costs more than most renders (of a PDF, page 1; of a video, the
    default frame)."""
    if header.format in imaging.RASTERISED:
        return True
    return (
        header.pages == 1
        and header.format in FORMATS
        and max(header.width, header.height) >= MIN_EDGE
    )


def working_copy(source: Source | inputs.Pending, header: Header) -> pyvips.Image:
    """The preview's pixels, in memory: one shrink-on-load decode of the whole original."""
    source = inputs.pixels(source)
    fail_on = imaging.fail_on(header.format)
    shrink = _dct_shrink(header)
    if shrink > 1:
        img = imaging.open_image(source, "jpeg", shrink=shrink, fail_on=fail_on).autorot()
        if max(img.width, img.height) > EDGE:
            img = img.thumbnail_image(EDGE, height=EDGE)
    else:
        # A sandboxed original gets a preview whatever its size: never an enlarged one. The
        # face detector's copy of a small native original stays as it was (enlarged to EDGE).
        size = "down" if header.format in imaging.RASTERISED else "both"
        img = imaging.thumbnail(source, EDGE, height=EDGE, size=size, fail_on=fail_on)
    return imaging.to_srgb(img).copy_memory()


def _dct_shrink(header: Header) -> int:
    """The largest JPEG DCT scale whose decode keeps a long side of DCT_EDGE or more."""
    if header.format != "jpeg":
        return 1
    edge = max(header.width, header.height)
    return next((s for s in (8, 4, 2) if edge // s >= DCT_EDGE), 1)


def encode(img: pyvips.Image) -> bytes:
    keep = pyvips.enums.ForeignKeep.NONE
    if img.hasalpha():
        # Lossless alpha: edges of cut-outs must not shift between preview and original.
        return img.webpsave_buffer(Q=WEBP_QUALITY, alpha_q=100, effort=2, keep=keep)
    return img.jpegsave_buffer(Q=JPEG_QUALITY, keep=keep, optimize_coding=True)


def expected_size(header: Header) -> tuple[int, int]:
    """The size working_copy() gives this original (upright), to within a pixel."""
    width, height = header.width, header.height
    shrink = _dct_shrink(header)
    if shrink > 1:
        width, height = -(-width // shrink), -(-height // shrink)
    if max(width, height) > EDGE:
        scale = EDGE / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def would_serve(header: Header, scaled: tuple[int, int]) -> bool:
    """Whether a preview of this original would stand in for an output of `scaled`."""
    if not eligible(header):
        return False
    width, height = expected_size(header)
    return _covers((width - 1, height - 1), scaled)  # a pixel of slack for the rounding


def _covers(size: tuple[int, int], scaled: tuple[int, int]) -> bool:
    """At least twice `scaled` on each side: the final reduction hides the preview's loss."""
    return scaled[0] * 2 <= size[0] and scaled[1] * 2 <= size[1]


def stand_in(
    preview: Source | None, original: Header, scaled: tuple[int, int]
) -> tuple[Source, Header] | None:
    """The preview and its header when it has at least twice the pixels of `scaled` on each
    side (an upright size), else None. A preview that cannot be read is simply not used."""
    if preview is None:
        return None
    fmt = "webp" if original.has_alpha else "jpeg"  # as encode() wrote it
    try:
        image = imaging.open_image(preview, fmt, access="sequential")
    except ProxyError:
        return None
    if not _covers((image.width, image.height), scaled):
        return None
    return preview, Header(fmt, image.width, image.height, 1, image.bands, original.has_alpha, 1)
