"""The URL codec: parse(path) -> (Options, SourceRef) and its canonical inverse build()."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from . import ops
from .errors import BadRequest
from .ops import Options

ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ID_WITH_SUFFIX_RE = re.compile(r"^([0-9a-f]{32})(?:\.([A-Za-z0-9]+))?$")
_URL_RE = re.compile(r"^(https?):/*", re.IGNORECASE)
_ENCODED_URL_RE = re.compile(r"^https?%3a", re.IGNORECASE)
_UINT_RE = re.compile(r"^[0-9]{1,9}$")
_SECONDS_RE = re.compile(r"^[0-9]{1,12}$")
_DECIMAL_RE = re.compile(r"^[0-9]{1,4}(\.[0-9]{1,6})?$")
_BOX_RE = re.compile(r"^([0-9]{1,9})?x([0-9]{1,9})?$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]{6}$")

# name -> number of arguments; `mirror` is an alias of `flop`.
ARITY = {
    "crop": 1, "rotate": 1, "flip": 0, "flop": 0, "mirror": 0,
    "resize": 1, "fill": 1, "thumbnail": 1, "pad": 1, "stretch": 1,
    "enlarge": 0, "gravity": 1, "dpr": 1, "blur": 1, "sharpen": 1, "grayscale": 0,
    "bg": 1, "q": 1, "fmt": 1, "info": 0, "expires": 1,
}  # fmt: skip
_ALIASES = {"mirror": "flop"}
_GRAVITY_ALIASES = {"center": "centre"}


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where the original comes from: a stored id or a remote http(s) URL."""

    kind: str  # "id" or "url"
    value: str

    @property
    def is_stored(self) -> bool:
        return self.kind == "id"


def parse(path: str, query: str = "", *, max_dimension: int = 8192) -> tuple[Options, SourceRef]:
    """Read a derived-image path (still percent-encoded, signature removed) left to right.

    Raises BadRequest naming the offending segment.
    """
    segments = path.lstrip("/").split("/")
    fields, i = _parse_operations(segments, max_dimension)
    source, suffix = _parse_source("/".join(segments[i:]), query)
    if suffix is not None:
        fmt = ops.normalise_format(suffix)
        if fmt is None:
            raise BadRequest(f"'.{suffix}': unknown output format")
        if fields.get("format", fmt) != fmt:
            raise BadRequest(f"'.{suffix}': suffix disagrees with fmt/{fields['format']}")
        fields["format"] = fmt
    options = normalise(Options(**fields))
    _check_box(options, max_dimension)
    return options, source


def parse_operations(path: str, *, max_dimension: int = 8192) -> Options:
    """Operations only, no source: the path of `POST /{operations…}` with the image in the body."""
    segments = path.strip("/").split("/")
    if segments == [""]:
        return Options()
    fields, i = _parse_operations(segments, max_dimension)
    if i < len(segments):
        raise BadRequest(f"'{segments[i]}': not an operation (the image goes in the body)")
    options = normalise(Options(**fields))
    _check_box(options, max_dimension)
    return options


def _parse_operations(segments: list[str], max_dimension: int) -> tuple[dict[str, object], int]:
    fields: dict[str, object] = {}
    seen: set[str] = set()
    i = 0
    while i < len(segments) and segments[i] in ARITY:
        name = segments[i]
        canonical = _ALIASES.get(name, name)
        family = "resize" if canonical in ops.RESIZE_MODES else canonical
        if family in seen:
            raise BadRequest(f"'{name}': only one {_family_label(family)} per URL")
        seen.add(family)
        if ARITY[name] == 0:
            fields[canonical] = True
            i += 1
            continue
        if i + 1 >= len(segments) or segments[i + 1] == "":
            raise BadRequest(f"'{name}' needs an argument")
        _apply(fields, canonical, segments[i + 1], max_dimension)
        i += 2
    return fields, i


def build(options: Options, source: SourceRef) -> str:
    """The canonical path of (options, source): fixed operation order, canonical arguments."""
    o = options
    parts: list[str] = []
    if o.crop:
        parts += ["crop", ",".join(str(v) for v in o.crop)]
    if o.rotate:
        parts += ["rotate", str(o.rotate)]
    if o.flip:
        parts.append("flip")
    if o.flop:
        parts.append("flop")
    if o.mode:
        parts += [o.mode, f"{o.width or ''}x{o.height or ''}"]
    if o.enlarge:
        parts.append("enlarge")
    if o.gravity:
        parts += ["gravity", o.gravity]
    if o.dpr != 1.0:
        parts += ["dpr", _num(o.dpr)]
    if o.blur is not None:
        parts += ["blur", _num(o.blur)]
    if o.sharpen is not None:
        parts += ["sharpen", _num(o.sharpen)]
    if o.grayscale:
        parts.append("grayscale")
    if o.bg:
        parts += ["bg", o.bg]
    if o.quality is not None:
        parts += ["q", str(o.quality)]
    if o.format:
        parts += ["fmt", o.format]
    if o.info:
        parts.append("info")
    if o.expires is not None:
        parts += ["expires", str(o.expires)]
    parts.append(source.value)
    return "/" + "/".join(parts)


def normalise(o: Options) -> Options:
    """Drop settings that cannot change the output, so equal images get equal URLs."""
    changes: dict[str, object] = {}
    if o.mode is None:
        changes.update(enlarge=False, gravity=None, dpr=1.0)
    elif o.mode not in ("fill", "thumbnail", "pad"):
        changes["gravity"] = None
    elif o.mode == "pad":
        if o.gravity in ("smart", "entropy", "centre"):
            changes["gravity"] = None
    elif o.gravity == ("smart" if o.mode == "thumbnail" else "centre"):
        changes["gravity"] = None
    if o.bg == ops.DEFAULT_BG:
        changes["bg"] = None
    return dataclasses.replace(o, **changes) if changes else o


def _family_label(family: str) -> str:
    if family == "resize":
        return "of resize, fill, thumbnail, pad or stretch"
    return f"'{family}'"


def _apply(fields: dict[str, object], name: str, arg: str, max_dimension: int) -> None:
    where = f"'{name}/{arg}'"
    if name == "crop":
        values = arg.split(",")
        if len(values) != 4 or not all(_UINT_RE.match(v) for v in values):
            raise BadRequest(f"{where}: expected x,y,w,h as four whole numbers")
        x, y, w, h = (int(v) for v in values)
        if w < 1 or h < 1:
            raise BadRequest(f"{where}: width and height must be at least 1")
        fields["crop"] = (x, y, w, h)
    elif name == "rotate":
        if arg not in ("90", "180", "270"):
            raise BadRequest(f"{where}: expected 90, 180 or 270")
        fields["rotate"] = int(arg)
    elif name in ops.RESIZE_MODES:
        match = _BOX_RE.match(arg)
        if not match or not (match[1] or match[2]):
            raise BadRequest(f"{where}: expected WxH, Wx or xH")
        width = int(match[1]) if match[1] else None
        height = int(match[2]) if match[2] else None
        if name != "resize" and (width is None or height is None):
            raise BadRequest(f"{where}: {name} needs both width and height (WxH)")
        for value in (width, height):
            if value is not None and not 1 <= value <= max_dimension:
                raise BadRequest(f"{where}: dimensions must be between 1 and {max_dimension}")
        fields.update(mode=name, width=width, height=height)
    elif name == "gravity":
        gravity = _GRAVITY_ALIASES.get(arg, arg)
        if gravity not in ops.GRAVITIES:
            raise BadRequest(f"{where}: expected one of {', '.join(ops.GRAVITIES)}")
        fields["gravity"] = gravity
    elif name in ("dpr", "blur", "sharpen"):
        low, high = {"dpr": ops.DPR_RANGE, "blur": ops.BLUR_RANGE, "sharpen": ops.SHARPEN_RANGE}[
            name
        ]
        if not _DECIMAL_RE.match(arg) or not low <= float(arg) <= high:
            raise BadRequest(f"{where}: expected a number from {_num(low)} to {_num(high)}")
        fields[name] = float(arg)
    elif name == "bg":
        if not _HEX_RE.match(arg):
            raise BadRequest(f"{where}: expected a colour as RRGGBB hex")
        fields["bg"] = arg.lower()
    elif name == "q":
        if not _UINT_RE.match(arg) or not 1 <= int(arg) <= 100:
            raise BadRequest(f"{where}: expected a quality from 1 to 100")
        fields["quality"] = int(arg)
    elif name == "fmt":
        fmt = "auto" if arg.lower() == "auto" else ops.normalise_format(arg)
        if fmt is None:
            raise BadRequest(f"{where}: expected one of jpeg, png, webp, avif, gif, tiff, auto")
        fields["format"] = fmt
    elif name == "expires":
        if not _SECONDS_RE.match(arg):
            raise BadRequest(f"{where}: expected unix seconds")
        fields["expires"] = int(arg)


def _check_box(o: Options, max_dimension: int) -> None:
    for value in o.box:
        if value is not None and value > max_dimension:
            raise BadRequest(
                f"'dpr/{_num(o.dpr)}': the box becomes larger than {max_dimension} pixels"
            )


def _parse_source(raw: str, query: str) -> tuple[SourceRef, str | None]:
    if raw == "":
        raise BadRequest("missing source: the path must end with an image id or an http(s) URL")
    match = _ID_WITH_SUFFIX_RE.match(raw)
    if match:
        # A query string on a stored id is a cache-buster (`?v=2`): it cannot change the bytes.
        return SourceRef("id", match[1]), match[2]
    if _ENCODED_URL_RE.match(raw):
        raw = unquote(raw)
    url_match = _URL_RE.match(raw)
    if not url_match:
        first = raw.split("/", 1)[0]
        raise BadRequest(f"'{first}': neither an operation nor a source (id or http(s) URL)")
    url = f"{url_match[1].lower()}://{raw[url_match.end() :]}"
    if query:
        url = f"{url}?{query}"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # `https://%5B::1%5D/x`: a port that is no number is malformed too
    except ValueError as exc:
        raise BadRequest(f"'{raw}': malformed source URL") from exc
    if not host:
        raise BadRequest(f"'{raw}': source URL has no host")
    if ":" not in host:  # IPv6 literals are not names
        try:
            host.encode("idna")
        except UnicodeError as exc:  # empty labels (`a..b`), over-long labels
            raise BadRequest(f"'{host}': not a valid host name") from exc
    return SourceRef("url", url), None


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)
