"""The application factory: resources under AppKeys, middlewares and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from cachetools import LRUCache

from . import cors, dialects, docs, handlers, imaging, inputs, metrics, overlays, playground, urls
from .config import Config
from .decoders.sandbox import Limits
from .jobs import TTL, BucketBoard, FileBoard, Jobs
from .keys import CONFIG, GRAMMAR, JOBS, LOCATED, PARSED, POOL, REMOTE, RENDERER, STORE
from .middleware import common_headers, problems, write_tokens
from .renderer import Renderer
from .results import BucketResults, ResultStore
from .sources import make_store
from .sources.bucket import BucketSource
from .sources.directory import DirectorySource
from .sources.http import HttpSource
from .workers import RenderPool

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ID = "{id:[0-9a-f]{32}}"


def create_app(config: Config, *, tracer_provider: TracerProvider | None = None) -> web.Application:
    """The service. `tracer_provider` (default: one for `telemetry.otlp_endpoint`, if set)
    receives a span per request."""
    overlays.setup_fonts()
    # A middleware that has nothing to do is left out, not called: each one is a layer of
    # every request, a cache hit included.
    middlewares = [metrics.observe]
    if config.cors.allow_origins:
        # Outside `problems`: preflights never reach the routes (which have no OPTIONS).
        middlewares.append(cors.middleware(config.cors.allow_origins))
    middlewares.append(problems)
    if config.auth.tokens:
        middlewares.append(write_tokens(config.auth.tokens))
    tracing = None
    if tracer_provider is not None or config.telemetry.otlp_endpoint:
        from . import tracing  # only then: with tracing off, OpenTelemetry is never loaded

        tracer_provider = tracer_provider or tracing.provider_for(config.telemetry)
        middlewares.insert(0, tracing.middleware(tracing.tracer_of(tracer_provider)))
    app = web.Application(
        middlewares=middlewares,
        # JSON bodies are read whole; images are streamed and capped on their own.
        client_max_size=1024 * 1024,
    )
    if tracing is not None and tracer_provider is not None:
        tracing.install(app, tracer_provider)
    app[CONFIG] = config
    app[GRAMMAR] = grammar(config)
    app[PARSED] = LRUCache(handlers.PARSED_KEPT)
    app.cleanup_ctx.append(_remote_sources)
    app.cleanup_ctx.append(_resources)
    app.on_response_prepare.append(common_headers)
    if config.cors.allow_origins:
        app.on_response_prepare.append(cors.response_headers(config.cors.allow_origins))
    _routes(app)
    return app


def grammar(config: Config) -> urls.Grammar:
    """What the URL parser needs of the configuration (config.py has checked the presets)."""
    limit = config.limits.max_output_dimension
    presets = urls.compile_presets(config.presets.definitions, limit)
    return urls.Grammar(limit, presets, config.presets.only)


async def _remote_sources(app: web.Application) -> AsyncIterator[None]:
    # One client session (connection pool, guarded DNS) shared by every remote fetch.
    config = app[CONFIG]
    remote = HttpSource.create(config)
    app[REMOTE] = remote
    # s3:// and local:/// originals share the remote LRU: one cache.sources_mb for all.
    bucket = BucketSource(config, remote.cache)
    app[LOCATED] = {"s3": bucket, "local": DirectorySource(config, remote.cache)}
    try:
        await bucket.open()
        yield
    finally:
        await bucket.close()
        await remote.close()


async def _resources(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    imaging.configure(allow_svg=config.sources.allow_svg)
    limits = config.limits
    inputs.configure(
        Limits(
            cpu_seconds=limits.decoder_cpu_seconds,
            memory_bytes=limits.decoder_memory,
            timeout=limits.decoder_timeout,
            workers=limits.effective_concurrency,
        )
    )
    store = make_store(config.storage)
    await store.open()
    if config.cache.sources_in_store:
        app[REMOTE].store = store  # remote originals fetched once for every node
    pool = RenderPool(config.limits.effective_concurrency, config.limits.queue)
    app[STORE] = store
    app[POOL] = pool
    # With the local backend, results and job states live under storage.path, shared by the
    # node's worker processes; with s3, in the bucket, shared by every node.
    in_bucket = config.storage.backend == "s3"
    results_store: ResultStore | BucketResults | None = None
    if config.cache.results_in_store and in_bucket:
        results_store = BucketResults(store)
    elif config.cache.results_in_store:
        megabytes = config.cache.results_store_mb
        results_store = ResultStore(Path(config.storage.path) / "results", megabytes << 20)
    if results_store is not None:
        await results_store.open()
    jobs_root = Path(config.storage.path) / "jobs"
    board = BucketBoard(store, TTL) if in_bucket else FileBoard(jobs_root, TTL)
    jobs = Jobs(jobs_root, concurrency=pool.concurrency, board=board)
    await jobs.open()
    app[JOBS] = jobs
    renderer = Renderer(
        config, store, pool, app[REMOTE], results_store=results_store, sources=app[LOCATED]
    )
    await renderer.load_fallback()
    app[RENDERER] = renderer
    yield
    await jobs.close()
    if results_store is not None:
        await results_store.close()
    pool.close()
    await store.close()


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", handlers.index)
    r.add_get("/health", handlers.health)
    r.add_put("/images", handlers.put_image)
    r.add_post("/images", handlers.put_image)
    r.add_get("/images", handlers.list_images)
    r.add_get(f"/images/{ID}", handlers.get_original)
    r.add_get(f"/images/{ID}.{{ext:[A-Za-z0-9]+}}", handlers.get_original)
    r.add_get(f"/images/{ID}/info", handlers.image_info)
    r.add_get("/images/{a:[0-9a-f]{32}}/diff/{b:[0-9a-f]{32}}", handlers.image_diff)
    r.add_delete(f"/images/{ID}", handlers.delete_image)
    r.add_get("/info/{source:(?s:.+)}", handlers.source_info)
    r.add_get("/metrics", metrics.metrics_handler)
    r.add_get("/jobs/{job}", handlers.get_job)
    docs.add_routes(r)
    playground.add_routes(r)
    dialects.add_routes(r, app[CONFIG])
    r.add_get("/{path:(?s:.+)}", handlers.derived)
    r.add_post("/{path:(?s:.+)}", handlers.on_demand)
