"""What every dialect shares: turning a peer's source into a SourceRef, its parsed settings
into native Options, and both into the native response. A dialect module only parses."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web

from .. import imaging, inputs, urls
from ..errors import BadRequest, Forbidden
from ..handlers import respond_derived, target
from ..keys import CONFIG, GRAMMAR, POOL, RENDERER, STORE
from ..ops import Options
from ..urls import ID_RE, SourceRef

_SCHEME_RE = re.compile(r"^https?:/", re.IGNORECASE)
_ENCODED_SCHEME_RE = re.compile(r"^https?%3a", re.IGNORECASE)


class Unsupported(BadRequest):
    """Something the peer's grammar names that ProgImage cannot do: refused, never ignored."""

    def __init__(self, dialect: str, what: str, why: str = "") -> None:
        tail = f" ({why})" if why else ""
        super().__init__(f"'{what}': {dialect} names this; ProgImage cannot do it{tail}")


def source(raw: str, default_scheme: str, query: str = "") -> SourceRef:
    """A peer's image reference: a 32-hex stored id, an http(s) URL (percent-encoded or
    not), or a scheme-less URL that gets `default_scheme` (thumbor's `example.com/a.jpg`)."""
    if raw == "":
        raise BadRequest("missing source: the path must end with an image id or a URL")
    if ID_RE.match(raw):
        return SourceRef("id", raw)
    if _ENCODED_SCHEME_RE.match(raw):
        raw = unquote(raw)
    if not _SCHEME_RE.match(raw):
        raw = f"{default_scheme}://{raw}"
    return urls.url_source(raw, query)


def options(request: web.Request, fields: Mapping[str, object]) -> Options:
    """Native Options from the fields a dialect parsed (ops.FIELDS names), checked and
    normalised as a native URL's are, so equal images get equal ETags across dialects."""
    return urls.finish(dict(fields), request.app[GRAMMAR])


async def respond(request: web.Request, opts: Options, ref: SourceRef) -> web.StreamResponse:
    """The native response path: negotiation, ETag and 304, caches, render pool, fallback."""
    return await respond_derived(request, opts, ref, fallback=True)


def path_after(request: web.Request, prefix: str) -> tuple[str, str]:
    """(path below the dialect's prefix, query), still percent-encoded as the client sent
    them, since signatures cover those exact bytes."""
    path, query = target(request)
    if prefix and path.startswith(prefix):
        path = path[len(prefix) :] or "/"
    return path, query


def check_mac(expected: str, given: str, dialect: str) -> None:
    """Constant-time comparison; a wrong or missing signature is 403 as in the native URLs."""
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden(f"{dialect} signature does not match")


async def source_size(request: web.Request, ref: SourceRef) -> tuple[int, int]:
    """The upright size of the original, from its record or its header (the fetch lands in
    the source cache, so the render that follows does not fetch again)."""
    if ref.is_stored:
        record = await request.app[STORE].record(ref.value)
        return record.width, record.height
    original = await request.app[RENDERER].source_for(ref).fetch(ref)
    config = request.app[CONFIG]
    return await request.app[POOL].run(
        _upright_size,
        original.data,
        allow_svg=config.sources.allow_svg,
        max_pixels=config.limits.max_pixels,
    )


def _upright_size(data: bytes | Path, *, allow_svg: bool, max_pixels: int) -> tuple[int, int]:
    _, header = inputs.open_source(
        imaging.loadable(data), allow_svg=allow_svg, max_pixels=max_pixels
    )
    return header.width, header.height
