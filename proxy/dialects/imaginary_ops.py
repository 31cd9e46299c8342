"""imaginary's endpoints as native operations. Each endpoint sets the flags imaginary's
image.go gives bimg (crop, embed, enlarge, force…); `native` then reads those flags the way
bimg's resizer does (normalizeOperation, imageCalculations, extractOrEmbedImage) and writes
the native Options fields that give the same output size. `/pipeline` composes its steps into
one set of fields where their order is the native one (imaginary_pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from .. import ops
from ..arguments import Fit
from .common import Unsupported
from .imaginary_params import ParamError, Params

DIALECT = "imaginary"
TYPES = {"jpeg": "jpeg", "png": "png", "webp": "webp", "tiff": "tiff", "gif": "gif",
         "auto": "auto"}  # fmt: skip
# imaginary knows these output types; ProgImage cannot write them.
UNWRITABLE_TYPES = frozenset({"svg", "pdf"})
LIBVIPS_MIN_AMPL = 0.2  # vips_gaussblur's default min_ampl: the only one the native blur uses


class Missing(ValueError):
    """A required parameter is absent (imaginary's 400 'Missing required param…')."""


@dataclass(frozen=True)
class Bimg:
    """What an endpoint hands bimg: the subset of bimg.Options the native pipeline can meet."""

    width: int = 0
    height: int = 0
    crop: bool = False
    embed: bool = False
    enlarge: bool = False
    force: bool = False
    gravity: str = "centre"
    rotate: int = 0
    zoom: int = 0
    area: tuple[int, int, int, int] | None = None  # left, top, width, height
    inside: bool = False  # /fit: the box imaginary computes is the image's own shape


# --- parameters every endpoint reads (BimgOptions in options.go)


def _refuse(name: str, why: str) -> Unsupported:
    return Unsupported(DIALECT, name, why)


def _hex(rgb: tuple[int, ...]) -> str:
    padded = (*rgb, 0, 0, 0)[:3]
    return "".join(f"{v:02x}" for v in padded)


def _angle(degrees: int) -> int:
    """bimg's getAngle: down to a multiple of 90, at most 270."""
    return min(degrees - degrees % 90, 270)


def _aspect(p: Params) -> tuple[int, int]:
    """`aspectratio` fills the missing side (options.go transformByAspectRatio, integer maths)."""
    width, height = p["width"], p["height"]
    if not p["aspectratio"] or (width and height) or not (width or height):
        return width, height
    parts = p["aspectratio"].strip().lower().split(":")
    try:
        ratio_w, ratio_h = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return width, height
    if ratio_w <= 0 or ratio_h <= 0:
        raise _refuse(f"aspectratio={p['aspectratio']}", "both sides must be more than 0")
    if width:
        return width, width // ratio_w * ratio_h
    return height // ratio_h * ratio_w, height


def common(p: Params) -> tuple[Bimg, dict[str, Any]]:
    """The bimg flags and the native fields every endpoint's parameters give."""
    refused = {
        "compression": "PNG zlib level: ProgImage picks its own",
        "interlace": "progressive/interlaced output",
        "speed": "encoder speed",
        "noprofile": "dropping only the ICC profile",
        "norotation": "ProgImage always applies the EXIF orientation",
    }
    for name, why in refused.items():
        if p.given(name) and p[name]:
            raise _refuse(name, why)
    if p.given("extend") and p["extend"] in ("copy", "mirror", "lastpixel"):
        # The default (copy, when absent) pads with `background`/white instead: see README.
        raise _refuse(f"extend={p['extend']}", "ProgImage extends with a colour only")
    if p.given("minampl") and p["minampl"] not in (0.0, LIBVIPS_MIN_AMPL):
        raise _refuse("minampl", f"the gaussian blur keeps libvips' {LIBVIPS_MIN_AMPL}")
    fields: dict[str, Any] = {}
    if p["quality"]:
        if not 1 <= p["quality"] <= 100:
            raise ParamError("quality must be between 1 and 100")
        fields["quality"] = p["quality"]
    kind = p["type"].lower()
    if kind:
        if kind in UNWRITABLE_TYPES:
            raise _refuse(f"type={kind}", "ProgImage does not write it")
        if kind not in TYPES:
            raise ParamError("Unsupported output image format")
        fields["format"] = TYPES[kind]
    if p["flip"]:
        fields["flip"] = True
    if p["flop"]:
        fields["flop"] = True
    extend = p["extend"] if p.given("extend") else None
    if extend == "black":
        fields["bg"] = "000000"
    elif extend == "white":
        fields["bg"] = "ffffff"
    elif p["background"]:
        fields["bg"] = _hex(p["background"])
    if p["sigma"]:
        if not 0.3 <= p["sigma"] <= 100:
            raise _refuse(f"sigma={p['sigma']:g}", "the blur takes sigma 0.3 to 100")
        fields["blur"] = p["sigma"]
    elif p["minampl"]:
        raise _refuse("minampl", "a blur needs `sigma` here")
    if p["colorspace"] == "bw":
        fields["grayscale"] = True
    if p["stripmeta"]:
        fields["meta"] = "strip"
    if p["palette"]:
        fields["palette"] = 256
    width, height = _aspect(p)
    bimg = Bimg(
        width=width, height=height, force=p["force"], embed=p["embed"],
        gravity=p["gravity"], rotate=_angle(p["rotate"]),
    )  # fmt: skip
    return bimg, fields


# --- the endpoints (image.go), each: Params -> (Bimg, fields)


def _need_one(b: Bimg) -> None:
    if not (b.width or b.height):
        raise Missing("Missing required param: height or width")


def _need_both(b: Bimg) -> None:
    if not (b.width and b.height):
        raise Missing("Missing required params: height, width")


def _resize(p: Params, b: Bimg) -> Bimg:
    _need_one(b)
    return replace(b, embed=True, crop=not p["nocrop"] if p.given("nocrop") else b.crop)


def _fit(p: Params, b: Bimg) -> Bimg:
    _need_both(b)
    # imaginary computes the fitting box itself, then embeds into it: no padding is left.
    return replace(b, embed=True, crop=False, force=False, inside=True)


def _enlarge(p: Params, b: Bimg) -> Bimg:
    _need_both(b)
    return replace(b, enlarge=True, crop=not p["nocrop"])


def _extract(p: Params, b: Bimg) -> Bimg:
    if not (p["areawidth"] and p["areaheight"]):
        raise Missing("Missing required params: areawidth or areaheight")
    if b.width or b.height:
        raise _refuse("width/height with an area", "imaginary scales before it extracts, "
                      "ProgImage extracts first")  # fmt: skip
    return replace(b, area=(p["left"], p["top"], p["areawidth"], p["areaheight"]))


def _crop(p: Params, b: Bimg) -> Bimg:
    _need_one(b)
    return replace(b, crop=True)


def _smartcrop(p: Params, b: Bimg) -> Bimg:
    _need_one(b)
    return replace(b, crop=True, gravity="smart")


def _rotate(p: Params, b: Bimg) -> Bimg:
    if not p["rotate"]:
        raise Missing("Missing required param: rotate")
    return b


def _same(p: Params, b: Bimg) -> Bimg:
    return b


def _thumbnail(p: Params, b: Bimg) -> Bimg:
    if not (b.width or b.height):
        raise Missing("Missing required params: width or height")
    return b


def _zoom(p: Params, b: Bimg) -> Bimg:
    if not p["factor"]:
        raise Missing("Missing required param: factor")
    if p["top"] or p["left"] or p["areawidth"] or p["areaheight"]:
        raise _refuse("zoom with an area", "imaginary extracts in zoomed pixels")
    if b.width or b.height:
        raise _refuse("zoom with width/height", "imaginary zooms, then resizes the zoomed image")
    return replace(b, zoom=p["factor"])


def _convert(p: Params, b: Bimg) -> Bimg:
    if not p["type"]:
        raise Missing("Missing required param: type")
    return b


def _blur(p: Params, b: Bimg) -> Bimg:
    if not (p["sigma"] or p["minampl"]):
        raise Missing("Missing required param: sigma or minampl")
    return b


def _watermark(p: Params, b: Bimg) -> Bimg:
    if not p["text"]:
        raise Missing("Missing required param: text")
    for name, why in (("font", "one font, sized by the output"), ("dpi", "text sized by the "
                      "output"), ("textwidth", "text sized by the output"), ("margin",
                      "positions by gravity")):  # fmt: skip
        if p.given(name) and p[name]:
            raise _refuse(name, why)
    return b


def _watermark_image(p: Params, b: Bimg) -> Bimg:
    if not p["image"]:
        raise Missing("Missing required param: image")
    raise _refuse("watermarkimage", "ProgImage overlays stored images scaled to a fraction of "
                  "the output at a gravity position, not a remote image at natural size at "
                  "left/top pixels")  # fmt: skip


ENDPOINTS: dict[str, Callable[[Params, Bimg], Bimg]] = {
    "resize": _resize, "fit": _fit, "enlarge": _enlarge, "extract": _extract,
    "crop": _crop, "smartcrop": _smartcrop, "rotate": _rotate, "autorotate": _same,
    "flip": _same, "flop": _same, "thumbnail": _thumbnail, "zoom": _zoom,
    "convert": _convert, "watermark": _watermark, "watermarkimage": _watermark_image,
    "blur": _blur,
}  # fmt: skip
_FORCED = {"flip": "flip", "flop": "flop"}


def endpoint(name: str, p: Params) -> tuple[Bimg, dict[str, Any]]:
    """(bimg flags, native fields) of one endpoint; Missing/ParamError/Unsupported if not."""
    b, fields = common(p)
    b = ENDPOINTS[name](p, b)
    if name in _FORCED:
        fields[_FORCED[name]] = True
    if name == "watermark":
        opacity = p["opacity"] or 0.25  # bimg's default; above 1 is 1
        colour = _hex(p["color"]) if len(p["color"]) > 2 else "000000"
        position = "northwest" if p["noreplicate"] else "tile"
        # Through the native argument's own checks (length, control characters).
        caption = f"{quote(p['text'], safe='')},{position},{min(opacity, 1.0):.4f},0.05,{colour}"
        try:
            fields["text"] = ops.FIELDS["text"].arg.parse(caption, 0)
        except ValueError as exc:
            raise ParamError(f'error while processing parameter "text": {exc}') from None
    return b, fields


def _shape(b: Bimg) -> str:
    """Which of bimg's paths through its resizer the flags take."""
    if b.zoom:
        return "zoom"
    if not (b.width or b.height):
        return "none"
    if b.force or not (b.crop or b.embed or b.enlarge or b.rotate):
        return "force"  # bimg's normalizeOperation forces a bare width/height
    if b.crop:
        return "crop" if b.width and b.height else "crop-side"
    if b.width and b.height and b.embed and not b.inside and b.gravity != "smart":
        return "embed"
    return "fit"


def needs_size(b: Bimg) -> bool:
    """Whether the native fields depend on the source's size: a zoom, a crop to one side,
    and the box bimg leaves alone when the source is smaller both ways (unless enlarging)."""
    shape = _shape(b)
    return shape in ("zoom", "crop-side") or (shape in ("crop", "embed") and not b.enlarge)


def native(b: Bimg, size: tuple[int, int] | None) -> dict[str, Any]:
    """bimg's reading of its flags as native fields (resizer.go: normalizeOperation,
    imageCalculations, its no-enlarge guard, extractOrEmbedImage). `size` is the upright
    source's (width, height), needed only where `needs_size` says."""
    fields: dict[str, Any] = {}
    if b.rotate:
        fields["rotate"] = b.rotate
    if b.area is not None:
        fields["crop"] = b.area
    if size is not None and b.rotate in (90, 270):
        size = (size[1], size[0])  # bimg measures the source after rotating it
    shape, width, height = _shape(b), b.width, b.height
    gravity = {} if b.gravity == "centre" else {"gravity": b.gravity}
    if shape == "none":
        return fields
    if shape == "zoom":
        assert size is not None
        return {**fields, "fit": Fit("stretch", size[0] * b.zoom, size[1] * b.zoom),
                "enlarge": True}  # fmt: skip
    if shape == "force":
        # A forced size ignores bimg's no-enlarge guard.
        mode = "stretch" if width and height else "resize"
        return {**fields, "fit": Fit(mode, width or None, height or None), "enlarge": True}
    if shape == "crop-side":
        assert size is not None
        # The other side stays the source's; bimg cuts without scaling, never wider than it.
        box = (min(width or size[0], size[0]), min(height or size[1], size[1]))
        if box == size:
            return fields
        return {**fields, "fit": Fit("fill", *box), **gravity}
    if b.enlarge:
        fields["enlarge"] = True
    elif shape in ("crop", "embed"):
        assert size is not None
        if size[0] < width and size[1] < height:
            return fields  # bimg leaves a source smaller than the box both ways as it is
    if shape == "crop":
        # bimg scales by the smaller factor whichever way that goes: up, too.
        return {**fields, "fit": Fit("fill", width, height), "enlarge": True, **gravity}
    if shape == "embed":
        return {**fields, "fit": Fit("pad", width, height)}
    return {**fields, "fit": Fit("resize", width or None, height or None)}
