"""imaginary's HTTP API (SPEC §13): `/{endpoint}?params` with the image in the POST body (raw
or multipart `file`), at `url=` (a remote URL, under the native SSRF rules) or at `file=` (a
stored image id). The parameters become native Options (imaginary_ops.py); GET answers take
the native response path (ETags, caches, negotiation), POST bodies the native on-demand
render. Errors on these routes leave in imaginary's shape, `{"message": …, "status": …}`.

`dialects.imaginary.key`, when set, is both imaginary's API key (`API-Key` header or `key=`)
and its URL-signature key (`sign=`): either one lets a request in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote_plus, unquote

import pyvips
from aiohttp import web

from .. import handlers, imaging, inputs
from ..config import ImaginaryDialect
from ..errors import BadRequest, Forbidden, MethodNotAllowed, ProxyError, UpstreamMissing
from ..keys import CONFIG, GRAMMAR, POOL, RENDERER, STORE
from ..ops import Options
from ..urls import ID_RE, SourceRef
from . import common
from . import imaginary_ops as iops
from . import imaginary_pipeline as pipeline
from .imaginary_params import ParamError, Params, Step, read

ROUTES = (*iops.ENDPOINTS, "info", "pipeline")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT"})  # a PUT body reads like a POST one
Size = tuple[int, int]
_RAW_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class ImaginaryError(ProxyError):
    """An error imaginary itself defines, with its status (error.go)."""

    log = False

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_routes(router: web.UrlDispatcher, settings: ImaginaryDialect) -> None:
    prefix = settings.prefix.rstrip("/")
    for name in ROUTES:
        # Exact paths: at the root, `/resize` is imaginary's and `/resize/300x/{id}` native.
        router.add_route("*", f"{prefix}/{name}", _handler(name, settings))


def _handler(name: str, settings: ImaginaryDialect) -> Callable[[web.Request], Awaitable]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await _serve(request, name, settings)
        except ProxyError as error:
            return _error(error)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error(ImaginaryError(exc.text or exc.reason, exc.status))

    return handle


def _error(error: ProxyError) -> web.Response:
    # error.go: {"message": …, "status": …}; HTTPCode() turns anything outside 400–511 to 503.
    status = error.status if 400 <= error.status <= 511 else 503
    if isinstance(error, UpstreamMissing):
        status = 404  # source_http.go passes the origin's status on
    headers = {**error.headers, "Cache-Control": "no-store"}
    body = json.dumps({"message": error.detail.replace("\n", ""), "status": status})
    return web.Response(
        body=body.encode(), status=status, content_type="application/json", headers=headers
    )


# --- authorisation


def signature(path: str, query: str, key: str) -> str:
    """imaginary's URL signature (middleware.go validateURLSignature): HMAC-SHA256 over the
    decoded path and the query without `sign`, re-encoded with its keys sorted as Go's
    url.Values.Encode does; base64url without padding."""
    pairs = _pairs(query)
    encoded = "&".join(
        f"{quote_plus(k)}={quote_plus(v)}"
        for k, v in sorted((p for p in pairs if p[0] != "sign"), key=lambda p: p[0])
    )
    mac = hmac.new(key.encode(), (unquote(path) + encoded).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _pairs(query: str) -> list[tuple[str, str]]:
    # Go's url.ParseQuery: `+` is a space, pairs split on `&` only, blank values kept.
    out = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.append((unquote(key.replace("+", " ")), unquote(value.replace("+", " "))))
    return out


def _authorise(request: web.Request, path: str, query: str, key: str | None) -> None:
    if not key:
        return
    pairs = dict(reversed(_pairs(query)))  # the first value of each, as query.Get gives
    sign = pairs.get("sign")
    if sign is not None:
        if not _RAW_B64URL.fullmatch(sign) or len(sign) % 4 == 1:  # Go's RawURLEncoding
            raise ImaginaryError("Invalid URL signature", 400)
        if not hmac.compare_digest(signature(path, query, key), sign):
            raise ImaginaryError("URL signature mismatch", 403)
        return
    given = request.headers.get("API-Key") or pairs.get("key")
    if given is None:
        raise Forbidden("URL signature mismatch (a request needs sign= or the API key)")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise ImaginaryError("Invalid or missing API key", 401)


# --- the request


async def _serve(request: web.Request, name: str, settings: ImaginaryDialect):
    if request.method not in METHODS:
        raise MethodNotAllowed(
            "HTTP method not allowed. Try with a POST or GET method", headers={"Allow": "GET, POST"}
        )
    path, query = common.path_after(request, settings.prefix.rstrip("/"))
    _authorise(request, path, query, settings.key)
    ref = None if request.method in ("POST", "PUT") else _source(request)
    with _refusals():
        plan = _plan(name, read(request.query))
    if ref is None:
        return await _serve_body(request, name, plan)
    if name == "info":
        return _json(await _info_of(request, await _original(request, ref)))
    size = await _size_of(request, ref) if plan.needs_size else None
    return await common.respond(request, plan.options(request, size), ref)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """imaginary's 400s: a value it cannot read, a required parameter it lacks."""
    try:
        yield
    except ParamError as exc:
        raise BadRequest(f"Error while processing parameters, {exc}") from None
    except iops.Missing as exc:
        raise BadRequest(str(exc)) from None


def _source(request: web.Request) -> SourceRef:
    """GET: `file=` a stored id, else `url=` a remote URL (source_fs.go, source_http.go)."""
    file, url = request.query.get("file", ""), request.query.get("url", "")
    if file:
        if not ID_RE.match(file):
            raise BadRequest(f"'file={file}': here file= names a stored image id (32 hex)")
        return SourceRef("id", file)
    if url:
        # SPEC §13: a 32-hex id is a stored original wherever a source is named.
        if not ID_RE.match(url) and not url.lower().startswith(("http://", "https://")):
            raise BadRequest("Invalid image URL")
        return common.source(url, "https")
    raise BadRequest("Cannot process the image due to missing or invalid params")


class _Plan:
    """The parsed request: native fields now, or once the source's size is known."""

    def __init__(self, fields: dict, needs: Callable[[Size | None], dict] | None = None):
        self.fields = fields
        self.later = needs

    @property
    def needs_size(self) -> bool:
        return self.later is not None

    def options(self, request: web.Request, size: Size | None) -> Options:
        with _refusals():
            fields = self.fields if self.later is None or size is None else self.later(size)
        _check_dimensions(fields, request.app[GRAMMAR].max_dimension)
        return common.options(request, fields)


def _plan(name: str, params: Params) -> _Plan:
    if name == "info":
        return _Plan({})
    if name == "pipeline":
        return _pipeline_plan(params["operations"])
    bimg, fields = iops.endpoint(name, params)
    if iops.needs_size(bimg):
        return _Plan(fields, lambda size: {**iops.native(bimg, size), **fields})
    return _Plan({**iops.native(bimg, None), **fields})


def _pipeline_plan(steps: list[Step]) -> _Plan:
    first_needs = _first_needs_size(steps)
    if not first_needs:
        return _Plan(pipeline.compose(steps, lambda number: None))
    return _Plan({}, lambda size: pipeline.compose(steps, lambda n: size if n == 1 else None))


def _first_needs_size(steps: list[Step]) -> bool:
    if not steps or steps[0].name not in pipeline.PIPELINE_NAMES:
        return False
    try:
        bimg, _ = iops.endpoint(pipeline.PIPELINE_NAMES[steps[0].name], read(steps[0].params))
    except (iops.Missing, ParamError, common.Unsupported):
        return False
    return iops.needs_size(bimg)


def _check_dimensions(fields: dict, limit: int) -> None:
    fit = fields.get("fit")
    for value in (fit.width, fit.height) if fit else ():
        if value is not None and value > limit:
            raise BadRequest(f"{value} pixels is more than this server's {limit}")


async def _serve_body(request: web.Request, name: str, plan: _Plan) -> web.StreamResponse:
    chunks = handlers.body_chunks(request)
    if name == "info":
        async with handlers.spooled(request, chunks) as tmp:
            return _json(await _info_of(request, tmp))

    async def finish(tmp: Path) -> Options:
        return plan.options(request, await _header_size(request, tmp))

    first = plan.options(request, None) if not plan.needs_size else common.options(request, {})
    return await handlers.render_body(
        request, first, chunks, finish=finish if plan.needs_size else None
    )


# --- what the source is


async def _original(request: web.Request, ref: SourceRef) -> bytes | Path:
    if ref.is_stored:
        return (await request.app[STORE].fetch(ref)).data
    return (await request.app[RENDERER].source_for(ref).fetch(ref)).data


async def _size_of(request: web.Request, ref: SourceRef) -> Size:
    if ref.is_stored:
        record = await request.app[STORE].record(ref.value)
        return record.width, record.height  # upright, as the stored header says
    return await _header_size(request, await _original(request, ref))


async def _header_size(request: web.Request, source: bytes | Path) -> Size:
    config = request.app[CONFIG]
    return await request.app[POOL].run(
        _read_size, source, config.sources.allow_svg, config.limits.max_pixels
    )


def _read_size(source: bytes | Path, allow_svg: bool, max_pixels: int) -> Size:
    _, header = inputs.open_source(
        imaging.loadable(source), allow_svg=allow_svg, max_pixels=max_pixels
    )
    return header.width, header.height


async def _info_of(request: web.Request, source: bytes | Path) -> dict[str, object]:
    config = request.app[CONFIG]
    return await request.app[POOL].run(
        describe, source, config.sources.allow_svg, config.limits.max_pixels
    )


def describe(source: bytes | Path, allow_svg: bool, max_pixels: int) -> dict[str, object]:
    """image.go Info: the header as bimg.Metadata reports it (stored size, not upright;
    orientation 0 when the image has none)."""
    source, header = inputs.open_source(
        imaging.loadable(source), allow_svg=allow_svg, max_pixels=max_pixels
    )
    image = imaging.open_image(inputs.pixels(source), header.format, access="sequential")
    orientation = image.get("orientation") if image.get_typeof("orientation") else 0
    return {
        "width": image.width,
        "height": image.height,
        "type": header.format,
        "space": _space(image),
        "hasAlpha": header.has_alpha,
        "hasProfile": bool(image.get_typeof("icc-profile-data")),
        "channels": image.bands,
        "orientation": orientation,
    }


def _space(image: pyvips.Image) -> str:
    return str(image.interpretation).removeprefix("Interpretation.").lower()


def _json(body: dict[str, object]) -> web.Response:
    return web.Response(body=json.dumps(body).encode(), content_type="application/json")
