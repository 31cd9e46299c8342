"""The only place libvips is configured: loaders allowed, format sniffing, headers, encoders."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import imagecodecs
import numpy as np
import pyvips

from .config import ChromaConfig, EffortConfig
from .errors import NotFound, Unprocessable, UnsupportedMediaType

Source = bytes | Path

# Loaders by sniffed format. Bytes that sniff as none of these are refused before libvips sees
# them, so untrusted bytes only ever reach these (never matrix, csv, fits, vips, ppm…). Header
# reads and shrink-on-load decodes call them by name; thumbnail() of other formats lets
# libvips pick, and these magic numbers are claimed by these loaders only.
_LOADER_PREFIX = {
    "jpeg": "jpegload",
    "png": "pngload",
    "webp": "webpload",
    "gif": "gifload",
    "tiff": "tiffload",
    "heif": "heifload",
    "svg": "svgload",
}


def configure(*, vips_concurrency: int = 1, allow_svg: bool = False) -> None:
    """Process-wide libvips settings, applied once at start-up before any image is touched."""
    # The operation cache holds decoded pixels keyed on arguments; renders never repeat an
    # operation on the same buffer, so it only costs memory.
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    # Parallelism comes from running several renders at once; per-image threads on top of
    # that only add contention on a small machine (measured by `make bench`).
    pyvips.concurrency_set(max(1, vips_concurrency))
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoadSvg", not allow_svg)


# Formats the sandbox reads (proxy/inputs.py). By the time one reaches a loader here it is
# the sandbox's uncompressed TIFF of the decoded pixels, so they load as TIFF.
RASTERISED = frozenset({"heic", "pdf", "mp4", "mov", "webm", "mkv", "jxl", "bmp", "ico"})
_AVIF_BRANDS = (b"avif", b"avis")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_VIDEO_BRANDS = (
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash",
    b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"mmp4", b"MSNV", b"f4v ",
)  # fmt: skip


def sniff(head: bytes) -> str | None:
    """The format named by the first bytes of a file, or None when it is not an image we load.

    Sandboxed formats sniff as their decoder's family: `heic`, `pdf`, `video`, `jxl`, `bmp`,
    `ico` (inputs.py names the container exactly once it is decoded)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brands = _brands(head)
        if any(b in brands for b in _AVIF_BRANDS):
            return "heif"
        if brands and brands[0] in _HEIF_BRANDS:
            return "heic"
        if any(b in brands for b in _VIDEO_BRANDS):
            return "video"
        return None
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM, Matroska
        return "video"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head[:2] == b"BM" and len(head) >= 18 and head[14] in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if head[:4] == b"\x00\x00\x01\x00" and len(head) >= 6 and head[4] | head[5]:
        return "ico"
    text = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<svg", b"<?xml")) and b"<svg" in head[:4096].lower():
        return "svg"
    return None


def _brands(head: bytes) -> list[bytes]:
    """The major brand, then the compatible ones, of an ISO BMFF `ftyp` box."""
    size = int.from_bytes(head[:4], "big")
    end = min(max(size, 16), len(head), 256)
    return [head[8:12]] + [head[i : i + 4] for i in range(16, end - 3, 4)]


SNIFF_BYTES = 4096


def loadable(source: Source) -> Source:
    """SVG always reaches libvips as bytes, never as a file.

    Loaded from a file, librsvg resolves references against the file's directory: an
    `<image href>` or an XInclude of a sibling (another original, its JSON record) would be
    read into the render. From a buffer it has no base URI and loads nothing but `data:`
    URIs; http(s) references it never fetches at all (tests/test_svg.py).
    """
    if isinstance(source, bytes) or sniff(read_head(source)) != "svg":
        return source
    return source.read_bytes()


def read_head(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source[:SNIFF_BYTES]
    try:
        with open(source, "rb") as f:
            return f.read(SNIFF_BYTES)
    except FileNotFoundError as exc:
        raise gone() from exc


def gone() -> NotFound:
    """A stored original deleted while its render waited in the queue."""
    return NotFound("the image was deleted")


def vanished(source: Source) -> bool:
    return isinstance(source, Path) and not source.exists()


@dataclass(frozen=True, slots=True)
class Header:
    """What the header says, before any pixel is decoded."""

    format: str  # jpeg png webp gif tiff avif svg, or one of RASTERISED
    width: int  # upright, after EXIF orientation
    height: int  # of one page
    pages: int
    bands: int
    has_alpha: bool
    orientation: int
    duration: float | None = None  # seconds, of a video

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.pages


def open_image(source: Source, fmt: str, **options: object) -> pyvips.Image:
    """Open lazily (header only until pixels are asked for); libvips errors become 422.

    `fmt` (a sniffed or header format) names the loader: libvips never guesses from the
    bytes, which would also cost a probe of every loader it has (~0.2 ms per open).
    """
    loader = _LOADER_PREFIX["tiff" if fmt in RASTERISED else "heif" if fmt == "avif" else fmt]
    try:
        if isinstance(source, bytes):
            return pyvips.Operation.call(f"{loader}_buffer", source, **options)
        return pyvips.Operation.call(loader, os.fspath(source), **options)
    except pyvips.Error as exc:
        if vanished(source):
            raise gone() from exc
        raise Unprocessable(f"the image cannot be read: {first_line(exc)}") from exc


def read_header(
    source: Source, *, allow_svg: bool, max_pixels: int, page: int = 0
) -> tuple[Header, pyvips.Image]:
    """Sniff and read the header; refuse unknown types (415) and image bombs (422).

    Returns the lazily opened page (the first unless `page` says) too, so callers that need
    no resizing reuse it.
    """
    kind = sniff(read_head(source))
    if kind is None:
        raise UnsupportedMediaType("the body is not an image in a supported format")
    if kind == "svg" and not allow_svg:
        raise UnsupportedMediaType("SVG input is disabled on this server")
    image = open_image(source, kind, access="sequential", **({"page": page} if page else {}))
    fmt = kind
    if kind == "heif":
        fmt = "avif" if _get(image, "heif-compression", "") == "av1" else "heic"
    orientation = _get(image, "orientation", 1)
    width, height = image.width, image.height
    pages = max(1, _get(image, "n-pages", 1))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    header = Header(fmt, width, height, pages, image.bands, bool(image.hasalpha()), orientation)
    if header.pixels > max_pixels:
        raise Unprocessable(
            f"{width}x{height} pixels x {pages} frames is over the limit of {max_pixels} pixels"
        )
    return header, image


def fail_on(fmt: str) -> str:
    """How strict decoding is: any libtiff error fails a TIFF, since a strip that runs past
    the end of the file is only an "error" there, never "truncated" (it decodes as black)."""
    return "error" if fmt == "tiff" else "truncated"


def thumbnail(
    source: Source, width: int, *, fail_on: str = "truncated", page: int = 0, **kwargs
) -> pyvips.Image:
    """Shrink-on-load thumbnail that fails on truncated or corrupt input.

    thumbnail's own `fail_on` argument does not reach the JPEG loader, and the loader options
    in the file name do not reach the PNG loader: both are given.
    """
    strict = f"fail_on={fail_on}" + (f",page={page}" if page else "")
    if isinstance(source, bytes):
        return pyvips.Image.thumbnail_buffer(source, width, option_string=strict, **kwargs)
    return pyvips.Image.thumbnail(
        f"{os.fspath(source)}[{strict}]", width, fail_on=fail_on, **kwargs
    )


def to_srgb(img: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB, whatever came in (CMYK, 16-bit, grey, with or without a profile)."""
    if img.get_typeof("icc-profile-data"):
        try:
            img = img.icc_transform("srgb", embedded=True, intent="perceptual")
        except pyvips.Error:
            pass  # a broken embedded profile must not fail the render: fall back to the tags
    if img.interpretation != "srgb":
        img = img.colourspace("srgb")
    if img.format != "uchar":
        img = img.cast("uchar")
    return img


def _get(image: pyvips.Image, name: str, default):
    return image.get(name) if image.get_typeof(name) else default


def first_line(exc: BaseException) -> str:
    """The last line of a libvips error, without file names (they name the server's disk)."""
    text = str(exc).strip().splitlines()
    line = text[-1].strip() if text else type(exc).__name__
    return _QUOTED_PATH.sub("the image", line)


_QUOTED_PATH = re.compile(r"\"/[^\"]*\"")


# output.effort's and output.chroma's defaults, for callers that pass none.
_EFFORT = EffortConfig()
_CHROMA = ChromaConfig()
# output.chroma -> libvips' subsample_mode
_SUBSAMPLE = {"4:4:4": "off", "4:2:0": "on", "auto": "auto"}


def encode(
    image: pyvips.Image,
    fmt: str,
    quality: int | None,
    *,
    keep: int = pyvips.enums.ForeignKeep.NONE,
    lossless: bool = False,
    palette: int | None = None,
    effort: int | None = None,
    chroma: str | None = None,
) -> bytes:
    """Save to `fmt`, with only the metadata `keep` names (proxy/embedded.py sets it);
    `effort` is the WebP, AVIF or JPEG XL encoder's (output.effort), `chroma` AVIF's
    chroma resolution (output.chroma)."""
    try:
        if fmt == "jpeg":
            # Optimised Huffman tables always: ~1 % smaller for ~10 % of the encode.
            effort = _EFFORT.jpeg if effort is None else effort
            return image.jpegsave_buffer(
                Q=quality, keep=keep, optimize_coding=True, interlace=effort >= 1,
                trellis_quant=effort >= 2,
            )  # fmt: skip
        if fmt == "webp":
            effort = _EFFORT.webp if effort is None else effort
            return image.webpsave_buffer(Q=quality, keep=keep, effort=effort, lossless=lossless)
        if fmt == "avif":
            effort = _EFFORT.avif if effort is None else effort
            subsample = _SUBSAMPLE[_CHROMA.avif if chroma is None else chroma]
            return image.heifsave_buffer(
                Q=quality, keep=keep, compression="av1", effort=effort, lossless=lossless,
                subsample_mode=subsample,
            )  # fmt: skip
        if fmt == "jxl":
            effort = _EFFORT.jxl if effort is None else effort
            return _jxl(image, quality, effort=effort, lossless=lossless)
        if fmt in ("png", "gif") and palette is not None:
            return _quantised(image, fmt, palette, keep)
        if fmt == "png":
            return image.pngsave_buffer(keep=keep, compression=6)
        if fmt == "gif":
            return image.gifsave_buffer(keep=keep)
        if fmt == "tiff":
            return image.tiffsave_buffer(keep=keep, compression="lzw")
    except pyvips.Error as exc:
        raise Unprocessable(f"the image cannot be decoded: {first_line(exc)}") from exc
    raise UnsupportedMediaType(f"cannot encode {fmt}")


def _jxl(image: pyvips.Image, quality: int | None, *, effort: int, lossless: bool) -> bytes:
    """JPEG XL through imagecodecs' libjxl: the bundled libvips has no JPEG XL saver. It
    writes no metadata (the pipeline refuses `meta/copyright` and `meta/keep` for it), and
    takes 8-bit grey or sRGB, with or without alpha, as the steps leave them."""
    if image.format != "uchar":
        image = image.cast("uchar")
    pixels = np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )
    if image.bands == 1:
        pixels = pixels[:, :, 0]  # a 2-D array is grey to imagecodecs; (h, w, 1) is not
    try:
        # One thread, as libvips has (configure()): renders run side by side instead. libjxl
        # releases the GIL while it works, so they really do.
        return imagecodecs.jpegxl_encode(
            pixels, level=None if lossless else quality, effort=effort, lossless=lossless,
            numthreads=1,
        )  # fmt: skip
    except imagecodecs.JpegxlError as exc:
        raise Unprocessable(f"the image cannot be encoded as JPEG XL: {exc}") from exc


def _quantised(image: pyvips.Image, fmt: str, colours: int, keep: int) -> bytes:
    """At most `colours` colours, dithered. libimagequant (inside libvips) takes a palette
    size in bits; for other counts its result is cut down to the most used colours."""
    bits = max(1, math.ceil(math.log2(colours)))
    if fmt == "png":  # PNG palettes come in 1, 2, 4 or 8 bits
        bits = next(b for b in (1, 2, 4, 8) if b >= bits)
    body = _palette_save(image, fmt, bits, keep, dither=1.0)
    if colours == 1 << bits:
        return body
    decoded = pyvips.Image.new_from_buffer(body, "")
    if decoded.bands not in (3, 4) or decoded.format != "uchar":
        decoded = decoded.colourspace("srgb").cast("uchar")
    pixels = np.ndarray(
        buffer=decoded.write_to_memory(),
        dtype=np.uint8,
        shape=(decoded.height, decoded.width, decoded.bands),
    )
    flat = pixels.reshape(-1, decoded.bands)
    found, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    if len(found) <= colours:
        return body
    kept = found[np.argsort(-counts, kind="stable")[:colours]].astype(np.int32)
    distance = ((found[:, None, :].astype(np.int32) - kept[None, :, :]) ** 2).sum(axis=2)
    remapped = kept[distance.argmin(axis=1)].astype(np.uint8)[inverse.reshape(-1)]
    out = pyvips.Image.new_from_memory(
        np.ascontiguousarray(remapped).tobytes(), decoded.width, decoded.height,
        decoded.bands, "uchar",
    ).copy(interpretation="srgb")  # fmt: skip
    return _palette_save(out, fmt, bits, keep, dither=0.0)


def _palette_save(image: pyvips.Image, fmt: str, bits: int, keep: int, *, dither: float) -> bytes:
    if fmt == "png":
        return image.pngsave_buffer(
            keep=keep, compression=6, palette=True, bitdepth=bits, dither=dither, Q=100
        )
    return image.gifsave_buffer(keep=keep, bitdepth=bits, dither=dither)
