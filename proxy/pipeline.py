"""The render pipeline: header check, one shrink-on-load decode, ordered steps, encode.

Everything here runs in a worker thread; nothing touches the event loop.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cachetools
import pyvips

from . import embedded, faces, imaging, inputs, ops, previews, steps
from . import placeholders as placeholders_module
from .errors import BadRequest, ProxyError, Unprocessable, UnsupportedMediaType
from .imaging import Header, Source
from .ops import Options

MAX_COORD = 10_000_000  # libvips' own bound: "no limit" for one side of a thumbnail box


@dataclass(frozen=True, slots=True)
class Result:
    body: bytes
    format: str
    width: int
    height: int
    pages: int
    bands: int
    has_alpha: bool
    process_ms: float
    encode_ms: float
    over_budget: int | None = None  # `maxbytes` not reached: the size of the quality-10 result
    placeholders: dict[str, str] | None = None  # for `info`: blurhash, thumbhash, colour
    faces: tuple[faces.Box, ...] | None = None  # found in the original (upright source pixels)

    @property
    def mime(self) -> str:
        return ops.MIME_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class Plan:
    """Geometry computed once from the header: every step reads it, none recomputes it."""

    crop: tuple[int, int, int, int] | None  # clipped, in upright source pixels
    scaled: tuple[int, int] | None  # size after scaling, before rotation; None = no scaling
    final: tuple[int, int] | None  # fill: crop to this; pad: canvas of this (output space)
    output_format: str
    animated: bool
    quality: int | None
    options: Options
    # Trim and free rotation change the size only the pixels can tell: the `fit` step sizes
    # the image then, from what it sees, instead of the loader from the header.
    late: bool = False
    meta: str = "strip"
    effort: int | None = None  # the encoder's (output.effort); None: imaging's default
    chroma: str | None = None  # its chroma resolution (output.chroma); None: imaging's default
    overlay: pyvips.Image | None = None  # the watermark, decoded (see `overlay_image`)
    faces: faces.Track | None = None  # when the output depends on them (ops.uses_faces)

    @property
    def keep_profile(self) -> bool:
        return self.meta == "keep"

    @property
    def page(self) -> int | None:
        """The loader's 0-based page, when one page was asked for."""
        return None if self.options.page is None else self.options.page - 1


@dataclass(frozen=True, slots=True)
class Overlay:
    """A watermark's original: `identity` (its id, a content hash) keys the decoded copy."""

    identity: str
    source: Source | None  # None when `decoded` is given
    decoded: pyvips.Image | None = None  # from `decoded_overlay`: no bytes needed then


OVERLAY_EDGE = 2048  # a watermark is kept decoded at most this large: enough for any output
_overlays: cachetools.LRUCache[str, pyvips.Image] = cachetools.LRUCache(maxsize=32)
_overlays_lock = threading.Lock()


def decoded_overlay(identity: str) -> pyvips.Image | None:
    """The watermark as `overlay_image` kept it, if it did: the caller need not read its bytes."""
    with _overlays_lock:
        return _overlays.get(identity)


def overlay_image(overlay: Overlay, max_pixels: int) -> pyvips.Image:
    """The watermark upright, 8-bit sRGB, in memory: decoded once per process and kept (its
    id names its bytes, so it never goes stale). Over `max_pixels` → 422 from the header."""
    found = overlay.decoded or decoded_overlay(overlay.identity)
    if found is not None:
        return found
    try:
        pending, header = inputs.open_source(
            imaging.loadable(overlay.source), allow_svg=False, max_pixels=max_pixels
        )
        source = inputs.pixels(pending)
    except (Unprocessable, UnsupportedMediaType) as exc:
        raise Unprocessable(f"'watermark/{overlay.identity}': {exc.detail}") from None
    try:
        img = imaging.thumbnail(
            source, OVERLAY_EDGE, height=OVERLAY_EDGE, size="down",
            fail_on=imaging.fail_on(header.format),
        )  # fmt: skip
        img = imaging.to_srgb(img).copy_memory()
    except pyvips.Error as exc:
        raise Unprocessable(f"the watermark cannot be decoded: {imaging.first_line(exc)}") from exc
    with _overlays_lock:
        _overlays[overlay.identity] = img
    return img


def output_format(requested: str | None, header: Header) -> str:
    """The format to encode: the asked one, else the source's own when browsers show it."""
    if requested:
        return requested
    if header.format in ops.BROWSER_FORMATS:
        return header.format
    return "png" if header.has_alpha else "jpeg"


def plan(
    header: Header,
    options: Options,
    requested_format: str | None,
    quality: Mapping[str, int],
    metadata: str = "strip",
    effort: Mapping[str, int] | None = None,
    chroma: Mapping[str, str] | None = None,
) -> Plan:
    fmt = output_format(requested_format, header)
    meta = options.meta or metadata
    _check_encoding(options, fmt, meta)
    animated = (
        header.pages > 1
        and options.page is None
        and header.format in ops.ANIMATED_FORMATS
        and fmt in ops.ANIMATED_FORMATS
    )
    crop = _clip_crop(options.crop, header) if options.crop else None
    q = options.quality if options.quality is not None else quality.get(fmt)
    e = (effort or {}).get(fmt)
    c = (chroma or {}).get(fmt)
    if options.trim is not None and animated:
        raise BadRequest(
            f"'trim/{options.trim}': frames of an animation would trim differently; "
            "add page/1 for a still"
        )
    if options.trim is not None or options.rotate not in (0, 90, 180, 270):
        return Plan(
            crop, None, None, fmt, animated, q, options, late=True, meta=meta, effort=e, chroma=c
        )
    width, height = (crop[2], crop[3]) if crop else (header.width, header.height)
    quarter = options.rotate in (90, 270)
    if quarter:  # the box applies to the rotated image
        width, height = height, width
    scaled, final = geometry(options, width, height)
    if scaled and quarter:
        scaled = (scaled[1], scaled[0])
    if scaled == (crop[2], crop[3]) if crop else scaled == (header.width, header.height):
        scaled = None
    return Plan(crop, scaled, final, fmt, animated, q, options, meta=meta, effort=e, chroma=c)


def _check_encoding(o: Options, fmt: str, meta: str = "strip") -> None:
    """Encoder settings that the chosen format cannot honour are the URL's mistake: 400.
    `meta` is the metadata mode in force, the URL's or output.metadata."""
    if o.lossless and fmt not in ops.LOSSLESS_FORMATS:
        raise BadRequest(f"'lossless': {fmt} has no lossless mode (webp, avif or jxl do)")
    if meta != "strip" and fmt in ops.BARE_FORMATS:
        # Stripping instead would hand out images without the copyright the site asked for.
        if o.meta:
            raise BadRequest(f"'meta/{o.meta}': {fmt} output carries no metadata here")
        raise BadRequest(
            f"'fmt/{fmt}': {fmt} output carries no metadata here and output.metadata is "
            f"{meta}: add meta/strip"
        )
    if o.palette is not None and fmt not in ops.PALETTE_FORMATS:
        raise BadRequest(f"'palette/{o.palette}': {fmt} has no palette (png or gif do)")
    if o.maxbytes is not None and fmt not in ops.LOSSY_FORMATS:
        raise BadRequest(f"'maxbytes/{o.maxbytes}': {fmt} has no quality to lower")


def _clip_crop(crop: tuple[int | float, ...], header: Header) -> tuple[int, int, int, int]:
    """Fractions resolved against the upright source, then clipped to it."""
    x, y, w, h = (
        round(v * side) if isinstance(v, float) else v
        for v, side in zip(crop, (header.width, header.height) * 2, strict=True)
    )
    w, h = max(1, w), max(1, h)
    right, bottom = min(x + w, header.width), min(y + h, header.height)
    if x >= header.width or y >= header.height or right <= x or bottom <= y:
        written = ops.BY_NAME["crop"].arg.format(crop)
        raise BadRequest(f"'crop/{written}': outside the {header.width}x{header.height} image")
    return x, y, right - x, bottom - y


def geometry(
    o: Options, width: int, height: int
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(scaled size, final size) in output orientation for the resize family."""
    if o.mode is None:
        return None, None
    box_w, box_h = o.box
    if o.mode == "stretch":
        sx, sy = box_w / width, box_h / height
        if not o.enlarge:
            sx, sy = min(sx, 1.0), min(sy, 1.0)
        return (_px(width * sx), _px(height * sy)), None
    if o.mode in ("resize", "pad"):
        scale = min((box_w or MAX_COORD) / width, (box_h or MAX_COORD) / height)
        if not o.enlarge:
            scale = min(scale, 1.0)
        scaled = (_px(width * scale), _px(height * scale))
        return scaled, ((box_w, box_h) if o.mode == "pad" else None)
    # fill / thumbnail: cover the box, then crop to it.
    scale = max(box_w / width, box_h / height)
    if scale > 1.0 and not o.enlarge:
        # Never upscale: keep the box's aspect ratio at the source's own resolution.
        scale = 1.0
        crop_w = min(width, _px(height * box_w / box_h))
        crop_h = min(height, _px(width * box_h / box_w))
        return (width, height), (crop_w, crop_h)
    return (max(box_w, _px(width * scale)), max(box_h, _px(height * scale))), (box_w, box_h)


def _px(value: float) -> int:
    return max(1, round(value))


# --- load + scale, the only place pixels are decoded.


def _needs_random_access(p: Plan) -> bool:
    """Steps that read pixels out of top-to-bottom order (rotations, flips, smart crops,
    trim's two passes)."""
    o = p.options
    return bool(
        o.rotate
        or o.flip
        or p.late
        or (o.mode in ("fill", "thumbnail") and o.effective_gravity in ("smart", "entropy", "face"))
    )


def _load_scaled(source: Source, header: Header, p: Plan) -> pyvips.Image:
    """Decode once: through shrink-on-load when nothing needs the full-size pixels first."""
    random_access = _needs_random_access(p)
    fail_on = imaging.fail_on(header.format)
    # A sandboxed format's source is already the one page or frame asked for.
    single = p.page is None or header.format in imaging.RASTERISED
    page = {} if single else {"page": p.page}
    if p.scaled and not p.crop:
        width, height = p.scaled
        shrink = _jpeg_shrink(header, width, height)
        if shrink > 1:
            # Orientation other than 1 rotates the decoded pixels: that needs random access.
            access = "random" if random_access or header.orientation != 1 else "sequential"
            img = imaging.open_image(
                source, header.format, access=access, shrink=shrink, fail_on=fail_on
            ).autorot()
            if (img.width, img.height) != (width, height):  # a 1/2 decode of 1600 px is 800
                img = img.thumbnail_image(width, height=height, size="force")
            return img.copy_memory() if random_access else img
        img = imaging.thumbnail(source, width, height=height, size="force", fail_on=fail_on, **page)
        # The thumbnail streams from a sequential decode; a small copy in memory lets the
        # later steps read it in any order.
        return img.copy_memory() if random_access else img
    # autorot() of orientations 3-8 reads rows bottom-up or as columns: a sequential decode
    # of a file taller than its read-ahead fails with "out of order read".
    upright = header.orientation in (1, 2)
    access = "sequential" if upright and not random_access else "random"
    img = imaging.open_image(
        source, header.format, access=access, fail_on=fail_on, **page
    ).autorot()
    if p.crop:
        img = img.extract_area(*p.crop)
    if p.scaled:
        img = resize_exact(img, *p.scaled)
    return img


def _jpeg_shrink(header: Header, width: int, height: int) -> int:
    """The largest JPEG DCT scale (1/8, 1/4, 1/2) whose decode still covers the target box.

    libvips' thumbnail keeps a 2x margin above the target before its final resample; like
    sharp's and Pillow's draft mode, we spend that margin (a mean difference of 2-4 levels
    out of 255) to decode up to 4x fewer pixels: +13-31 % throughput in `make bench`.
    """
    if header.format != "jpeg":
        return 1
    for shrink in (8, 4, 2):
        if header.width // shrink >= width and header.height // shrink >= height:
            return shrink
    return 1


def resize_exact(img: pyvips.Image, width: int, height: int) -> pyvips.Image:
    img = img.resize(width / img.width, vscale=height / img.height)
    if (img.width, img.height) != (width, height):  # rounding inside libvips: at most a pixel
        img = img.embed(0, 0, width, height, extend="copy")
    return img


def _load_frames(source: Source, header: Header, p: Plan) -> list[pyvips.Image]:
    """Every frame of an animation as its own image, cropped and scaled."""
    whole = imaging.open_image(
        source, header.format, n=-1, access="sequential", fail_on=imaging.fail_on(header.format)
    )
    page_height = whole.get("page-height") if whole.get_typeof("page-height") else header.height
    frames = []
    for i in range(whole.height // page_height):
        frame = whole.extract_area(0, i * page_height, whole.width, page_height)
        if p.crop:
            frame = frame.extract_area(*p.crop)
        if p.scaled:
            frame = resize_exact(frame, *p.scaled)
        frames.append(frame)
    return frames


def render(
    source: Source, options: Options, *, preview: Source | None = None, **settings: Any
) -> Result:
    """Turn an original into the derived image `options` describes; from its `preview`
    (previews.py) when the output is small enough and needs no source pixel coordinates.
    `settings` are prepare()'s: requested_format, quality, effort, chroma, max_pixels,
    allow_svg, metadata."""
    started = time.perf_counter()
    return render_planned(prepare(source, options, **settings), preview=preview, started=started)


def prepare(
    source: Source,
    options: Options,
    *,
    requested_format: str | None,
    quality: Mapping[str, int],
    max_pixels: int,
    allow_svg: bool = False,
    metadata: str = "strip",
    overlay: Overlay | None = None,
    effort: Mapping[str, int] | None = None,
    chroma: Mapping[str, str] | None = None,
    known: Callable[[], Header | None] | None = None,
) -> tuple[Source, Header, Plan]:
    """The header check (415, 422) and the plan: everything before pixels are decoded."""
    source, header = inputs.open_source(
        imaging.loadable(source),
        allow_svg=allow_svg,
        max_pixels=max_pixels,
        page=options.page,
        at=options.at,
        box=_density_box(options),
        inside=options.mode in ("resize", "pad"),
        known=known,
    )
    planned = plan(header, options, requested_format, quality, metadata, effort, chroma)
    if overlay is not None and options.watermark is not None:
        planned = dataclasses.replace(planned, overlay=overlay_image(overlay, max_pixels))
    return source, header, planned


def _density_box(o: Options) -> tuple[int | None, int | None] | None:
    """The box a PDF page is drawn to cover; None (72 dpi, where a pixel is a point) when
    the URL names source coordinates or asks for no size."""
    if o.mode is None or o.crop or o.trim is not None or o.rotate not in (0, 90, 180, 270):
        return None
    width, height = o.box
    return (height, width) if o.rotate in (90, 270) else (width, height)


def _uses_preview(p: Plan) -> bool:
    """Outputs a preview can stand in for: scaled down, no source coordinates, one page,
    pixels and metadata the preview has (it is sRGB and carries no metadata)."""
    return bool(
        not p.animated
        and p.scaled
        and not p.crop
        and not p.late
        and p.options.page is None
        and p.options.at is None
        and p.meta == "strip"
    )


def render_planned(
    planned: tuple[Source, Header, Plan],
    *,
    preview: Source | None,
    started: float,
    found: tuple[faces.Box, ...] | None = None,
) -> Result:
    """`found`: the faces of this original when already known (the renderer caches them);
    detected here when the output needs them and they are not."""
    source, header, p = planned
    if ops.uses_faces(p.options):
        if found is None:
            found = tuple(find_faces(source, header, preview))
        p = dataclasses.replace(p, faces=faces.Track(found, (header.width, header.height)))
    if _uses_preview(p):
        stand_in = previews.stand_in(preview, header, p.scaled)
        if stand_in is not None:
            try:
                return _render(*stand_in, p, started, original=source)
            except ProxyError:
                pass  # a damaged preview: the original is still there
    source = inputs.pixels(source)
    return _render(source, header, p, started, original=source)


def find_faces(
    source: Source | inputs.Pending, header: Header, preview: Source | None
) -> list[faces.Box]:
    try:
        return faces.find(source, header, preview)  # previews.working_copy decodes a Pending
    except pyvips.Error as exc:
        if imaging.vanished(source):
            raise imaging.gone() from exc
        raise Unprocessable(f"the image cannot be decoded: {imaging.first_line(exc)}") from exc


def make_preview(planned: tuple[Source, Header, Plan]) -> bytes | None:
    """A preview of the original when this render would read one, else None: for originals
    that got none at upload (remote ones), made once and kept by the caller."""
    source, header, p = planned
    if not _uses_preview(p) or not previews.would_serve(header, p.scaled):
        return None
    try:
        return previews.encode(previews.working_copy(source, header))
    except (pyvips.Error, ProxyError):
        return None  # the render itself will report what is wrong with the original


def _render(source: Source, header: Header, p: Plan, started: float, *, original: Source) -> Result:
    placeholders = None
    try:
        if p.animated:
            frames = [_apply_steps(frame, p) for frame in _load_frames(source, header, p)]
            img = _join_frames(frames, header, source)
        else:
            img = _load_scaled(source, header, p)
            if header.has_alpha and not img.hasalpha():
                # libwebp drops an alpha that is opaque everywhere from a preview: put it back,
                # so the output has the bands (and transparent `pad` margins) of the original's.
                img = img.bandjoin_const([255])
            img = _apply_steps(img, p)
        if p.options.info:
            img = img.copy_memory()  # read twice: for the placeholders, then to encode
            placeholders = summarise(img)
        processed = time.perf_counter()
        keep = pyvips.enums.ForeignKeep.NONE
        if p.meta != "strip":
            img, keep = embedded.carry(img, imaging.open_image(original, header.format), p.meta)
            if p.output_format == "tiff":  # libvips writes TIFF's IPTC tag damaged
                keep &= ~pyvips.enums.ForeignKeep.IPTC
        body, over = _encode(img, p, keep)
    except pyvips.Error as exc:
        if imaging.vanished(source):
            raise imaging.gone() from exc
        raise Unprocessable(f"the image cannot be decoded: {imaging.first_line(exc)}") from exc
    done = time.perf_counter()
    pages = len(frames) if p.animated else 1
    return Result(
        body=body,
        format=p.output_format,
        width=img.width,
        height=img.height // pages,
        pages=pages,
        bands=img.bands,
        has_alpha=bool(img.hasalpha()),
        process_ms=(processed - started) * 1000,
        encode_ms=(done - processed) * 1000,
        over_budget=over,
        placeholders=placeholders,
        faces=p.faces.source if p.faces is not None else None,
    )


def summarise(img: pyvips.Image) -> dict[str, str]:
    """blurhash, thumbhash and dominant colour of the final pixels, for `info`."""
    return placeholders_module.compute(imaging.to_srgb(img)).as_dict()


MIN_BUDGET_QUALITY = 10


def _encode(img: pyvips.Image, p: Plan, keep: int) -> tuple[bytes, int | None]:
    """The encoded bytes, and their size when even the lowest quality is over `maxbytes`."""
    o = p.options
    options = {
        "keep": keep, "lossless": o.lossless, "palette": o.palette, "effort": p.effort,
        "chroma": p.chroma,
    }  # fmt: skip
    budget = o.maxbytes
    if budget is None:
        return imaging.encode(img, p.output_format, p.quality, **options), None
    # The size falls as the quality does: a binary search finds the highest that fits.
    img = img.copy_memory()  # encoded several times: decode and process once
    top = p.quality or 100
    best = None
    low, high = MIN_BUDGET_QUALITY, max(MIN_BUDGET_QUALITY, top)
    while low <= high:
        q = (low + high) // 2
        body = imaging.encode(img, p.output_format, q, **options)
        if len(body) <= budget:
            best, low = body, q + 1
        else:
            high = q - 1
    if best is not None:
        return best, None
    lowest = imaging.encode(img, p.output_format, MIN_BUDGET_QUALITY, **options)
    return lowest, len(lowest) if len(lowest) > budget else None


def _apply_steps(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if p.faces is not None:
        p.faces.start(p.crop, (img.width, img.height))
    for fn in steps.ORDER:
        img = fn(img, p)
    return img


def _join_frames(frames: list[pyvips.Image], header: Header, source: Source) -> pyvips.Image:
    first = imaging.open_image(source, header.format, access="sequential")
    joined = pyvips.Image.arrayjoin(frames, across=1).copy()
    joined.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    for name in ("delay", "loop", "gif-loop"):
        if first.get_typeof(name):
            joined.set_type(first.get_typeof(name), name, first.get(name))
    return joined
