"""HTTP handlers: thin functions that read the request, call the core, and shape a response."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import BodyPartReader, http_exceptions, web

from . import __version__, cache, links, metadata, ops, pipeline, playground, signing, urls
from .errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ProxyError,
    RangeNotSatisfiable,
    UpstreamMissing,
)
from .keys import (
    CONFIG,
    GRAMMAR,
    JOBS,
    PARSED,
    POOL,
    REMOTE,
    RENDERER,
    RENDITION,
    SOURCE,
    STORE,
)
from .ops import Options
from .renderer import YEAR, Rendition
from .sources import spool
from .sources.http import remote_ref
from .urls import ID_RE, SourceRef

CHUNK = 256 * 1024
UPLOAD_FIELDS = ("image", "file", "data")
# Derived paths whose signature check and parse are remembered per process: both are pure
# functions of the path, and a repeated URL is the common case (a cache hit then does
# neither). Only valid paths are kept, and only short ones, so the memory stays bounded.
PARSED_KEPT = 4096
PARSED_MAX_LENGTH = 1024
# First path segments of the API's own routes: never the start of a derived-image URL.
RESERVED = frozenset({"images", "jobs", "info", "health", "metrics", "docs", "openapi.json"})
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# A request body (upload, on-demand render) must keep arriving: at most
# limits.body_idle_timeout seconds without a byte, limits.body_timeout in all, else 408.
# Reading a body never holds a render slot; these bound the memory and file descriptors a
# trickling client can pin.


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, content_type="application/json",
        headers=headers,
    )  # fmt: skip


# --- service description and health


async def index(request: web.Request) -> web.Response:
    """GET /: the playground page for a browser, the JSON description for anyone else."""
    if playground.wants_html(request.headers.get("Accept", "")):
        return playground.page()
    config = request.app[CONFIG]
    return _json(
        {
            "service": "progimage",
            "version": __version__,
            "operations": {name: op.arity for name, op in ops.BY_NAME.items()},
            "arguments": links.ARGUMENTS,
            "formats": [*ops.FORMATS, "auto"],
            "signed_urls": bool(config.signing.keys),
            "write_tokens": bool(config.auth.tokens),
            "limits": {
                "max_upload_bytes": config.limits.max_upload_bytes,
                "max_output_dimension": config.limits.max_output_dimension,
            },
            "links": {
                "images": "/images", "openapi": "/openapi.json", "health": "/health",
                "docs": "/docs", "playground": "/",
            },
        },
        headers={"Vary": "Accept"},
    )  # fmt: skip


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


# --- storage API


async def put_image(request: web.Request) -> web.Response:
    """PUT/POST /images: raw bytes, multipart (field image, file or data), or JSON."""
    config = request.app[CONFIG]
    if request.content_type == "application/json":
        return await _post_json(request)
    declared = request.content_length
    if declared is not None and declared > config.limits.max_upload_bytes:
        raise PayloadTooLarge(f"the upload is larger than {config.limits.max_upload_bytes} bytes")
    if request.content_type.startswith("multipart/"):
        chunks = _multipart_chunks(request)
    else:
        chunks = request.content.iter_chunked(CHUNK)
    return await _store(request, _timed(request, chunks))


async def _timed(request: web.Request, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body's chunks, or 408 when the client stalls or trickles past the deadlines."""
    limits = request.app[CONFIG].limits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.body_timeout
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + limits.body_idle_timeout)):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the request body arrived too slowly") from None
        yield chunk


async def _store(request: web.Request, chunks: AsyncIterator[bytes]) -> web.Response:
    config = request.app[CONFIG]
    pool = request.app[POOL]

    async def describe(path: Path) -> tuple[metadata.Facts, bytes | None]:
        return await pool.run(
            metadata.examine,
            path,
            allow_svg=config.sources.allow_svg,
            max_pixels=config.limits.max_pixels,
            preview=config.storage.previews,
        )

    record, created = await request.app[STORE].put(
        chunks, max_bytes=config.limits.max_upload_bytes, describe=describe
    )
    body = {
        "id": record.id,
        "url": f"/images/{record.id}",
        "format": record.format,
        "width": record.width,
        "height": record.height,
        "size": record.size,
    }
    return _json(body, status=201 if created else 200, headers={"Location": body["url"]})


async def _multipart_chunks(request: web.Request) -> AsyncIterator[bytes]:
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name in UPLOAD_FIELDS:
                while chunk := await part.read_chunk(CHUNK):
                    yield chunk
                return
            if isinstance(part, BodyPartReader):
                await part.release()
    except (ValueError, AssertionError, http_exceptions.HttpProcessingError) as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from exc
    raise BadRequest(f"multipart body has no file field named {', '.join(UPLOAD_FIELDS)}")


async def _post_json(request: web.Request) -> web.Response:
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("the JSON body cannot be parsed") from exc
    if not isinstance(payload, dict):
        raise BadRequest('expected a JSON object: {"url": …} or {"from": …}')
    if "from" in payload:
        path = payload["from"]
        if not isinstance(path, str) or not path.startswith("/"):
            raise BadRequest('"from" must be a derived path of this service, starting with /')
        config = request.app[CONFIG]
        # Checked before any job starts: a bad path or signature is a 400/403 right away.
        checked = signing.check(path, "", config.signing.keys)
        options, _ref = urls.parse(checked, "", request.app[GRAMMAR])
        if options.info:
            raise BadRequest('"from" must name an image: `info` describes one, it cannot be stored')

        async def work() -> web.Response:
            rendition = await _derive(request, path, query="")
            body = rendition.result.body

            async def single() -> AsyncIterator[bytes]:
                yield body

            return await _store(request, single())

    elif "url" in payload:
        ref = remote_ref(payload["url"])

        async def work() -> web.Response:
            original = await request.app[REMOTE].fetch(ref)

            async def fetched() -> AsyncIterator[bytes]:
                yield original.data

            return await _store(request, fetched())

    else:
        raise BadRequest('expected a JSON object with "url" or "from"')
    if _prefers_async(request):
        return await _submit_job(request, work)
    return await work()


def _prefers_async(request: web.Request) -> bool:
    """RFC 7240 `Prefer: respond-async` (among other preferences, in any case)."""
    preferences = ",".join(request.headers.getall("Prefer", []))
    tokens = (item.split(";")[0].split("=")[0].strip().lower() for item in preferences.split(","))
    return "respond-async" in tokens


async def _submit_job(
    request: web.Request, work: Callable[[], Awaitable[web.Response]]
) -> web.Response:
    async def image() -> dict[str, object]:
        response = await work()  # the very response a synchronous request would get
        assert isinstance(response.body, bytes)
        return json.loads(response.body)

    job = await request.app[JOBS].submit(image)
    url = f"/jobs/{job}"
    return _json(
        {"job": job, "status": "pending", "url": url, "image": None, "error": None},
        status=202,
        headers={"Location": url, "Preference-Applied": "respond-async"},
    )


async def get_job(request: web.Request) -> web.Response:
    """GET /jobs/{job}: pending, done (with the image JSON) or failed (with the problem)."""
    job = request.match_info["job"]
    state = await request.app[JOBS].get(job)
    if state is None:
        raise NotFound(f"no job {job}: unknown, or finished more than an hour ago")
    headers = {"Cache-Control": "no-store"}
    if state["status"] == "pending":
        headers["Retry-After"] = "1"
    return _json(state, headers=headers)


async def list_images(request: web.Request) -> web.Response:
    limit_text = request.query.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= 1000:
        raise BadRequest(f"'limit={limit_text}': expected a whole number from 1 to 1000")
    after = request.query.get("after") or None
    if after is not None and not ID_RE.match(after):
        raise BadRequest(f"'after={after}': expected an image id (32 lowercase hex digits)")
    limit = int(limit_text)
    records = await request.app[STORE].list(limit=limit + 1, after=after)
    page = records[:limit]
    more = len(records) > limit
    return _json(
        {"images": [r.summary() for r in page], "next": page[-1].id if more and page else None}
    )


def _image_id(request: web.Request) -> str:
    image_id = request.match_info["id"]
    if not ID_RE.match(image_id):
        raise NotFound(f"no image with id {image_id}")
    return image_id


async def get_original(request: web.Request) -> web.StreamResponse:
    """The original bytes, exactly; or `/images/{id}.{ext}` converted to that format."""
    image_id = _image_id(request)
    ext = request.match_info.get("ext")
    if ext:
        fmt = ops.normalise_format(ext)
        if fmt is None:
            raise BadRequest(f"'.{ext}': unknown output format")
        return await respond_derived(request, Options(format=fmt), SourceRef("id", image_id))
    store = request.app[STORE]
    record = await store.record(image_id)
    etag = f'"{image_id}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={YEAR}, immutable",
        "Accept-Ranges": "bytes",
        "Cache-Tag": image_id,
        "Surrogate-Key": image_id,
        # Originals are served byte for byte: an SVG with a <script> must not run on this
        # origin (where the playground keeps its write token).
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if cache.etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    start, end = 0, record.size - 1
    status = 200
    ranged = _requested_range(request, record.size, etag)
    if ranged is not None:
        start, end = ranged
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{record.size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = record.mime
    response.content_length = end - start + 1
    if request.method == "HEAD":
        await response.prepare(request)
        return response
    # Opened before the status is sent: an id deleted since record() is still a clean 404.
    async with contextlib.aclosing(await store.open_range(image_id, start, end)) as body:
        await response.prepare(request)
        async for chunk in body:
            await response.write(chunk)
    await response.write_eof()
    return response


def _requested_range(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """One byte range (RFC 9110 §14); anything we do not serve as a range gets the whole."""
    header = request.headers.get("Range")
    if not header:
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range != etag:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or (match[1] == "" and match[2] == ""):
        return None  # multiple or malformed ranges: ignoring Range is allowed
    if match[1] == "":
        length = int(match[2])
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(match[1])
    end = int(match[2]) if match[2] else size - 1
    if start >= size or end < start:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    error = RangeNotSatisfiable(f"the image has {size} bytes")
    error.headers["Content-Range"] = f"bytes */{size}"
    return error


async def image_info(request: web.Request) -> web.Response:
    image_id = _image_id(request)
    record = await request.app[STORE].record(image_id)
    found = await request.app[RENDERER].faces_of(SourceRef("id", image_id))
    return _json({**record.info(), "faces": [list(box) for box in found]})


def target(request: web.Request) -> tuple[str, str]:
    """(path, query) exactly as the client sent them. The parsed URL re-quotes them (`%2C`
    becomes `,`), which would merge a text's own commas with the separators and change the
    bytes a signature covers."""
    raw = request.raw_path
    if not raw.startswith("/"):  # an absolute-form request target
        return request.rel_url.raw_path, request.rel_url.raw_query_string
    path, _, query = raw.partition("?")
    return path, query


async def source_info(request: web.Request) -> web.Response:
    """GET /info/{source}: the same facts for any source the derived URLs accept."""
    config = request.app[CONFIG]
    path, query = target(request)
    # A derived-URL form: with signing on, `/info/sig/{signature}/{source}` like any other.
    raw = signing.check(path.removeprefix("/info"), query, config.signing.keys)
    _, ref = urls.parse(raw, query, request.app[GRAMMAR])
    if ref.is_stored:
        record = await request.app[STORE].record(ref.value)
        found = await request.app[RENDERER].faces_of(ref)
        return _json({**record.info(), "faces": [list(box) for box in found]})
    original = await request.app[RENDERER].source_for(ref).fetch(ref)
    facts = await request.app[POOL].run(
        metadata.describe,
        original.data,
        allow_svg=config.sources.allow_svg,
        max_pixels=config.limits.max_pixels,
    )
    # Not stored, so no id: the URL says which image this is.
    return _json({"id": None, "url": ref.value, **facts.as_dict(), "size": len(original.data)})


async def image_diff(request: web.Request) -> web.Response:
    store = request.app[STORE]
    a = await store.record(request.match_info["a"])
    b = await store.record(request.match_info["b"])
    distance = metadata.hamming(a.phash, b.phash)
    return _json(
        {"a": a.id, "b": b.id, "distance": distance,
         "similar": distance <= metadata.SIMILAR_DISTANCE}
    )  # fmt: skip


async def delete_image(request: web.Request) -> web.Response:
    await request.app[STORE].delete(request.match_info["id"])
    return web.Response(status=204)


# --- derived images


async def derived(request: web.Request) -> web.StreamResponse:
    """GET /[sig/{signature}/]{operations…}/{source}: the heart of the service."""
    path, query = target(request)
    parsed = request.app[PARSED].get((path, query))
    if parsed is None:
        if path.split("/", 2)[1] in RESERVED:
            raise NotFound("no such resource")
        checked = signing.check(path, query, request.app[CONFIG].signing.keys)
        parsed = urls.parse(checked, query, request.app[GRAMMAR])
        if len(path) + len(query) <= PARSED_MAX_LENGTH:
            request.app[PARSED][path, query] = parsed
    options, ref = parsed
    return await respond_derived(request, options, ref, fallback=True)


async def respond_derived(
    request: web.Request, options: Options, ref: SourceRef, *, fallback: bool = False
) -> web.StreamResponse:
    """parse → Options → prepare (negotiation, ETag, 304) → render → response; with
    `fallback`, the configured fallback image stands in for an original that cannot be had."""
    renderer = request.app[RENDERER]
    request[SOURCE] = ref
    try:
        rendition = await renderer.prepare(options, ref, request.headers)
        request[RENDITION] = rendition
        if cache.etag_matches(request.headers.get("If-None-Match"), f'"{rendition.etag}"'):
            return web.Response(status=304, headers=rendition.headers())
        await renderer.render(rendition)
    except (NotFound, BadGateway, GatewayTimeout) as exc:
        if not fallback or options.info or renderer.fallback_ref() is None:
            raise
        rendition = await _fallback(request, options, exc)
    request[RENDITION] = rendition
    status = request.app[CONFIG].fallback.status if rendition.fallback else 200
    return _image_response(rendition, status)


async def _fallback(request: web.Request, options: Options, error: ProxyError) -> Rendition:
    """The fallback image with the request's own operations, briefly cacheable; the original
    problem when even that cannot be rendered."""
    config = request.app[CONFIG]
    renderer = request.app[RENDERER]
    ref = renderer.fallback_ref()
    assert ref is not None
    try:
        rendition = await renderer.prepare(options, ref, request.headers)
        await renderer.render(rendition)
    except ProxyError:
        raise error from None
    missing = isinstance(error, NotFound | UpstreamMissing)
    rendition.fallback = "not-found" if missing else "upstream-error"
    rendition.cache_control = f"public, max-age={config.fallback.max_age}"
    return rendition


def _image_response(rendition: Rendition, status: int = 200) -> web.Response:
    headers = rendition.headers()
    headers["Server-Timing"] = rendition.server_timing()
    result = rendition.result
    assert result is not None
    if rendition.options.info:
        return _json(_result_info(result), status=status, headers=headers)
    if result.over_budget is not None:
        headers["ProgImage-Over-Budget"] = str(result.over_budget)
    if rendition.options.download:
        ext = "jpg" if result.format == "jpeg" else result.format
        headers["Content-Disposition"] = (
            f'attachment; filename="{rendition.options.download}.{ext}"'
        )
    return web.Response(body=result.body, status=status, content_type=result.mime, headers=headers)


async def _derive(request: web.Request, path: str, *, query: str) -> Rendition:
    """Render a derived path in process (for `{"from": …}`), under the same signature rules."""
    config = request.app[CONFIG]
    path = signing.check(path, query, config.signing.keys)
    options, ref = urls.parse(path, query, request.app[GRAMMAR])
    renderer = request.app[RENDERER]
    rendition = await renderer.prepare(options, ref, {})
    return await renderer.render(rendition)


def _result_info(result: pipeline.Result) -> dict[str, object]:
    return {
        "format": result.format,
        "mime": result.mime,
        "width": result.width,
        "height": result.height,
        "bands": result.bands,
        "has_alpha": result.has_alpha,
        "pages": result.pages,
        "size": len(result.body),
        **(result.placeholders or {}),
        **({"faces": [list(box) for box in result.faces]} if result.faces is not None else {}),
    }


async def on_demand(request: web.Request) -> web.Response:
    """POST /{operations…} with an image body: transformed and returned, never stored."""
    raw, _ = target(request)
    if raw.split("/", 2)[1] in RESERVED:
        raise MethodNotAllowed(f"POST is not allowed on {raw}")
    _, raw = signing.split(raw)  # writes are guarded by tokens, not signatures
    options = urls.parse_operations(raw, request.app[GRAMMAR])
    return await render_body(request, options, request.content.iter_chunked(CHUNK))


def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The image in a request body: raw, or the multipart field image, file or data."""
    if request.content_type.startswith("multipart/"):
        return _multipart_chunks(request)
    return request.content.iter_chunked(CHUNK)


@contextlib.asynccontextmanager
async def spooled(request: web.Request, chunks: AsyncIterator[bytes]) -> AsyncIterator[Path]:
    """The body on disk like an upload (so many large bodies in flight cost no memory),
    under the upload limits and deadlines, removed afterwards."""
    limit = request.app[CONFIG].limits.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the image is larger than {limit} bytes")
    tmp = request.app[STORE].tmp / f"{os.getpid()}-{uuid.uuid4().hex}.body"
    try:
        await spool(_timed(request, chunks), tmp, limit, durable=False)
        yield tmp
    finally:
        await asyncio.to_thread(tmp.unlink, missing_ok=True)


async def render_body(
    request: web.Request,
    options: Options,
    chunks: AsyncIterator[bytes],
    *,
    finish: Callable[[Path], Awaitable[Options]] | None = None,
) -> web.Response:
    """Render a request body with `options` in the pool; never stored, never cached.
    `finish`, when given, turns the spooled file into the Options to render (operations
    that depend on the image's size); `options` is checked before the body is read."""
    config = request.app[CONFIG]
    renderer = request.app[RENDERER]
    options, requested, vary = renderer.resolve(options, request.headers)[:3]
    async with spooled(request, chunks) as tmp:
        if finish is not None:
            options, requested, vary = renderer.resolve(await finish(tmp), request.headers)[:3]
        overlay = await renderer.overlay(options)
        result = await request.app[POOL].run(
            pipeline.render,
            tmp,
            options,
            requested_format=requested,
            **renderer.encoder,
            max_pixels=config.limits.max_pixels,
            allow_svg=config.sources.allow_svg,
            metadata=config.output.metadata,
            overlay=overlay,
        )
    headers = {"Cache-Control": "no-store"}
    if vary:  # `fmt/auto`: the answer depends on Accept even though nothing keeps it
        headers["Vary"] = ", ".join(vary)
    if options.info:
        return _json(_result_info(result), headers=headers)
    if result.over_budget is not None:
        headers["ProgImage-Over-Budget"] = str(result.over_budget)
    return web.Response(body=result.body, content_type=result.mime, headers=headers)
