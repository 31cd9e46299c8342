"""thumbor's (and imagor's) URLs (SPEC §13): `/{unsafe|signature}/[meta/][trim/][AxB:CxD/]
[fit-in/][stretch/][-]Wx[-]H/[halign/][valign/][smart/][filters:…/]{image}`, parsed into the
native operations. thumbor applies its steps in its own order (crop, resize with the crop of
`WxH`, flips, then filters such as `rotate`); the native order differs (rotate and flips come
before the resize), so the translation moves the box, the flips and the crop anchor through
the rotation, and what has no native equivalent is refused by name.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .. import ops
from ..config import ThumborDialect
from ..errors import BadRequest, Forbidden
from ..handlers import respond_derived
from ..keys import CONFIG, RENDERER
from ..ops import Options
from ..urls import SourceRef
from . import common

DIALECT = "thumbor"

_URL_RE = re.compile(
    r"(?:(?P<debug>debug)/)?"
    r"(?:(?P<meta>meta)/)?"
    r"(?:(?P<trim>trim(?::(?:top-left|bottom-right))?(?::\d+)?)/)?"
    r"(?:(?P<crop>\d+)x(?P<crop_top>\d+):(?P<crop_right>\d+)x(?P<crop_bottom>\d+)/)?"
    r"(?:(?P<fit>(?:adaptive-)?(?:full-)?fit-in)/)?"
    r"(?:(?P<stretch>stretch)/)?"
    r"(?:(?P<hflip>-)?(?P<width>\d+|orig)?x(?P<vflip>-)?(?P<height>\d+|orig)?/)?"
    r"(?:(?P<halign>left|right|center)/)?"
    r"(?:(?P<valign>top|bottom|middle)/)?"
    r"(?:(?P<smart>smart)/)?"
    r"(?:filters:(?P<filters>.+?\))/)?"
    r"(?P<image>.+)",
    re.DOTALL,
)
_FILTER_RE = re.compile(r"([a-z_]+)\((.*?)\)(?::|$)", re.DOTALL)
_SIGNATURE_RE = re.compile(r"[A-Za-z0-9_=-]{27,28}")
_HEX_RE = re.compile(r"#?([0-9a-fA-F]{6})")
_INT_RE = re.compile(r"-?\d+")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
# The colour names thumbor users write most; any other colour as RRGGBB.
_COLOURS = {
    "white": "ffffff", "black": "000000", "red": "ff0000", "green": "008000",
    "blue": "0000ff", "yellow": "ffff00", "gray": "808080", "grey": "808080",
    "silver": "c0c0c0", "orange": "ffa500", "purple": "800080", "pink": "ffc0cb",
}  # fmt: skip
# `jxl` is imagor's (thumbor has no JPEG XL): imagor URLs that name it keep working.
_FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "gif": "gif", "webp": "webp",
            "avif": "avif", "jxl": "jxl"}  # fmt: skip
# Compass offsets (x right, y down) of the native gravity names.
_COMPASS = {
    (0, 0): "centre", (0, -1): "north", (0, 1): "south", (1, 0): "east", (-1, 0): "west",
    (1, -1): "northeast", (-1, -1): "northwest", (1, 1): "southeast", (-1, 1): "southwest",
}  # fmt: skip
_HALIGN = {"left": -1, "center": 0, "right": 1}
_VALIGN = {"top": -1, "middle": 0, "bottom": 1}


def sign(key: str, path: str) -> str:
    """thumbor's signature of `path` (what follows the signature, without its leading '/'):
    HMAC-SHA1 with the security key, base64url with padding."""
    digest = hmac.new(key.encode(), path.encode(), hashlib.sha1).digest()
    return base64.urlsafe_b64encode(digest).decode()


@dataclass
class Parsed:
    """A thumbor URL in native terms: the operations (native name → argument text, parsed by
    the native argument kinds), the source, and what only the response uses."""

    operations: dict[str, str] = field(default_factory=dict)
    image: str = ""
    meta: bool = False
    max_age: int | None = None
    steps: list[str] = field(default_factory=list)  # thumbor's own names, for /meta


@dataclass
class _Request:
    """The parts of the URL's grammar, before translation."""

    width: int | str = 0  # a number, or "orig"
    height: int | str = 0
    fit_in: bool = False
    adaptive: bool = False
    full: bool = False
    stretch: bool = False
    hflip: bool = False
    vflip: bool = False
    align: tuple[int, int] = (0, 0)
    smart: bool = False
    crop: tuple[int, int, int, int] | None = None  # left, top, right, bottom
    filters: list[tuple[str, list[str]]] = field(default_factory=list)


class NeedsSize(Exception):  # noqa: N818  (a signal, not a failure)
    """The URL's box depends on the source's own size: parse again with `size`."""

    def __init__(self, image: str) -> None:
        super().__init__(image)
        self.image = image


def parse(rest: str, size: tuple[int, int] | None = None) -> Parsed:
    """The part after `unsafe/` or the signature, still percent-encoded as sent. `size` is
    the upright source's (width, height), needed only by `adaptive-`/`full-fit-in`, `orig`,
    `focal`, `proportion` and `no_upscale` (NeedsSize is raised when it is missing).

    Raises BadRequest naming what is malformed or what ProgImage cannot do."""
    match = _URL_RE.fullmatch(rest)
    if match is None:
        raise BadRequest("missing source: the path must end with an image URL or id")
    g = match.groupdict()
    if g["debug"]:
        raise common.Unsupported(DIALECT, "debug", "it draws detector boxes")
    fit = g["fit"] or ""
    req = _Request(
        width=_dimension(g["width"]),
        height=_dimension(g["height"]),
        fit_in=bool(fit),
        adaptive=fit.startswith("adaptive-"),
        full="full-" in fit,
        stretch=bool(g["stretch"]),
        hflip=bool(g["hflip"]),
        vflip=bool(g["vflip"]),
        align=(_HALIGN[g["halign"] or "center"], _VALIGN[g["valign"] or "middle"]),
        smart=bool(g["smart"]),
        filters=_filters(g["filters"] or ""),
    )
    parsed = Parsed(image=g["image"], meta=bool(g["meta"]))
    out = parsed.operations
    if g["trim"]:
        out["trim"] = _trim(g["trim"])
        parsed.steps.append("trim")
    keys = ("crop", "crop_top", "crop_right", "crop_bottom")
    crop = tuple(int(g[k]) for k in keys) if g["crop"] is not None else (0, 0, 0, 0)
    if crop[0] < crop[2] and crop[1] < crop[3]:
        # thumbor drops an empty or inverted crop (0x0:0x0 is what its libraries write).
        if "trim" in out:
            why = "thumbor trims first and moves the crop; choose one"
            raise common.Unsupported(DIALECT, "trim with a manual crop", why)
        left, top, right, bottom = crop
        req.crop = (left, top, right, bottom)
        out["crop"] = f"{left},{top},{right - left},{bottom - top}"
        parsed.steps.append("crop")
    _translate(req, parsed, size)
    return parsed


def _dimension(text: str | None) -> int | str:
    return text if text == "orig" else int(text or 0)


def _filters(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    pos = 0
    while pos < len(text):
        match = _FILTER_RE.match(text, pos)
        if match is None:
            raise BadRequest(f"'filters:{text}': malformed filter list at '{text[pos:]}'")
        args = [a.strip() for a in match[2].split(",")] if match[2].strip() else []
        found.append((match[1], args))
        pos = match.end()
    return found


def _trim(text: str) -> str:
    parts = text.split(":")[1:]
    if parts and parts[0] == "bottom-right":
        raise common.Unsupported(DIALECT, "trim:bottom-right", "trim reads the top-left pixel")
    tolerance = int(parts[-1]) if parts and parts[-1].isdigit() else 0
    if tolerance > 255:
        raise BadRequest(f"'{text}': tolerance is at most 255")
    return str(max(1, tolerance))  # thumbor's 0 is an exact match: the native minimum


def _translate(req: _Request, parsed: Parsed, size: tuple[int, int] | None) -> None:
    """Filters first (some change the box or the mode), then the box, flips and anchor."""
    out = parsed.operations
    state: dict[str, Any] = {"rotate": 0, "upscale": False, "no_upscale": False,
                             "fill": None, "focal": [], "proportion": None,
                             "stretch": False}  # fmt: skip
    for name, args in req.filters:
        handler = _FILTERS.get(name)
        if handler is None:
            raise common.Unsupported(DIALECT, f"filters:{name}")
        try:
            handler(args, out, state, req)
        except (ValueError, IndexError):
            raise BadRequest(f"'{name}({','.join(args)})': malformed arguments") from None
        parsed.steps.append(name)
        if name == "max_age":
            parsed.max_age = int(args[0])
    sized = _sized_by_source(req, state)
    if sized and size is None:
        raise NeedsSize(parsed.image)
    if sized and "trim" in out:
        raise common.Unsupported(DIALECT, f"trim with {sized}", "trim changes the size first")
    if state["focal"] and req.crop is not None:
        raise common.Unsupported(DIALECT, "focal with a manual crop", "choose one")
    width, height, mode = _target(req, state, size)
    ccw = state["rotate"]
    turned = ccw in (90, 270)
    if turned:
        width, height = height, width
    hflip, vflip = (req.vflip, req.hflip) if turned else (req.hflip, req.vflip)
    if ccw:
        out["rotate"] = str((360 - ccw) % 360)
    if hflip:
        out["flop"] = ""
    if vflip:
        out["flip"] = ""
    fill = state["fill"]
    if mode is None:
        if fill is not None and not req.fit_in:
            _set_bg(out, fill)
        return
    parsed.steps.append("fit-in" if req.fit_in else "resize")
    if mode == "fit":
        if fill is not None:
            if not (width and height):
                why = "give both width and height"
                raise common.Unsupported(DIALECT, "fill with a partial fit-in box", why)
            out["pad"] = f"{width}x{height}"
            _set_bg(out, fill)
        else:
            out["resize"] = _box(width, height)
        if state["upscale"]:
            out["enlarge"] = ""
        return
    if fill is not None:
        _set_bg(out, fill)
    if mode == "fill":
        out["fill"] = f"{width}x{height}"
        out["gravity"] = _anchor(req, state, size)
    elif mode in ("stretch", "exact"):
        out["stretch"] = f"{width}x{height}"
    else:
        out["resize"] = _box(width, height)
    out["enlarge"] = ""  # thumbor resizes to the size it computed, up or down


def _sized_by_source(req: _Request, state: dict[str, Any]) -> str | None:
    """What in the URL needs the source's own size, if anything."""
    if req.adaptive or req.full:
        return "adaptive-fit-in" if req.adaptive else "full-fit-in"
    if "orig" in (req.width, req.height):
        return "orig"
    if state["focal"]:
        return "focal"
    if state["proportion"] is not None:
        return "proportion"
    if state["no_upscale"] and not req.fit_in:
        return "no_upscale"
    return None


def _target(
    req: _Request, state: dict[str, Any], size: tuple[int, int] | None
) -> tuple[int, int, str | None]:
    """(width, height, mode) as thumbor computes them, in the source's own frame. Modes:
    None (no resize), "fit" (fit-in), "fill" (crop to the box), "stretch", "exact" (a size
    computed here, reached by stretching), "proportional" (one side given)."""
    sw, sh = size or (0, 0)
    cw, ch = sw, sh
    if size is not None and req.crop is not None:
        left, top, right, bottom = (
            min(max(v, 0), limit) for v, limit in zip(req.crop, (sw, sh, sw, sh), strict=True)
        )
        if left < right and top < bottom:
            cw, ch = right - left, bottom - top
    width = cw if req.width == "orig" else int(req.width)
    height = ch if req.height == "orig" else int(req.height)
    if state["no_upscale"] and size is not None:
        width, height = min(width, sw), min(height, sh)
    if req.fit_in:
        if not (width or height):
            mode: str | None = None
        elif req.adaptive or req.full:
            target_w = width or round(height * cw / ch)
            target_h = height or round(width * ch / cw)
            if req.adaptive and ((cw < ch and target_w > target_h) or
                                 (cw > ch and target_w < target_h)):  # fmt: skip
                target_w, target_h = target_h, target_w
            width, height, mode = target_w, target_h, "fit"
            if req.full:  # the box covered, not contained: the larger scale, up or down
                if cw / target_w <= ch / target_h:
                    width, height = target_w, round(ch * target_w / cw + 1e-5)
                else:
                    width, height = round(cw * target_h / ch + 1e-5), target_h
                mode = "exact"
        else:
            mode = "fit"
    elif width and height:
        mode = "stretch" if (req.stretch or state["stretch"]) else "fill"
    else:
        mode = "proportional" if (width or height) else None
    if state["proportion"] is not None:
        width, height, mode = _proportion(state, (cw, ch), width, height, mode)
    return width, height, mode


def _proportion(
    state: dict[str, Any], source: tuple[int, int], width: int, height: int, mode: str | None
) -> tuple[int, int, str | None]:
    """thumbor's `proportion` scales the finished image: its size, computed, then scaled."""
    if state["fill"] is not None or state["upscale"]:
        what = "fill" if state["fill"] is not None else "upscale"
        raise common.Unsupported(DIALECT, f"proportion with {what}", "choose one")
    cw, ch = source
    if mode is None:
        final = (cw, ch)
    elif mode == "proportional":
        final = (width or round(height * cw / ch), height or round(width * ch / cw))
    elif mode == "fit":
        box_w, box_h = width or round(height * cw / ch), height or round(width * ch / cw)
        if box_w >= cw and box_h >= ch:
            final = (cw, ch)
        elif cw / box_w >= ch / box_h:
            final = (box_w, round(ch * box_w / cw + 1e-5))
        else:
            final = (round(cw * box_h / ch + 1e-5), box_h)
    else:
        final = (width, height)
    share = state["proportion"]
    scaled = (int(final[0] * share), int(final[1] * share))
    if min(scaled) < 1:
        return width, height, mode  # thumbor leaves an image it would scale to nothing
    return scaled[0], scaled[1], "fill" if mode == "fill" else "exact"


def _anchor(req: _Request, state: dict[str, Any], size: tuple[int, int] | None) -> str:
    """The crop anchor of `WxH`. thumbor crops in the source's own frame; natively the crop
    comes after the rotation and flips, so the anchor goes through them too."""
    turns = ((360 - state["rotate"]) % 360) // 90  # quarter turns clockwise
    if state["focal"] and size is not None:
        x, y = _centre_of_mass(state["focal"])
        fx, fy = x / size[0], y / size[1]
        fx, fy = (1 - fx if req.hflip else fx), (1 - fy if req.vflip else fy)
        for _ in range(turns):
            fx, fy = 1 - fy, fx
        return f"{min(max(fx, 0.0), 1.0):.4f},{min(max(fy, 0.0), 1.0):.4f}"
    if req.smart:
        return "smart"
    dx, dy = req.align
    dx, dy = (-dx if req.hflip else dx), (-dy if req.vflip else dy)
    for _ in range(turns):
        dx, dy = -dy, dx  # y points down
    return _COMPASS[(dx, dy)]


def _centre_of_mass(regions: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """thumbor's: each focal region's centre, weighted by its area."""
    total = sum((r - left) * (b - top) for left, top, r, b in regions)
    x = sum((left + (r - left) // 2) * (r - left) * (b - top) for left, top, r, b in regions)
    y = sum((top + (b - top) // 2) * (r - left) * (b - top) for left, top, r, b in regions)
    return x // total, y // total


def _box(width: int, height: int) -> str:
    return f"{width or ''}x{height or ''}"


def _set_bg(out: dict[str, str], colour: object) -> None:
    if colour != "transparent":
        out["bg"] = str(colour)


def _colour(text: str) -> str:
    text = text.strip().lower()
    if text in ("transparent", "auto", "blur"):
        if text != "transparent":
            raise common.Unsupported(DIALECT, f"fill({text})", "give a colour")
        return text
    if text in _COLOURS:
        return _COLOURS[text]
    match = _HEX_RE.fullmatch(text)
    if match is None:
        raise BadRequest(f"'{text}': not a colour (a name such as white, or RRGGBB)")
    return match[1]


def _number(text: str) -> float:
    if not _NUMBER_RE.fullmatch(text):
        raise ValueError(text)
    return float(text)


def _integer(text: str) -> int:
    if not _INT_RE.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _flag(native: str) -> Callable[..., None]:
    def apply(args: list[str], out: dict[str, str], state: dict, req: _Request) -> None:
        out[native] = ""

    return apply


def _percent(native: str) -> Callable[..., None]:
    def apply(args: list[str], out: dict[str, str], state: dict, req: _Request) -> None:
        out[native] = str(_integer(args[0]))

    return apply


def _rotate(args: list[str], out: dict, state: dict, req: _Request) -> None:
    degrees = _integer(args[0])
    if degrees % 90:
        raise common.Unsupported(DIALECT, f"rotate({degrees})",
                                 "thumbor turns by multiples of 90 degrees only")  # fmt: skip
    state["rotate"] = (int(state["rotate"]) + degrees) % 360


def _saturation(args: list[str], out: dict, state: dict, req: _Request) -> None:
    # thumbor's documentation says percent, but its code multiplies the chroma by the
    # value (0.5 halves it, 1.5 adds half); negative values invert colours. What it does wins.
    factor = _number(args[0])
    if factor < 0:
        raise common.Unsupported(DIALECT, f"saturation({args[0]})",
                                 "thumbor multiplies the chroma by it; give 0 or more")  # fmt: skip
    out["saturation"] = str(max(-100, min(100, round((factor - 1) * 100))))


def _blur(args: list[str], out: dict, state: dict, req: _Request) -> None:
    radius = _number(args[0])
    sigma = _number(args[1]) if len(args) > 1 and _number(args[1]) else radius
    out["blur"] = f"{sigma:g}"


def _sharpen(args: list[str], out: dict, state: dict, req: _Request) -> None:
    # thumbor's (amount, radius, luminance_only): the radius is the native sigma.
    out["sharpen"] = f"{max(0.5, _number(args[1])):g}"


def _round_corner(args: list[str], out: dict, state: dict, req: _Request) -> None:
    radii = args[0].split("|")
    if len(radii) == 2 and radii[0] != radii[1]:
        raise common.Unsupported(DIALECT, f"round_corner({args[0]})", "elliptical corners")
    out["round"] = str(_integer(radii[0]))
    transparent = len(args) > 4 and args[4].lower() in ("1", "true")
    if not transparent:
        red, green, blue = (_integer(v) for v in args[1:4])
        out["bg"] = f"{red:02x}{green:02x}{blue:02x}"


def _fill(args: list[str], out: dict, state: dict, req: _Request) -> None:
    state["fill"] = _colour(args[0])


def _background(args: list[str], out: dict, state: dict, req: _Request) -> None:
    colour = _colour(args[0])
    if colour != "transparent":
        out["bg"] = colour


def _format(args: list[str], out: dict, state: dict, req: _Request) -> None:
    name = args[0].lower()
    if name in ("heic", "heif"):
        raise common.Unsupported(DIALECT, f"format({name})", "no HEIF encoder is shipped")
    if name not in _FORMATS:
        raise BadRequest(f"'format({args[0]})': not a format (jpeg, png, gif, webp, avif, jxl)")
    out["fmt"] = _FORMATS[name]


def _watermark(args: list[str], out: dict, state: dict, req: _Request) -> None:
    image, x, y, alpha = args[0], args[1], args[2], _number(args[3])
    if not re.fullmatch(r"[0-9a-f]{32}", image):
        why = "the watermark must be a stored id"
        raise common.Unsupported(DIALECT, f"watermark({image})", why)
    position = _watermark_position(x, y)
    size = f",{_number(args[4]) / 100:g}" if len(args) > 4 and args[4] not in ("", "none") else ""
    out["watermark"] = f"{image},{position},{max(0.0, 1 - alpha / 100):g}{size}"


def _watermark_position(x: str, y: str) -> str:
    """thumbor places by pixel offsets; the native overlay by compass point with its own
    margin, so only the side each offset measures from carries over."""
    if x == "repeat" and y == "repeat":
        return "tile"

    def side(value: str) -> int:
        if value == "center":
            return 0
        if not re.fullmatch(r"-?\d+p?", value):
            raise BadRequest(f"'{value}': not a watermark position")
        return 1 if value.startswith("-") else -1

    return _COMPASS[(side(x), side(y))]


def _max_bytes(args: list[str], out: dict, state: dict, req: _Request) -> None:
    out["maxbytes"] = str(_integer(args[0]))


def _set_state(key: str) -> Callable[..., None]:
    def apply(args: list[str], out: dict, state: dict, req: _Request) -> None:
        state[key] = True

    return apply


def _focal(args: list[str], out: dict, state: dict, req: _Request) -> None:
    match = re.fullmatch(r"(\d+)x(\d+):(\d+)x(\d+)", args[0])
    if match is None:
        raise ValueError(args[0])
    left, top, right, bottom = (int(v) for v in match.groups())
    if right > left and bottom > top:  # thumbor skips an empty region
        state["focal"].append((left, top, right, bottom))


def _proportion_filter(args: list[str], out: dict, state: dict, req: _Request) -> None:
    share = _number(args[0])
    if not 0 < share <= 1:
        raise common.Unsupported(DIALECT, f"proportion({args[0]})",
                                 "thumbor scales by a share from 0 to 1")  # fmt: skip
    state["proportion"] = share


def _max_age(args: list[str], out: dict, state: dict, req: _Request) -> None:
    if _integer(args[0]) < 0:
        raise ValueError(args[0])


_FILTERS: dict[str, Callable[..., None]] = {
    "format": _format,
    "quality": lambda args, out, state, req: out.__setitem__("q", str(_integer(args[0]))),
    "blur": _blur,
    "sharpen": _sharpen,
    "grayscale": _flag("grayscale"),
    "rotate": _rotate,
    "fill": _fill,
    "background_color": _background,
    "upscale": _set_state("upscale"),
    "no_upscale": _set_state("no_upscale"),
    "stretch": _set_state("stretch"),
    "brightness": _percent("brightness"),
    "contrast": _percent("contrast"),
    "saturation": _saturation,
    "hue": lambda args, out, state, req: out.__setitem__("hue", str(_integer(args[0]) % 360)),
    "round_corner": _round_corner,
    "watermark": _watermark,
    "max_bytes": _max_bytes,
    "strip_exif": lambda args, out, state, req: out.__setitem__("meta", "strip"),
    "strip_icc": lambda args, out, state, req: out.__setitem__("meta", "strip"),
    "max_age": _max_age,
    "focal": _focal,
    "proportion": _proportion_filter,
}


def fields(parsed: Parsed, limit: int) -> dict[str, object]:
    """The native fields, each argument through the native argument kind (ranges included)."""
    result: dict[str, object] = {}
    for name, text in parsed.operations.items():
        op = ops.BY_NAME[name]
        key = op.field or op.name
        if op.arity == 0:
            result[key] = True
            continue
        try:
            result[key] = op.arg.parse(text, limit)
        except ValueError as exc:
            raise BadRequest(f"'{name}/{text}' (from the thumbor URL): {exc}") from None
    return result


def check(path: str, settings: ThumborDialect) -> str:
    """What follows `unsafe/` or a valid signature; Forbidden otherwise."""
    head, _, rest = path.lstrip("/").partition("/")
    if head == "unsafe":
        if settings.key and not settings.allow_unsafe:
            raise Forbidden("unsafe thumbor URLs are off on this server: sign the URL")
        return rest
    if settings.key is None:
        raise Forbidden("thumbor signatures need dialects.thumbor.key; use /unsafe/")
    common.check_mac(sign(settings.key, rest), unquote(head), DIALECT)
    return rest


def add_routes(router: web.UrlDispatcher, settings: ThumborDialect) -> None:
    prefix = settings.prefix

    async def handle(request: web.Request) -> web.StreamResponse:
        path, _query = common.path_after(request, prefix)
        # thumbor signs the path only, so the query string names nothing here.
        rest = check(path, settings)
        try:
            parsed = parse(rest)
        except NeedsSize as needs:
            ref = common.source(needs.image, settings.default_scheme)
            parsed = parse(rest, await common.source_size(request, ref))
        limit = request.app[CONFIG].limits.max_output_dimension
        opts = common.options(request, fields(parsed, limit))
        ref = common.source(parsed.image, settings.default_scheme)
        if parsed.meta:
            return await _meta(request, opts, ref, parsed)
        response = await respond_derived(request, opts, ref, fallback=True)
        if parsed.max_age is not None and response.status == 200:
            response.headers["Cache-Control"] = f"public, max-age={parsed.max_age}"
        return response

    router.add_get(prefix + "/unsafe/{tail:(?s:.+)}", handle)
    router.add_get(prefix + "/{signature:[A-Za-z0-9_=%-]{27,30}}/{tail:(?s:.+)}", handle)


async def _meta(
    request: web.Request, opts: Options, ref: SourceRef, parsed: Parsed
) -> web.Response:
    """thumbor's `/meta` JSON: the source's size, the operations, the target's size."""
    renderer = request.app[RENDERER]
    facts = []
    for asked in (opts, Options()):  # the result, then the source as it is
        rendition = await renderer.prepare(dataclasses.replace(asked, info=True), ref, {})
        await renderer.render(rendition)
        assert rendition.result is not None
        facts.append(rendition.result)
    target, source = facts
    body = {
        "thumbor": {
            "source": {
                "url": ref.value,
                "width": source.width,
                "height": source.height,
                "frameCount": source.pages or 1,
            },
            "operations": _operations(parsed, target.width, target.height),
            "target": {"width": target.width, "height": target.height},
        }
    }
    return web.json_response(body, headers={"Cache-Control": "public, max-age=60"})


def _operations(parsed: Parsed, width: int, height: int) -> list[dict[str, object]]:
    """thumbor's list: the manual crop, the resize to the target, the flips."""
    out = parsed.operations
    found: list[dict[str, object]] = []
    if "crop" in out:
        left, top, w, h = (int(v) for v in out["crop"].split(","))
        found.append({"type": "crop", "left": left, "top": top, "right": left + w,
                      "bottom": top + h})  # fmt: skip
    if any(mode in out for mode in ops.RESIZE_MODES):
        found.append({"type": "resize", "width": width, "height": height})
    found += [{"type": "flip_horizontally"}] * ("flop" in out)
    found += [{"type": "flip_vertically"}] * ("flip" in out)
    return found
