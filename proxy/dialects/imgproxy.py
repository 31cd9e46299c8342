"""imgproxy's URLs (SPEC §13): `/{signature}/{options}/plain/{url}[@ext]` and
`/{signature}/{options}/{base64url source}[.ext]`, parsed into native Options.

Options are applied left to right to imgproxy's own state, a later one winning as in imgproxy,
because imgproxy spreads one resize over several options (`rt`, `w`, `h`, `el`, `ex`) that
native URLs say in one. Only the finished state becomes native fields; whatever of it has no
native equivalent is refused by name (Unsupported), never dropped.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from aiohttp import web

from .. import ops, paths, urls
from ..arguments import Fit, fraction_text, number_text
from ..config import ImgproxyDialect
from ..errors import BadRequest, Forbidden
from ..keys import GRAMMAR
from ..ops import Options
from ..urls import ID_RE, Grammar, SourceRef
from . import common

DIALECT = "imgproxy"
# At the root only paths imgproxy's grammar can claim are taken: a full-length signature
# (43 characters of base64url, a SHA-256), `insecure` or `_`; everything else stays native.
ROOT_SIGNATURE = r"insecure|_|[A-Za-z0-9_-]{43}"

GRAVITIES = {
    "ce": "centre", "no": "north", "so": "south", "ea": "east", "we": "west",
    "noea": "northeast", "nowe": "northwest", "soea": "southeast", "sowe": "southwest",
}  # fmt: skip
# Where a named gravity anchors along each axis, as a fraction of the free space.
ANCHOR_XY = {
    "centre": (0.5, 0.5), "north": (0.5, 0.0), "south": (0.5, 1.0), "east": (1.0, 0.5),
    "west": (0.0, 0.5), "northeast": (1.0, 0.0), "northwest": (0.0, 0.0),
    "southeast": (1.0, 1.0), "southwest": (0.0, 1.0),
}  # fmt: skip
RESIZING_TYPES = ("fit", "fill", "fill-down", "force", "auto")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_INT_RE = re.compile(r"^[+-]?[0-9]{1,18}$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_HEX_RE = re.compile(r"^([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")
_IMAGE_SUFFIX_RE = re.compile(r"\.(jpe?g|png|webp|avif|gif|tiff?|heic|heif|bmp|svg)$", re.I)

# imgproxy's own options (open-source, 4.x) that ProgImage has no counterpart for.
NOT_HERE = {
    "min-width": "a minimum width", "mw": "a minimum width",
    "min-height": "a minimum height", "mh": "a minimum height",
    "zoom": "zooming", "z": "zooming",
    "extend_aspect_ratio": "extending to the aspect ratio", "extend_ar": "extending to the "
    "aspect ratio", "exar": "extending to the aspect ratio",
    "format_quality": "a quality per format", "fq": "a quality per format",
    "skip_processing": "skipping processing", "skp": "skipping processing",
    "raw": "raw (unprocessed) responses",
    "strip_color_profile": "keeping metadata but not the colour profile",
    "scp": "keeping metadata but not the colour profile",
    "preserve_hdr": "HDR output", "ph": "HDR output",
    "enforce_thumbnail": "using the embedded thumbnail", "eth": "using the embedded thumbnail",
    "max_src_resolution": "limits per URL", "msr": "limits per URL",
    "max_src_file_size": "limits per URL", "msfs": "limits per URL",
    "max_animation_frames": "limits per URL", "maf": "limits per URL",
    "max_animation_frame_resolution": "limits per URL", "mafr": "limits per URL",
    "max_result_dimension": "limits per URL", "mrd": "limits per URL",
}  # fmt: skip


def unsupported(what: str, why: str = "") -> common.Unsupported:
    return common.Unsupported(DIALECT, what, why)


def signature(path: str, key: str, salt: str) -> str:
    """imgproxy's signature of `path` (everything after the signature segment, from its '/'):
    HMAC-SHA256 with the key over salt + path, base64url without padding."""
    digest = hmac.new(bytes.fromhex(key), bytes.fromhex(salt) + path.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def verify(path: str, settings: ImgproxyDialect) -> str:
    """The path after the signature segment, once the signature is good; 403 otherwise."""
    sig, _, rest = path.lstrip("/").partition("/")
    signed = "/" + rest
    if settings.key and settings.salt:
        common.check_mac(signature(signed, settings.key, settings.salt), sig, DIALECT)
    elif ":" in sig:  # as imgproxy: the signature segment was forgotten
        raise Forbidden(f"'{sig}': a processing option where the signature (or 'insecure') goes")
    return signed


# --- the state options build ------------------------------------------------------------------

Gravity = str | tuple[float, float]


@dataclass
class State:
    resizing: str = "fit"
    width: int = 0
    height: int = 0
    enlarge: bool = False
    extend: bool = False
    extend_gravity: Gravity | None = None
    gravity: Gravity | None = None
    crop: tuple[float, float, Gravity | None] | None = None
    padding: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    rotate: int = 0
    flip_h: bool = False
    flip_v: bool = False
    dpr: float | str = 1.0
    strip: bool | None = None
    copyright: bool | None = None
    filename: str | None = None
    attachment: bool = False
    fields: dict[str, object] = field(default_factory=dict)  # native fields set as they are


def _bool(label: str, args: list[str]) -> bool:
    _max_args(label, args, 1)
    # imgproxy reads anything it cannot parse as a boolean as false (and logs it).
    return args[0] in _TRUE


def _max_args(label: str, args: list[str], most: int) -> None:
    if len(args) > most:
        raise BadRequest(f"'{label}:{':'.join(args)}': at most {most} arguments")


def _int(label: str, text: str, low: int | None = 0) -> int:
    if not _INT_RE.match(text) or (low is not None and int(text) < low):
        expected = "a whole number" if low is None else f"a whole number >= {low}"
        raise BadRequest(f"'{label}:{text}': expected {expected}")
    return int(text)


def _float(label: str, text: str, low: float | None = 0.0) -> float:
    if (
        not _FLOAT_RE.match(text)
        or not math.isfinite(float(text))
        or (low is not None and float(text) < low)
    ):
        expected = "a number" if low is None else f"a number >= {number_text(low)}"
        raise BadRequest(f"'{label}:{text}': expected {expected}")
    return float(text)


def _gravity(label: str, args: list[str], *, smart: bool) -> Gravity:
    """A gravity and its offsets. Offsets other than 0 move the crop by pixels or fractions
    from the anchor, which native gravities cannot say."""
    kind = args[0]
    allowed = [*GRAVITIES, *(["sm"] if smart else []), "fp"]
    text = f"{label}:{':'.join(args)}"
    if kind not in allowed:
        raise BadRequest(f"'{text}': gravity must be one of {', '.join(allowed)}")
    if kind == "sm":
        if len(args) > 1:
            raise BadRequest(f"'{text}': the smart gravity takes no offsets")
        return "smart"
    if kind == "fp":
        if len(args) != 3:
            raise BadRequest(f"'{text}': expected fp:X:Y")
        x, y = (_float(label, v) for v in args[1:])
        if not (x <= 1 and y <= 1):
            raise BadRequest(f"'{text}': the focus point is two fractions from 0 to 1")
        return round(x, 6), round(y, 6)
    if len(args) > 3:
        raise BadRequest(f"'{text}': at most a gravity and two offsets")
    offsets = [_float(label, v, None) for v in args[1:] if v != ""]
    if any(offsets):
        raise unsupported(text, "gravity offsets: native gravities anchor at the edge or centre")
    return GRAVITIES[kind]


class Parser:
    """One imgproxy path into native fields and a source, against one server's grammar."""

    def __init__(
        self, settings: ImgproxyDialect, grammar: Grammar, size: tuple[int, int] | None = None
    ) -> None:
        self.settings = settings
        self.grammar = grammar
        self.source_size = size  # the upright source's, when the geometry depends on it
        self.state = State()
        self.presets_used: list[str] = []

    def parse(self, path: str) -> tuple[Options, SourceRef]:
        """`path` is what follows the signature segment, still percent-encoded."""
        parts = path.lstrip("/").split("/")
        if parts[0] in RESIZING_TYPES:
            raise unsupported(parts[0], "imgproxy's deprecated basic URL format")
        if self.grammar.presets_only:
            return self._presets_only(parts)
        options: list[tuple[str, list[str]]] = []
        i = 0
        while i < len(parts) and ":" in parts[i]:
            name, *args = unquote(parts[i]).split(":")
            options.append((name, args))
            i += 1
        raw_url, extension = _source_text(parts[i:])
        ref = source(raw_url, self.settings.default_scheme)
        if "default" in self.grammar.presets:  # as imgproxy, the `default` preset comes first
            self.preset("preset", ["default"])
        for name, args in options:
            self.apply(name, args)
        if extension:  # imgproxy's extension overrides any format option
            self.apply("format", [extension])
        return urls.finish(self._fields_of(ref), self.grammar), ref

    def _fields_of(self, ref: SourceRef) -> dict[str, object]:
        try:
            return self.fields(ref)
        except NeedsSize as needs:
            needs.ref = ref
            raise

    def _presets_only(self, parts: list[str]) -> tuple[Options, SourceRef]:
        """`presets.only` read as imgproxy's IMGPROXY_ONLY_PRESETS: the first segment is a
        list of presets and nothing else may be asked for, but the extension (a handful of
        formats, as imgproxy allows)."""
        names = unquote(parts[0]).split(":")
        raw_url, extension = _source_text(parts[1:])
        ref = source(raw_url, self.settings.default_scheme)
        if "default" in self.grammar.presets:
            self.preset("preset", ["default"])
        self.preset("preset", names)
        if extension:
            self.apply("format", [extension])
        # Only presets were named, so the native presets-only check has nothing left to do.
        grammar = dataclasses.replace(self.grammar, presets_only=False)
        return urls.finish(self._fields_of(ref), grammar), ref

    # --- options, by imgproxy's names

    def apply(self, name: str, args: list[str]) -> None:
        handler = OPTIONS.get(name)
        if handler is None:
            if name in NOT_HERE:
                raise unsupported(f"{name}:{':'.join(args)}", NOT_HERE[name])
            raise unsupported(name, "not an imgproxy option ProgImage knows")
        handler(self, name, args)

    def resize(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 8)
        if args[0]:
            self.resizing_type(name, args[:1])
        if len(args) > 1:
            self.size(name, args[1:])

    def size(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 7)
        if args[0]:
            self.width(name, args[:1])
        if len(args) > 1 and args[1]:
            self.height(name, args[1:2])
        if len(args) > 2 and args[2]:
            self.state.enlarge = _bool(name, args[2:3])
        if len(args) > 3 and args[3]:
            self.extend(name, args[3:])

    def resizing_type(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        if args[0] not in RESIZING_TYPES:
            raise BadRequest(f"'{name}:{args[0]}': expected one of {', '.join(RESIZING_TYPES)}")
        self.state.resizing = args[0]

    def width(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        self.state.width = _int(name, args[0])

    def height(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        self.state.height = _int(name, args[0])

    def enlarge(self, name: str, args: list[str]) -> None:
        self.state.enlarge = _bool(name, args)

    def extend(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 4)
        self.state.extend = _bool(name, args[:1])
        if len(args) > 1:
            self.state.extend_gravity = _gravity(name, args[1:], smart=False)

    def dpr(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        value = _float(name, args[0])
        if value <= 0:
            raise BadRequest(f"'{name}:{args[0]}': expected a number above 0")
        low, high = ops.DPR_RANGE
        if not low <= value <= high:
            raise unsupported(f"{name}:{args[0]}", f"dpr runs from {low:g} to {high:g} here")
        self.state.dpr = round(value, 6)

    def gravity(self, name: str, args: list[str]) -> None:
        self.state.gravity = _gravity(name, args, smart=True)

    def crop(self, name: str, args: list[str]) -> None:
        width = _float(name, args[0])
        height = _float(name, args[1]) if len(args) > 1 else 0.0
        gravity = _gravity(name, args[2:], smart=True) if len(args) > 2 else None
        self.state.crop = (width, height, gravity)

    def trim(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 4)
        text = f"{name}:{':'.join(args)}"
        if len(args) > 1 and args[1]:
            raise unsupported(text, "a trim colour: the top-left pixel's colour is trimmed")
        if any(_bool(name, [flag]) for flag in args[2:] if flag):
            raise unsupported(text, "trimming equally on both sides")
        if not args[0]:
            raise unsupported(text, "imgproxy's configured default threshold: give one")
        value = _float(name, args[0])
        low, high = ops.FIELDS["trim"].arg.low, ops.FIELDS["trim"].arg.high
        if value != int(value) or not low <= value <= high:
            raise unsupported(text, f"the threshold is a whole number from {low} to {high} here")
        self.state.fields["trim"] = int(value)

    def padding(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 4)
        sides = self.state.padding
        if args[0]:
            sides[0] = _int(name, args[0])
        sides[1] = _int(name, args[1]) if len(args) > 1 and args[1] else sides[0]
        sides[2] = _int(name, args[2]) if len(args) > 2 and args[2] else sides[0]
        sides[3] = _int(name, args[3]) if len(args) > 3 and args[3] else sides[1]

    def auto_rotate(self, name: str, args: list[str]) -> None:
        if not _bool(name, args):
            raise unsupported(f"{name}:{args[0]}", "the EXIF orientation is always applied")

    def rotate(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        angle = _int(name, args[0], None)
        if angle % 90:
            raise BadRequest(f"'{name}:{args[0]}': the angle must be a multiple of 90")
        self.state.rotate = angle % 360

    def flip(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 2)
        if args[0]:
            self.state.flip_h = _bool(name, args[:1])
        if len(args) > 1 and args[1]:
            self.state.flip_v = _bool(name, args[1:2])

    def background(self, name: str, args: list[str]) -> None:
        text = f"{name}:{':'.join(args)}"
        if len(args) == 1:
            if not args[0]:
                self.state.fields.pop("bg", None)
                return
            if not _HEX_RE.match(args[0]):
                raise BadRequest(f"'{text}': expected a hex colour (RGB or RRGGBB) or R:G:B")
            hex_colour = args[0] if len(args[0]) == 6 else "".join(c * 2 for c in args[0])
        elif len(args) == 3:
            channels = [_int(name, v) for v in args]
            if any(c > 255 for c in channels):
                raise BadRequest(f"'{text}': each of R:G:B runs from 0 to 255")
            hex_colour = "".join(f"{c:02x}" for c in channels)
        else:
            raise BadRequest(f"'{text}': expected a hex colour or R:G:B")
        self.state.fields["bg"] = hex_colour.lower()

    def _effect(self, field_name: str, name: str, args: list[str], value: float) -> None:
        """blur, sharpen and pixelate: 0 is none; other values within the native range."""
        if value == 0:
            self.state.fields.pop(field_name, None)
            return
        arg = ops.FIELDS[field_name].arg
        if not arg.low <= value <= arg.high:
            raise unsupported(
                f"{name}:{args[0]}",
                f"{field_name} runs from {number_text(arg.low)} to {number_text(arg.high)} here",
            )
        # Six decimals, as native arguments are written: a smaller difference is invisible.
        self.state.fields[field_name] = round(value, 6) if isinstance(value, float) else value

    def blur(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        # imgproxy's blur and sharpen take the gaussian's sigma, as the native ones do.
        self._effect("blur", name, args, _float(name, args[0]))

    def sharpen(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        self._effect("sharpen", name, args, _float(name, args[0]))

    def pixelate(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        size = _int(name, args[0])
        # One-pixel blocks are the image itself.
        self._effect("pixelate", name, args, 0 if size == 1 else size)

    def watermark(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 7)
        text = f"{name}:{':'.join(args)}"
        opacity = _float(name, args[0])
        if opacity > 1:
            raise BadRequest(f"'{text}': the opacity runs from 0 to 1")
        if opacity == 0:
            self.state.fields.pop("watermark", None)
            return
        position = args[1] if len(args) > 1 and args[1] else "ce"
        if position not in (*GRAVITIES, "re"):
            raise BadRequest(f"'{text}': position must be one of {', '.join(GRAVITIES)}, re")
        if any(_float(name, v, None) for v in args[2:4] if v):
            raise unsupported(text, "watermark offsets: it sits at its position's margin")
        scale = _float(name, args[4]) if len(args) > 4 and args[4] else 0.0
        if len(args) > 5:
            raise unsupported(text, "watermark arguments after the scale")
        if scale == 0:
            raise unsupported(text, "a watermark at its own size: give a scale (0.01 to 1)")
        if not 0.01 <= scale <= 1:
            raise unsupported(text, "the scale runs from 0.01 to 1 here")
        image = self.settings.watermark
        if image is None:
            raise unsupported(text, "no watermark image: set dialects.imgproxy.watermark")
        placed = "tile" if position == "re" else GRAVITIES[position]
        text = f"{image},{placed},{number_text(round(opacity, 4))},{number_text(round(scale, 4))}"
        self.state.fields["watermark"] = self._native("watermark", text, name)

    def quality(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        value = _int(name, args[0])
        if value > 100:
            raise BadRequest(f"'{name}:{args[0]}': the quality runs from 0 to 100")
        if value == 0:  # imgproxy's 0: the default quality
            self.state.fields.pop("quality", None)
        else:
            self.state.fields["quality"] = value

    def max_bytes(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        value = _int(name, args[0])
        arg = ops.FIELDS["maxbytes"].arg
        if value == 0:
            self.state.fields.pop("maxbytes", None)
        elif not arg.low <= value <= arg.high:
            raise unsupported(f"{name}:{args[0]}", f"from {arg.low} to {arg.high} bytes here")
        else:
            self.state.fields["maxbytes"] = value

    def format(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        fmt = ops.normalise_format(args[0])
        if fmt is None:
            raise unsupported(f"{name}:{args[0]}", f"output formats: {', '.join(ops.FORMATS)}")
        self.state.fields["format"] = fmt

    def cachebuster(self, name: str, args: list[str]) -> None:
        # It changes the URL (so every cache in front misses), never the image: nothing to do.
        _max_args(name, args, 1)

    def expires(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 1)
        stamp = _int(name, args[0], None)
        if stamp > 0:  # past ones are refused (403) by the native path, as `expires` is
            self.state.fields["expires"] = self._native("expires", str(stamp), name)
        else:
            self.state.fields.pop("expires", None)

    def filename(self, name: str, args: list[str]) -> None:
        _max_args(name, args, 2)
        value = args[0]
        if len(args) > 1 and args[1] and _bool(name, args[1:]):
            try:
                value = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                raise BadRequest(f"'{name}:{args[0]}': not base64url of a file name") from None
        self.state.filename = value

    def return_attachment(self, name: str, args: list[str]) -> None:
        self.state.attachment = _bool(name, args)

    def strip_metadata(self, name: str, args: list[str]) -> None:
        self.state.strip = _bool(name, args)

    def keep_copyright(self, name: str, args: list[str]) -> None:
        self.state.copyright = _bool(name, args)

    def preset(self, name: str, args: list[str]) -> None:
        for preset_name in args:
            if preset_name in self.presets_used:
                continue  # as imgproxy: a preset used twice applies once
            if preset_name not in self.grammar.presets:
                raise BadRequest(f"'{name}:{preset_name}': no such preset")
            self.presets_used.append(preset_name)
            self._native_preset(self.grammar.presets[preset_name])

    def _native_preset(self, preset: dict[str, object]) -> None:
        """A native preset's fields, translated into imgproxy's state where the state has
        its own say (the resize, its gravity, the flips), so later options refine it."""
        s = self.state
        for key, value in preset.items():
            if key == "fit":
                assert isinstance(value, Fit)
                s.resizing, s.extend = {
                    "resize": ("fit", False), "pad": ("fit", True), "fill": ("fill", False),
                    "thumbnail": ("fill", False), "stretch": ("force", False),
                }[value.mode]  # fmt: skip
                s.width, s.height = value.width or 0, value.height or 0
                if value.mode == "thumbnail" and "gravity" not in preset:
                    s.gravity = "smart"
            elif key == "gravity":
                s.gravity = s.extend_gravity = value  # type: ignore[assignment]
            elif key in ("enlarge", "dpr", "rotate"):
                setattr(s, key, value)
            elif key == "padding":
                s.padding = list(value)  # type: ignore[call-overload]
            elif key in ("flip", "flop"):
                setattr(s, "flip_v" if key == "flip" else "flip_h", value)
            else:
                s.fields[key] = value

    def _native(self, op: str, text: str, label: str):
        """`text` read by the native operation's own argument grammar: the native ranges
        and limits apply, and what falls outside them is refused by the imgproxy name."""
        try:
            return ops.BY_NAME[op].arg.parse(text, self.grammar.max_dimension)
        except ValueError as exc:
            raise unsupported(label, str(exc)) from None

    # --- the finished state as native fields

    def fields(self, ref: SourceRef) -> dict[str, object]:
        s = self.state
        fields = dict(s.fields)
        if s.crop is not None:  # the URL's own crop replaces a preset's
            fields.pop("crop", None)
        try:
            fields.update(self._geometry())
        except NeedsSize:
            if self.source_size is None:
                raise
            fields.update(self._sized(self.source_size))
        if any(s.padding):
            if s.dpr != 1.0:
                raise unsupported("padding", "with a dpr: imgproxy scales the padding by it")
            fields["padding"] = self._native("padding", ",".join(map(str, s.padding)), "padding")
        for key, value in (("rotate", s.rotate), ("flop", s.flip_h), ("flip", s.flip_v)):
            if value:
                fields[key] = value
        meta = self._meta()
        if meta is not None:
            fields["meta"] = meta
        if s.attachment:
            fields["download"] = self._download_name(ref)
        elif s.filename is not None:
            raise unsupported("filename", "a file name without return_attachment:1")
        return fields

    def _geometry(self) -> dict[str, object]:
        """crop, resize and extend as native fields, where that needs no knowledge of the
        source; NeedsSize where imgproxy's result depends on the source's size."""
        s = self.state
        fields: dict[str, object] = {}
        if s.crop is not None:
            self._check_crop()
            region = self._region(*s.crop)
            if region is not None:
                fields["crop"] = region
        fit, gravity = self._fit()
        if fit is not None:
            fields["fit"] = fit
            if gravity is not None:
                fields["gravity"] = gravity
            if s.enlarge:
                fields["enlarge"] = True
        if s.dpr != 1.0:
            fields["dpr"] = s.dpr
        return fields

    def _check_crop(self) -> None:
        s = self.state
        if s.rotate or s.flip_h or s.flip_v:
            raise unsupported("crop", "with rotate or flip: imgproxy crops the turned image")
        if (s.crop[2] or s.gravity) == "smart":
            raise unsupported("crop gravity sm", "a smart crop region")

    def _fit(self) -> tuple[Fit | None, Gravity | None]:
        s = self.state
        w, h, rt = s.width, s.height, s.resizing
        if not w and not h:
            return None, None
        if (not w or not h) and rt != "force" and not s.extend:
            # One side given: every resizing type scales to it, none crops.
            return self._box("resize", w, h), None
        if rt == "fit" and w and h:
            if s.extend:
                return self._box("pad", w, h), self._placement(s.extend_gravity)
            return self._box("resize", w, h), None
        if rt == "fill-down" and not s.extend:
            return self._box("fill", w, h), s.gravity  # native fill keeps the aspect too
        if s.enlarge and w and h and rt in ("fill", "force"):
            # Enlarged, fill and force always reach the box: nothing is left to extend.
            return self._box("stretch" if rt == "force" else "fill", w, h), s.gravity
        # fill and force not enlarged, auto, extend with a side of 0: the source decides.
        raise NeedsSize

    # --- with the source's size: imgproxy's own arithmetic

    def _sized(self, size: tuple[int, int]) -> dict[str, object]:
        """imgproxy's geometry (processing/prepare.go) computed for this source, said in
        native terms: a pixel crop region, then fill, stretch or pad to the exact size."""
        s = self.state
        width, height = size if s.rotate % 180 == 0 else size[::-1]
        fields: dict[str, object] = {}
        x = y = 0
        sw, sh = width, height
        if s.crop is not None:
            self._check_crop()
            cw, ch, gravity = s.crop
            sw = min(_crop_size(width, cw) or width, width)
            sh = min(_crop_size(height, ch) or height, height)
            x, y = _position(width, height, sw, sh, gravity or s.gravity or "centre")
        if not s.width and not s.height:
            return self._region_field(x, y, sw, sh, width, height)
        rt, wscale, hscale, target, result = _imgproxy_scale(s, sw, sh)
        canvas = (max(result[0], target[0]), max(result[1], target[1])) if s.extend else result
        if canvas == result:
            fields.update(self._region_field(x, y, sw, sh, width, height))
            mode = "fill" if wscale == hscale else "stretch"
            fields["fit"] = self._box(mode, *result)
            if mode == "fill" and rt in ("fill", "fill-down") and s.gravity is not None:
                fields["gravity"] = s.gravity
            if result[0] > sw or result[1] > sh:
                fields["enlarge"] = True
            return fields
        if rt == "fit" and all(target):
            fields.update(self._region_field(x, y, sw, sh, width, height))
            fields["fit"] = self._box("pad", *target)
        elif wscale == hscale == 1.0:
            # Not scaled: the result is a crop of the source, placed on the canvas.
            gravity = s.gravity or "centre"
            if gravity == "smart" and result != (sw, sh):
                raise unsupported("extend", "with gravity sm: a smart crop, then extended")
            dx, dy = _position(sw, sh, *result, gravity)
            fields.update(self._region_field(x + dx, y + dy, *result, width, height))
            fields["fit"] = self._box("pad", *canvas)
        else:
            raise unsupported("extend", f"with resizing_type {rt} scaling each side apart")
        if s.enlarge:
            fields["enlarge"] = True
        placement = self._placement(s.extend_gravity)
        if placement is not None:
            fields["gravity"] = placement
        return fields

    def _region_field(self, x: int, y: int, w: int, h: int, width: int, height: int) -> dict:
        if (x, y, w, h) == (0, 0, width, height):
            return {}
        try:
            region = ops.FIELDS["crop"].arg.parse(f"{x},{y},{w},{h}", self.grammar.max_dimension)
        except ValueError as exc:
            raise BadRequest(f"'crop': {exc}") from None
        return {"crop": region}

    def _box(self, mode: str, w: int, h: int) -> Fit:
        text = f"{w or ''}x{h or ''}"
        try:
            return ops.BY_NAME[mode].arg.parse(text, self.grammar.max_dimension)
        except ValueError as exc:
            raise BadRequest(f"'{w}:{h}': {exc}") from None

    def _placement(self, gravity: Gravity | None) -> str | None:
        if isinstance(gravity, tuple):
            raise unsupported("extend gravity fp", "the image is placed by name only")
        return gravity

    def _region(self, width: float, height: float, gravity: Gravity | None) -> tuple | None:
        """imgproxy's crop (a size, pixels or a fraction, at a gravity) as the native
        region x,y,w,h, per axis, where the native units can say it."""
        gravity = gravity or self.state.gravity or "centre"
        axes = []
        for size, index in ((width, 0), (height, 1)):
            # As imgproxy: 0 is the whole side, 1 or more whole pixels, less a fraction.
            extent: int | float = 1.0 if size == 0 else int(size) if size >= 1 else size
            if isinstance(gravity, tuple):
                anchor = None
                focus = gravity[index]
            else:
                anchor, focus = ANCHOR_XY[gravity][index], None
            if isinstance(extent, float):
                if focus is not None:
                    start = min(max(0.0, focus - extent / 2), 1.0 - extent)
                else:
                    start = (1.0 - extent) * anchor
                axes.append((round(start, 6), round(extent, 6)))
            elif anchor == 0.0:
                axes.append((0, extent))
            else:  # pixels placed from the far edge or the centre: where depends on the size
                raise NeedsSize
        (x, w), (y, h) = axes
        if (x, y, w, h) == (0.0, 0.0, 1.0, 1.0):
            return None
        region = tuple(0 if v == 0 else v for v in (x, y, w, h))
        text = ",".join(fraction_text(v) if isinstance(v, float) else str(v) for v in region)
        try:
            return ops.FIELDS["crop"].arg.parse(text, self.grammar.max_dimension)
        except ValueError as exc:
            raise BadRequest(f"'crop': {exc}") from None

    def _meta(self) -> str | None:
        s = self.state
        if s.strip is None and s.copyright is None:
            return None  # the server's own output.metadata
        # imgproxy's defaults: metadata stripped, copyright kept.
        if s.strip is False:
            return "keep"
        return "strip" if s.copyright is False else "copyright"

    def _download_name(self, ref: SourceRef) -> str:
        name = self.state.filename
        if name is None:  # as imgproxy: the source's own file name
            last = ref.value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            name = _NAME_UNSAFE_RE.sub("_", unquote(last))[:100] or "image"
        name = _IMAGE_SUFFIX_RE.sub("", name) or name  # the extension comes from the result
        try:
            return ops.FIELDS["download"].arg.parse(name, 0)
        except ValueError as exc:
            raise unsupported(f"filename:{name}", str(exc)) from None


class NeedsSize(Exception):  # noqa: N818  (a signal, not a failure)
    """The URL's geometry depends on the source's size: parse again with it. `ref` names
    the source whose size is needed."""

    ref: SourceRef | None = None


def _round(value: float) -> int:
    """Go's math.Round, which imgproxy uses: halves away from zero."""
    return int(math.floor(value + 0.5))


def _scale(value: int, factor: float) -> int:
    return 0 if value == 0 else _round(value * factor)


def _crop_size(side: int, crop: float) -> int:
    """imgproxy's CalcCropSize: 0 is none, 1 or more pixels, less a fraction of the side."""
    if crop == 0:
        return 0
    return int(crop) if crop >= 1 else max(1, _scale(side, crop))


def _position(width: int, height: int, inner_w: int, inner_h: int, gravity: Gravity):
    """imgproxy's calcPosition (no offsets, no overflow): where an inner box sits."""
    if isinstance(gravity, tuple):
        left = round(width * gravity[0]) - inner_w // 2
        top = round(height * gravity[1]) - inner_h // 2
    else:
        left = round((width - inner_w + 1) / 2)
        top = round((height - inner_h + 1) / 2)
        gx, gy = ANCHOR_XY[gravity]
        left = {0.0: 0, 1.0: width - inner_w}.get(gx, left)
        top = {0.0: 0, 1.0: height - inner_h}.get(gy, top)
    return max(0, min(left, width - inner_w)), max(0, min(top, height - inner_h))


def _imgproxy_scale(s: State, sw: int, sh: int):
    """imgproxy's calcScale and calcSizes for a (cropped) source of sw x sh: the resizing
    type in effect, the two scales, the target and the result size."""
    bw, bh, rt = s.width, s.height, s.resizing
    dpr = s.dpr if isinstance(s.dpr, float) else 1.0
    wshrink = hshrink = 1.0
    dst_w, dst_h = bw or sw, bh or sh
    if dst_w != sw:
        wshrink = sw / dst_w
    if dst_h != sh:
        hshrink = sh / dst_h
    if wshrink != 1 or hshrink != 1:
        if rt == "auto":
            rt = "fill" if (sw - sh >= 0) == (dst_w - dst_h >= 0) else "fit"
        if bw == 0 and rt != "force":
            wshrink = hshrink
        elif bh == 0 and rt != "force":
            hshrink = wshrink
        elif rt == "fit":
            wshrink = hshrink = max(wshrink, hshrink)
        elif rt in ("fill", "fill-down"):
            wshrink = hshrink = min(wshrink, hshrink)
    dpr_scale = dpr
    if not s.enlarge:
        least = min(wshrink, hshrink)
        if least < 1:
            wshrink, hshrink = wshrink / least, hshrink / least
            if not s.extend:
                dpr_scale /= least
        dpr_scale = min(dpr_scale, wshrink, hshrink)
    wshrink, hshrink = min(wshrink / dpr_scale, sw), min(hshrink / dpr_scale, sh)
    wscale, hscale = 1 / wshrink, 1 / hshrink
    tw, th = _scale(bw, dpr_scale), _scale(bh, dpr_scale)
    scaled_w, scaled_h = _scale(sw, wscale), _scale(sh, hscale)
    crop_w, crop_h = tw, th
    if s.resizing == "fill-down" and not s.enlarge and tw and th:
        diff_w, diff_h = tw / scaled_w, th / scaled_h
        if diff_w > diff_h and diff_w > 1:
            crop_w, crop_h = scaled_w, _scale(scaled_w, th / tw)
        elif diff_h > diff_w and diff_h > 1:
            crop_w, crop_h = _scale(scaled_h, tw / th), scaled_h
    result = (min(scaled_w, crop_w or scaled_w), min(scaled_h, crop_h or scaled_h))
    return rt, wscale, hscale, (tw, th), result


def _source_text(parts: list[str]) -> tuple[str, str | None]:
    """(source, extension) from the segments after the options: `plain/{url}[@ext]`, or
    base64url that may be split by '/' (`{b64}[.ext]`)."""
    if not parts or parts == [""]:
        raise BadRequest("missing source: the path must end with plain/{url} or base64url")
    if parts[0] == "enc":
        raise unsupported("enc", "encrypted source URLs")
    if parts[0] == "plain" and len(parts) > 1:
        url, *rest = "/".join(parts[1:]).split("@")
        if len(rest) > 1:
            raise BadRequest(f"'{'/'.join(parts[1:])}': more than one @format (escape the '@')")
        return _unescaped(url), (rest[0] or None) if rest else None
    encoded, *rest = "".join(parts).split(".")
    if len(rest) > 1:
        raise BadRequest(f"'{''.join(parts)}': more than one .format")
    try:
        text = base64.urlsafe_b64decode(encoded.rstrip("=") + "=" * (-len(encoded) % 4))
        url = text.decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest(f"'{encoded}': not base64url of a source URL") from None
    return url, (rest[0] or None) if rest else None


def _unescaped(text: str) -> str:
    if not text:
        raise BadRequest("missing source: nothing after plain/")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"'{text}': not percent-encoded UTF-8") from None


def source(url: str, default_scheme: str) -> SourceRef:
    """A decoded source: a stored id, `s3://` or `local:///` as natively, else an http(s)
    URL (scheme-less ones get `default_scheme`), escaped as a browser would send it."""
    if url == "":
        raise BadRequest("missing source: the image URL is empty")
    if ID_RE.match(url):
        return SourceRef("id", url)
    scheme, sep, rest = url.partition(":")
    if sep and scheme.lower() == "s3":
        bucket, key = paths.s3_object(quote(rest, safe="/"))
        return SourceRef("s3", f"s3://{bucket}/{key}")
    if sep and scheme.lower() == "local":
        return SourceRef("local", f"local:///{paths.local_path(quote(rest, safe='/'))}")
    if sep and scheme.lower() not in ("http", "https") and rest.startswith("//"):
        raise unsupported(f"{scheme}://", "sources are ids, http(s), s3:// and local:///")
    escaped, _, query = quote(url, safe=_URL_SAFE).partition("?")
    return common.source(escaped, default_scheme, query)


def parse(
    path: str,
    settings: ImgproxyDialect,
    grammar: Grammar = urls.DEFAULT,
    size: tuple[int, int] | None = None,
):
    """(Options, SourceRef) of `path`, the part after the signature segment. NeedsSize when
    the result depends on the source's upright (width, height) and `size` is not given."""
    return Parser(settings, grammar, size).parse(path)


Handler = Callable[[Parser, str, list[str]], None]
OPTIONS: dict[str, Handler] = {}
for _names, _handler in (
    (("resize", "rs"), Parser.resize),
    (("size", "s"), Parser.size),
    (("resizing_type", "rt"), Parser.resizing_type),
    (("width", "w"), Parser.width),
    (("height", "h"), Parser.height),
    (("dpr",), Parser.dpr),
    (("enlarge", "el"), Parser.enlarge),
    (("extend", "ex"), Parser.extend),
    (("gravity", "g"), Parser.gravity),
    (("crop", "c"), Parser.crop),
    (("trim", "t"), Parser.trim),
    (("padding", "pd"), Parser.padding),
    (("auto_rotate", "ar"), Parser.auto_rotate),
    (("rotate", "rot"), Parser.rotate),
    (("flip", "fl"), Parser.flip),
    (("background", "bg"), Parser.background),
    (("blur", "bl"), Parser.blur),
    (("sharpen", "sh"), Parser.sharpen),
    (("pixelate", "pix"), Parser.pixelate),
    (("watermark", "wm"), Parser.watermark),
    (("quality", "q"), Parser.quality),
    (("max_bytes", "mb"), Parser.max_bytes),
    (("format", "f", "ext"), Parser.format),
    (("cachebuster", "cb"), Parser.cachebuster),
    (("expires", "exp"), Parser.expires),
    (("filename", "fn"), Parser.filename),
    (("return_attachment", "att"), Parser.return_attachment),
    (("preset", "pr"), Parser.preset),
    (("strip_metadata", "sm"), Parser.strip_metadata),
    (("keep_copyright", "kcr"), Parser.keep_copyright),
):
    for _name in _names:
        OPTIONS[_name] = _handler


def add_routes(router: web.UrlDispatcher, settings: ImgproxyDialect) -> None:
    prefix = settings.prefix.rstrip("/")

    async def handle(request: web.Request) -> web.StreamResponse:
        path, _ = common.path_after(request, prefix)
        if path.startswith("/info/"):  # no signature is spelled `info`: it is the endpoint
            raise unsupported("info", "imgproxy's info endpoint; GET /info/{source} answers")
        signed = verify(path, settings)
        grammar = request.app[GRAMMAR]
        try:
            options, ref = parse(signed, settings, grammar)
        except NeedsSize as needs:
            assert needs.ref is not None
            size = await common.source_size(request, needs.ref)
            options, ref = parse(signed, settings, grammar, size)
        return await common.respond(request, options, ref)

    if prefix:
        router.add_get(prefix + "/{path:(?s:.+)}", handle)
    else:
        router.add_get("/{signature:" + ROOT_SIGNATURE + "}/{path:(?s:.+)}", handle)
