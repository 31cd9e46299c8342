"""Decoders of the formats libvips here does not read. They run in the sandbox's child
(child.py), never in the service: each reads the header, checks it against `max_pixels`
before any pixel is decoded, decodes what was asked for (one page, one frame) and returns
its facts and an uncompressed TIFF of the upright pixels, which the service then reads as it
reads any TIFF.

Facts: `format`, `width` and `height` (upright, of the page or frame; a PDF's at 72 dpi),
`pages`, and `duration` (seconds) for video.
"""

from __future__ import annotations

import io
import math
from typing import Any

from . import AskedWrong

PDF_MAX_SCALE = 300 / 72  # 300 dpi: PDFium's user space is 72 units to the inch


def _check(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"{width}x{height} is not an image size")
    if width * height > max_pixels:
        raise ValueError(f"{width}x{height} pixels is over the limit of {max_pixels} pixels")


def _page(page: int | None, pages: int, noun: str = "page") -> int:
    """The 0-based index of the 1-based `page` (None: the first)."""
    index = 0 if page is None else page - 1
    if index >= pages:
        count = f"{pages} {noun}" + ("s" if pages != 1 else "")
        raise AskedWrong(f"'page/{page}': the file has {count}")
    return index


def _tiff(image: Any) -> bytes:
    """Uncompressed: the service reads it once, in memory, straight after."""
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    out = io.BytesIO()
    image.save(out, format="TIFF")
    return out.getvalue()


def heic(data: bytes, *, max_pixels: int, page: int | None = None, **_: Any) -> tuple[dict, bytes]:
    """HEIC/HEIF (libheif with libde265, from pillow-heif). libheif applies the container's
    rotation and mirroring (irot, imir), which is how an iPhone records its orientation."""
    import pillow_heif

    heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
    index = _page(page, len(heif), "image")
    image = heif[index]
    width, height = image.size
    _check(width, height, max_pixels)
    pil = image.to_pillow()
    facts = {"format": "heic", "width": pil.width, "height": pil.height, "pages": len(heif)}
    return facts, _tiff(pil)


def pdf(
    data: bytes,
    *,
    max_pixels: int,
    page: int | None = None,
    box: list[int | None] | None = None,
    inside: bool = True,
    **_: Any,
) -> tuple[dict, bytes]:
    """One page of a PDF (PDFium, from pypdfium2, built without JavaScript or XFA), at the
    density that fits it `inside` `box` (width, height; either None) or else covers it, at
    most 300 dpi and `max_pixels`; 72 dpi when there is no box. White behind the page, as a
    viewer shows it."""
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    index = _page(page, len(document))
    sheet = document[index]
    width, height = sheet.get_size()
    # The page as /info reports it (72 dpi) is what the limit bounds, as an image's header.
    _check(max(1, round(width)), max(1, round(height)), max_pixels)
    scale = 1.0
    if box:
        wanted = [b / side for b, side in zip(box, (width, height), strict=True) if b]
        if wanted:
            scale = min(min(wanted) if inside else max(wanted), PDF_MAX_SCALE)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    if out_w * out_h > max_pixels:  # a box is a wish for sharpness: drawn within the limit
        scale = math.sqrt(max_pixels / (width * height))
        out_w, out_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    _check(out_w, out_h, max_pixels)
    # PDFium rounds the bitmap's size up: aim a hair under the whole number of pixels.
    exact = (out_w - 1e-6) / width
    pil = sheet.render(scale=exact, may_draw_forms=False).to_pil()
    facts = {
        "format": "pdf",
        "width": max(1, round(width)),
        "height": max(1, round(height)),
        "pages": len(document),
    }
    return facts, _tiff(pil)


def video(data: bytes, *, max_pixels: int, at: float | None = None, **_: Any) -> tuple[dict, bytes]:
    """The frame shown at `at` seconds (default 1 s, or the first frame of a shorter video;
    past the end, the last frame), from FFmpeg (PyAV). Decoding starts at the keyframe
    before `at` and stops at the frame asked for."""
    import av

    _check_complete(data)
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        _check(width, height, max_pixels)
        duration = _duration(container, stream)
        target = at if at is not None else (1.0 if duration is None or duration >= 1.0 else 0.0)
        if target > 0 and stream.time_base:
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        shown = None
        for frame in container.decode(stream):
            if shown is not None and frame.time is not None and frame.time > target + 1e-6:
                break
            shown = frame
        if shown is None:
            raise ValueError("the video has no frame that decodes")
        pil = shown.to_image()
        rotation = getattr(shown, "rotation", 0) or 0
        if rotation % 360:
            # FFmpeg's display matrix angle is counter-clockwise, as PIL's rotate() is.
            pil = pil.rotate(rotation, expand=True)
    fmt = "webm" if data[:4] == b"\x1a\x45\xdf\xa3" else "mp4"
    if fmt == "webm" and b"webm" not in data[:64]:
        fmt = "mkv"
    elif data[8:10] == b"qt":
        fmt = "mov"
    facts = {"format": fmt, "width": pil.width, "height": pil.height, "pages": 1}
    if duration is not None:
        facts["duration"] = round(duration, 3)
    return facts, _tiff(pil)


def _check_complete(data: bytes) -> None:
    """A truncated video still yields the frames before the cut, so FFmpeg does not refuse
    it: the container's own sizes tell. Top-level ISO BMFF boxes must end at the end of the
    file; the EBML header and the Segment of WebM/Matroska must fit in it (a Segment of
    unknown size, as a live recording writes, is taken as it comes)."""
    pos, end = 0, len(data)
    if data[:4] == b"\x1a\x45\xdf\xa3":
        while pos < end:
            pos, _ = _vint(data, pos)  # the element ID
            pos, size = _vint(data, pos)
            if size is None:
                return
            pos += size
    else:
        while pos + 8 <= end:
            size = int.from_bytes(data[pos : pos + 4], "big")
            if size == 1:
                size = int.from_bytes(data[pos + 8 : pos + 16], "big")
            elif size == 0:
                size = end - pos
            if size < 8:
                raise ValueError("the video's container is damaged")
            pos += size
    if pos != end:
        raise ValueError("the video is truncated")


def _vint(data: bytes, pos: int) -> tuple[int, int | None]:
    """An EBML variable-length integer at `pos`: (the position after it, its value, None for
    the all-ones 'unknown')."""
    if pos >= len(data) or data[pos] == 0:
        raise ValueError("the video is truncated")
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        raise ValueError("the video is truncated")
    value = data[pos] & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return pos + length, (None if value == (1 << (7 * length)) - 1 else value)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return None


def jxl(data: bytes, *, max_pixels: int, **_: Any) -> tuple[dict, bytes]:
    """JPEG XL (libjxl, from imagecodecs); libjxl applies the orientation it records."""
    import imagecodecs
    import numpy as np
    from PIL import Image

    from .jxlheader import size

    width, height = size(data)
    _check(width, height, max_pixels)
    pixels = imagecodecs.jpegxl_decode(data)
    if pixels.dtype != np.uint8:
        top = np.iinfo(pixels.dtype).max if pixels.dtype.kind in "ui" else 1.0
        pixels = np.clip(pixels.astype(np.float32) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    pil = Image.fromarray(pixels)
    return {"format": "jxl", "width": pil.width, "height": pil.height, "pages": 1}, _tiff(pil)


def raster(data: bytes, *, max_pixels: int, **_: Any) -> tuple[dict, bytes]:
    """BMP and ICO (Pillow). Of an icon's sizes, the largest."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # our own check below, from the header
    with Image.open(io.BytesIO(data), formats=("BMP", "DIB", "ICO")) as image:
        _check(image.width, image.height, max_pixels)
        image.load()
        fmt = "ico" if image.format == "ICO" else "bmp"
        facts = {"format": fmt, "width": image.width, "height": image.height, "pages": 1}
        return facts, _tiff(image)
