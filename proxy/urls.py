"""The URL codec: parse(path) -> (Options, SourceRef) and its canonical inverse build()."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from . import ops, paths
from .errors import BadRequest
from .ops import Options

ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ID_WITH_SUFFIX_RE = re.compile(r"^([0-9a-f]{32})(?:\.([A-Za-z0-9]+))?$")
_URL_RE = re.compile(r"^(https?):/*", re.IGNORECASE)
_ENCODED_URL_RE = re.compile(r"^https?%3a", re.IGNORECASE)
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_B64_RE = re.compile(r"^b64:([A-Za-z0-9_-]+={0,2})(?:\.([A-Za-z0-9]+))?$")
_SCHEME_RE = re.compile(r"^(s3|local):", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where the original comes from: a stored id, a remote http(s) URL, an object of an
    existing bucket (`s3://bucket/key`) or a file under sources.local.root (`local:///path`)."""

    kind: str  # "id", "url", "s3", "local" (or "file": the fallback image's own file)
    value: str

    @property
    def is_stored(self) -> bool:
        return self.kind == "id"


@dataclass(frozen=True)
class Grammar:
    """What parsing needs to know of the server: its output limit and its presets."""

    max_dimension: int = 8192
    # name -> the fields its definition sets, already parsed (see `compile_presets`)
    presets: Mapping[str, Mapping[str, object]] = dataclasses.field(default_factory=dict)
    presets_only: bool = False


DEFAULT = Grammar()


def parse(path: str, query: str = "", grammar: Grammar = DEFAULT) -> tuple[Options, SourceRef]:
    """Read a derived-image path (still percent-encoded, signature removed) left to right.

    Raises BadRequest naming the offending segment.
    """
    segments = path.lstrip("/").split("/")
    fields, i = _parse_operations(segments, grammar)
    source, suffix = _parse_source("/".join(segments[i:]), query)
    if suffix is not None:
        fmt = ops.normalise_format(suffix)
        if fmt is None:
            raise BadRequest(f"'.{suffix}': unknown output format")
        if fields.get("format", fmt) != fmt:
            raise BadRequest(f"'.{suffix}': suffix disagrees with fmt/{fields['format']}")
        fields["format"] = fmt
    return finish(fields, grammar), source


def parse_operations(path: str, grammar: Grammar = DEFAULT) -> Options:
    """Operations only, no source: the path of `POST /{operations…}` with the image in the body."""
    segments = path.strip("/").split("/")
    if segments == [""]:
        return finish({}, grammar)
    fields, i = _parse_operations(segments, grammar)
    if i < len(segments):
        raise BadRequest(f"'{segments[i]}': not an operation (the image goes in the body)")
    return finish(fields, grammar)


def compile_presets(definitions: Mapping[str, str], max_dimension: int) -> dict[str, dict]:
    """`{name: "/fill/128x128/fmt/webp"}` -> the fields each sets; ValueError naming a bad one."""
    grammar = Grammar(max_dimension=max_dimension)
    compiled = {}
    for name, definition in definitions.items():
        try:
            fields, i = _parse_operations(definition.strip("/").split("/"), grammar)
            if "preset" in fields or i < len(definition.strip("/").split("/")):
                raise BadRequest("operations only: no source, no preset inside a preset")
        except BadRequest as exc:
            raise ValueError(f"{name}: {exc.detail}") from None
        compiled[name] = fields
    return compiled


def finish(fields: dict[str, object], grammar: Grammar) -> Options:
    name = fields.pop("preset", None)
    if grammar.presets_only and (name is None or fields):
        extra = next(iter(fields), None)
        what = f"'{ops.FIELDS[extra].name}'" if extra else "a URL without preset"
        raise BadRequest(f"{what}: this server serves presets only (preset/{{name}})")
    if name is not None:
        if name not in grammar.presets:
            raise BadRequest(f"'preset/{name}': no such preset")
        fields = {**grammar.presets[name], **fields}  # the URL's own operations win
    options = normalise(Options(**fields))
    _check_box(options, grammar.max_dimension)
    return options


def _parse_operations(segments: list[str], grammar: Grammar) -> tuple[dict[str, object], int]:
    fields: dict[str, object] = {}
    seen: set[str] = set()
    i = 0
    while i < len(segments) and segments[i] in ops.BY_NAME:
        name = segments[i]
        op = ops.BY_NAME[name]
        slot = op.family or op.name
        if slot in seen:
            label = "of " + ", ".join(ops.RESIZE_MODES) if op.family else f"'{op.name}'"
            raise BadRequest(f"'{name}': only one {label} per URL")
        seen.add(slot)
        key = op.field or op.name
        if op.arity == 0:
            fields[key] = True
            i += 1
            continue
        if i + 1 >= len(segments) or segments[i + 1] == "":
            raise BadRequest(f"'{name}' needs an argument")
        arg = segments[i + 1]
        try:
            text = arg if getattr(op.arg, "raw", False) else unquote(arg)
            fields[key] = op.arg.parse(text, grammar.max_dimension)
        except ValueError as exc:
            raise BadRequest(f"'{name}/{arg}': {exc}") from None
        i += 2
    return fields, i


def build(options: Options, source: SourceRef) -> str:
    """The canonical path of (options, source): fixed operation order, canonical arguments."""
    parts: list[str] = []
    for op in ops.REGISTRY:
        if op.field is None:
            continue
        value = getattr(options, op.field)
        if value == op.default or (op.family and value.mode != op.name):
            continue
        parts += [op.name] if op.arity == 0 else [op.name, op.arg.format(value)]
    parts.append(source.value)
    return "/" + "/".join(parts)


def normalise(o: Options) -> Options:
    """Drop settings that cannot change the output, so equal images get equal URLs."""
    changes = {
        name: op.default
        for name, op in ops.FIELDS.items()
        if op.idle is not None and getattr(o, name) != op.default and op.idle(o)
    }
    return dataclasses.replace(o, **changes) if changes else o


def _check_box(o: Options, max_dimension: int) -> None:
    for value in o.box:
        if value is not None and value > max_dimension:
            raise BadRequest(f"'dpr/{o.dpr:g}': the box becomes larger than {max_dimension} pixels")


def _parse_source(raw: str, query: str) -> tuple[SourceRef, str | None]:
    if raw == "":
        raise BadRequest("missing source: the path must end with an image id or an http(s) URL")
    match = _ID_WITH_SUFFIX_RE.match(raw)
    if match:
        # A query string on a stored id is a cache-buster (`?v=2`): it cannot change the bytes.
        return SourceRef("id", match[1]), match[2]
    b64 = _B64_RE.match(raw)
    if b64:
        return _decoded_source(b64[1]), b64[2]
    scheme = _SCHEME_RE.match(raw)
    if scheme:
        # As for ids, a query string is a cache-buster: it names no other object or file.
        return _located_source(scheme[1].lower(), raw[scheme.end() :]), None
    if _ENCODED_URL_RE.match(raw):
        raw = unquote(raw)
    return url_source(raw, query), None


def _located_source(scheme: str, rest: str) -> SourceRef:
    """`s3://bucket/key` and `local:///path`, decoded once and checked (paths.py); the value
    is their one canonical spelling, so every spelling of one object shares an ETag."""
    if scheme == "s3":
        bucket, key = paths.s3_object(rest)
        return SourceRef("s3", f"s3://{bucket}/{key}")
    return SourceRef("local", f"local:///{paths.local_path(rest)}")


def _decoded_source(text: str) -> SourceRef:
    """`b64:` sources: an id or a whole URL (query included), for URLs no path keeps intact."""
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest(f"'b64:{text}': not base64url of a URL or an id") from None
    if ID_RE.match(decoded):
        return SourceRef("id", decoded)
    if not _URL_RE.match(decoded):
        raise BadRequest(f"'b64:{text}': decodes to neither an http(s) URL nor an id")
    # As a browser would send it: spaces and controls escaped, existing escapes kept.
    url, _, query = quote(decoded, safe=_URL_SAFE).partition("?")
    return url_source(url, query)


def url_source(raw: str, query: str) -> SourceRef:
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
    return SourceRef("url", url)
