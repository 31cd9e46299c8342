"""Prometheus metrics and the JSON access log: what operators watch.

With several worker processes the figures live in prometheus-client's multiprocess
directory (PROMETHEUS_MULTIPROC_DIR, set by `progimage serve` before forking), so one
scrape of any worker covers all of them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

access_log = logging.getLogger("proxy.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "progimage_requests_total", "HTTP requests by route, method and status",
    ["route", "method", "status"],
)  # fmt: skip
RENDER_SECONDS = Histogram(
    "progimage_render_seconds", "libvips render time (decode to encoded bytes) by operation family",
    ["family"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
FETCH_SECONDS = Histogram(
    "progimage_source_fetch_seconds", "time to fetch an original by source kind",
    ["source"], buckets=LATENCY_BUCKETS,
)  # fmt: skip
CACHE = Counter("progimage_cache_requests_total", "in-process cache lookups", ["cache", "result"])
QUEUE_DEPTH = Gauge(
    "progimage_render_queue_depth", "renders waiting for a slot", multiprocess_mode="livesum"
)
IN_FLIGHT = Gauge("progimage_renders_in_flight", "renders running now", multiprocess_mode="livesum")
BYTES_IN = Counter("progimage_bytes_in_total", "request body bytes received")
BYTES_OUT = Counter("progimage_bytes_out_total", "response body bytes sent")


def cache_observer(name: str):
    """A BytesLRU lookup callback counting hits and misses of the cache `name`."""
    hit, miss = CACHE.labels(name, "hit"), CACHE.labels(name, "miss")
    return lambda found: (hit if found else miss).inc()


def render_family(mode: str | None) -> str:
    return mode or "none"


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)


async def metrics_handler(request: web.Request) -> web.Response:
    response = web.Response(body=exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


def route_of(request: web.Request) -> str:
    """The route template a request matched: few values, fit for labels and span names."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    canonical = resource.canonical
    return "derived" if canonical in ("/{path}",) else canonical


@web.middleware
async def observe(request: web.Request, handler) -> web.StreamResponse:
    """Counts every request and writes one JSON access-log line with its timings."""
    started = time.perf_counter()
    status = 500
    response = None
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = route_of(request)
        _requests(route, request.method, status).inc()
        size_in = request.content_length or 0
        size_out = (response.content_length or 0) if response is not None else 0
        if size_in:
            BYTES_IN.inc(size_in)
        if size_out:
            BYTES_OUT.inc(size_out)
        if access_log.isEnabledFor(logging.INFO):
            timing = response.headers.get("Server-Timing") if response is not None else None
            access_log.info(
                access_line(
                    request.method, request.rel_url.raw_path, route, status, elapsed,
                    size_in, size_out, request.remote, timing,
                )
            )  # fmt: skip


@functools.lru_cache(maxsize=1024)
def _requests(route: str, method: str, status: int):
    # labels() locks and looks up on every call; the few (route, method, status) triples
    # a server answers with are looked up once.
    return REQUESTS.labels(route, method, str(status))


def access_line(
    method: str, path: str, route: str, status: int, elapsed: float,
    size_in: int, size_out: int, remote: str | None, timing: str | None,
) -> str:  # fmt: skip
    """One access-log line: the JSON object json.dumps would write, formatted directly (at
    cache-hit rates json.dumps of a dict was two fifths of the log's cost)."""
    line = (
        f'{{"ts": {time.time():.3f}, "method": {_string(method)}, "path": {_string(path)}, '
        f'"route": {_string(route)}, "status": {status}, "ms": {elapsed * 1000:.2f}, '
        f'"bytes_in": {size_in}, "bytes_out": {size_out}, '
        f'"remote": {"null" if remote is None else _string(remote)}'
    )
    if timing is not None:
        line += f', "timing": {_string(timing)}'
    return line + "}"


_string = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes
