"""The vocabulary of derived images: the operation registry and the Options value it defines.

`REGISTRY` is the one description of every operation: its name and aliases, its argument
grammar (proxy/arguments.py), its range, its place in the application order (the order of
the list, SPEC §9.6), when it cannot change the output (so `normalise` drops it) and the
pipeline step that applies it (pipeline.py registers steps under these names). The URL codec,
`build()`, `normalise()`, proxy.links, `GET /`, the OpenAPI grammar and the playground's
order all read it; tests check the README table and the JS helper against it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import arguments as a
from .arguments import Fit

RESIZE_MODES = ("resize", "fill", "thumbnail", "pad", "stretch")
GRAVITIES = (
    "centre", "north", "south", "east", "west",
    "northeast", "northwest", "southeast", "southwest", "smart", "entropy", "face",
)  # fmt: skip
FACE_MODES = ("blur", "pixelate")
FORMATS = ("jpeg", "png", "webp", "avif", "jxl", "gif", "tiff")
FORMAT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff"}
ANIMATED_FORMATS = frozenset({"gif", "webp"})
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "jxl", "gif", "tiff"})
# Formats every current browser displays; anything else is converted when no format is asked for.
BROWSER_FORMATS = frozenset({"jpeg", "png", "webp", "avif", "gif"})
MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "jxl": "image/jxl",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "svg": "image/svg+xml",
    # Read only (SPEC §10): what /info reports of such an original.
    "pdf": "application/pdf",
    "bmp": "image/bmp",
    "ico": "image/vnd.microsoft.icon",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
}
LOSSY_FORMATS = frozenset({"jpeg", "webp", "avif", "jxl"})  # the ones `maxbytes` can search
LOSSLESS_FORMATS = frozenset({"webp", "avif", "jxl"})
# Formats whose encoder here writes no metadata: `meta/copyright` and `meta/keep` are refused.
BARE_FORMATS = frozenset({"jxl"})
PALETTE_FORMATS = frozenset({"png", "gif"})
META_MODES = ("strip", "copyright", "keep")
DPR_RANGE = (1.0, 4.0)
QUALITY_RANGE = (1, 100)
DEFAULT_BG = "ffffff"


def normalise_format(name: str) -> str | None:
    """`jpg` -> `jpeg`; None for names that are not output formats."""
    name = name.lower()
    name = FORMAT_ALIASES.get(name, name)
    return name if name in FORMATS else None


@dataclass(frozen=True)
class Operation:
    """One operation of the URL grammar."""

    name: str
    field: str | None  # the Options field it fills; None: expanded while parsing (`preset`)
    arg: Any  # an argument kind from proxy/arguments.py; a.Flag for operations without one
    summary: str
    default: object = None
    aliases: tuple[str, ...] = ()
    # True when, given the whole Options, this setting cannot change the output.
    idle: Callable[[Any], bool] | None = None
    step: str | None = None  # pipeline step; None: read by the planner, encoder or response
    family: str | None = None  # operations sharing one field: at most one of them per URL

    @property
    def arity(self) -> int:
        return 0 if isinstance(self.arg, a.Flag) else 1

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _gravity_idle(o: Any) -> bool:
    mode, gravity = o.mode, o.gravity
    if mode not in ("fill", "thumbnail", "pad"):
        return True
    if mode == "pad":  # placement only: an anchor name, never a point or a detector
        return not isinstance(gravity, str) or gravity in ("smart", "entropy", "face", "centre")
    if mode == "fill":
        return gravity in ("centre", (0.5, 0.5))
    return gravity == "smart"


def _no_fit(o: Any) -> bool:
    return o.fit is None


_FLAG = a.Flag()
_RESIZE_SUMMARIES = {
    "resize": "fit inside the box, aspect kept",
    "fill": "cover the box, crop to it at `gravity`",
    "thumbnail": "`fill` with smart (attention) cropping",
    "pad": "fit inside, then extend to exactly W×H with `bg`",
    "stretch": "exactly W×H, aspect ignored",
}

# In application order (SPEC §9.6); `build()` writes operations in this order.
REGISTRY: tuple[Operation, ...] = (
    Operation("preset", None, a.Name(r"[A-Za-z0-9_-]{1,64}", "a preset name"),
              "expand a named preset from `presets.definitions`"),
    Operation("page", "page", a.Integer(1, 10000),
              "this page (TIFF, PDF, HEIF) or frame (GIF, WebP), not animated; past the end → 400"),
    Operation("at", "at", a.Decimal(0, 86400),
              "video: the frame shown at this second (default 1, or the first of a shorter "
              "video; past the end, the last)"),
    Operation("crop", "crop", a.Region(),
              "take this region of the upright source first (clipped to it; wholly outside → 400)"),
    Operation("trim", "trim", a.Integer(1, 255),
              "cut away a one-colour border (the top-left pixel's, within the threshold)",
              step="trim"),
    Operation("rotate", "rotate", a.Integer(0, 359),
              "clockwise; other than 90/180/270 the canvas grows, filled with `bg`",
              default=0, step="rotate"),
    Operation("flip", "flip", _FLAG, "mirror top–bottom", default=False, step="flip"),
    Operation("flop", "flop", _FLAG, "mirror left–right", default=False,
              aliases=("mirror",), step="flop"),
    *(
        Operation(mode, "fit", a.Box(mode, partial=mode == "resize"), _RESIZE_SUMMARIES[mode],
                  step="fit", family="resize")
        for mode in RESIZE_MODES
    ),
    Operation("gravity", "gravity", a.Anchor(GRAVITIES, {"center": "centre"}),
              "crop anchor of `fill`/`thumbnail` (a name, a focal point X,Y, or `face`: the "
              "faces found, else `smart`), placement for `pad`", idle=_gravity_idle),
    Operation("enlarge", "enlarge", _FLAG, "allow the resize family to upscale",
              default=False, idle=_no_fit),
    Operation("dpr", "dpr", a.Decimal(*DPR_RANGE, words=("auto",)),
              "multiply the box; `auto` from the `Sec-CH-DPR`/`DPR` request header",
              default=1.0, idle=_no_fit),
    Operation("padding", "padding", a.Sides(),
              "margins in output pixels after resizing, in `bg`", step="padding",
              idle=lambda o: not any(o.padding)),
    Operation("brightness", "brightness", a.Integer(-100, 100, signed=True),
              "percent change of lightness", default=0, step="tone"),
    Operation("contrast", "contrast", a.Integer(-100, 100, signed=True),
              "percent change of contrast around mid-grey", default=0, step="tone"),
    Operation("saturation", "saturation", a.Integer(-100, 100, signed=True),
              "percent change of chroma; −100 is grey", default=0, step="tone"),
    Operation("hue", "hue", a.Integer(0, 359), "rotate hue by that many degrees",
              default=0, step="tone"),
    Operation("blur", "blur", a.Decimal(0.3, 100.0), "gaussian blur, sigma", step="blur"),
    Operation("sharpen", "sharpen", a.Decimal(0.5, 10.0), "sharpen, sigma", step="sharpen"),
    Operation("pixelate", "pixelate", a.Integer(2, 100), "blocks of that many output pixels",
              step="pixelate"),
    Operation("faces", "faces", a.Choice(FACE_MODES),
              "hide every face found, with a margin: `blur` or `pixelate`", step="faces"),
    Operation("grayscale", "grayscale", _FLAG, "to grey, alpha kept", default=False,
              step="grayscale"),
    Operation("round", "round", a.Radius(),
              "round the corners (radius in pixels, or `max` for an ellipse)", step="round"),
    Operation("watermark", "watermark", a.Overlay(),
              "the stored image `{id}` over the output: at a gravity position (default "
              "`southeast`) or `tile`d, opacity 0–1, width a fraction 0.01–1 of the output's",
              step="watermark"),
    Operation("text", "text", a.Caption(),
              "percent-encoded UTF-8 text over the output, outlined: position or `tile`, "
              "opacity, cap height a fraction 0.01–0.5 of the output's, colour",
              step="text"),
    Operation("bg", "bg", a.Colour(),
              "background for `pad`, `padding`, `rotate`, `round` and for flattening alpha "
              "into JPEG (default `ffffff`)", idle=lambda o: o.bg == DEFAULT_BG, step="bg"),
    Operation("q", "quality", a.Integer(*QUALITY_RANGE),
              "encoder quality (defaults per format in config)"),
    Operation("lossless", "lossless", _FLAG, "lossless WebP, AVIF or JPEG XL", default=False),
    Operation("palette", "palette", a.Integer(2, 256),
              "PNG or GIF with at most that many colours (dithered)"),
    Operation("maxbytes", "maxbytes", a.Integer(1024, 52428800),
              "JPEG/WebP/AVIF/JPEG XL: the highest quality down to 10 whose result fits"),
    Operation("fmt", "format", a.Choice((*FORMATS, "auto"), FORMAT_ALIASES, lower=True),
              "output format (`auto`: the first of `output.auto_formats` that `Accept` names)"),
    Operation("meta", "meta", a.Choice(META_MODES),
              "metadata kept: `strip`, `copyright` or `keep` (never GPS)"),
    Operation("download", "download", a.Name(r"[A-Za-z0-9._-]{1,100}",
              "a file name of 1–100 letters, digits, '.', '_' or '-'"),
              "`Content-Disposition: attachment` with this file name"),
    Operation("info", "info", _FLAG, "JSON metadata of the result instead of the image",
              default=False),
    Operation("expires", "expires", a.Integer(0, 999_999_999_999),
              "unix seconds: 403 after that time"),
)  # fmt: skip

BY_NAME: dict[str, Operation] = {name: op for op in REGISTRY for name in op.names}
FIELDS: dict[str, Operation] = {}
for _op in REGISTRY:
    if _op.field is not None:
        FIELDS.setdefault(_op.field, _op)


def _box(self) -> tuple[int | None, int | None]:
    """The resize box in output pixels, with `dpr` applied (`auto` resolved beforehand)."""
    if self.fit is None:
        return None, None
    dpr = self.dpr if isinstance(self.dpr, float) else 1.0
    return _scaled(self.fit.width, dpr), _scaled(self.fit.height, dpr)


def _effective_gravity(self) -> str | tuple[float, float]:
    if self.gravity:
        return self.gravity
    return "smart" if self.mode == "thumbnail" else "centre"


# Everything a derived-image URL asks for, validated and canonical: settings that cannot change
# the output are stored as their defaults, so equal images have equal Options.
Options = dataclasses.make_dataclass(
    "Options",
    [(name, Any, dataclasses.field(default=op.default)) for name, op in FIELDS.items()],
    frozen=True,
    slots=True,
    namespace={
        "mode": property(lambda self: self.fit.mode if self.fit else None),
        "width": property(lambda self: self.fit.width if self.fit else None),
        "height": property(lambda self: self.fit.height if self.fit else None),
        "box": property(_box),
        "effective_gravity": property(_effective_gravity),
        "background": property(lambda self: self.bg or DEFAULT_BG),
        "__module__": __name__,
    },
)


def markdown_table() -> str:
    """The operations table of the README and the OpenAPI document, written from REGISTRY
    (scripts/sync_docs.py puts it there; tests/test_registry.py checks it stayed there)."""
    rows = ["| operation | argument | meaning |", "|---|---|---|"]
    for op in REGISTRY:
        name = f"`{op.name}`" + "".join(f" (`{alias}`)" for alias in op.aliases)
        arg = "–" if op.arity == 0 else f"`{op.arg.describe}`"
        cells = (cell.replace("|", "\\|") for cell in (name, arg, op.summary))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def fit(mode: str, width: int | None = None, height: int | None = None) -> Fit:
    return Fit(mode, width, height)


def _scaled(value: int | None, dpr: float) -> int | None:
    if value is None:
        return None
    return max(1, round(value * dpr))


def uses_faces(o: Any) -> bool:
    """Whether the output depends on the faces found in the original (so its ETag names the
    detector, and the render needs the findings)."""
    face_crop = o.mode in ("fill", "thumbnail") and o.gravity == "face"
    return bool(face_crop or o.faces or o.info)
