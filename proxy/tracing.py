"""OpenTelemetry traces: one server span per request, with fetch/queue/render/encode children.

Off unless `telemetry.otlp_endpoint` is set; then `create_app` adds `middleware` and spans
leave in batches, from the SDK's own thread, as OTLP over HTTP. Off costs nothing: no
middleware, no tracer.

The children are written when the request ends, from the durations the renderer measures
for `Server-Timing` (the same figures, so a trace and the header never disagree), laid end
to end in the order the work happens and ending when the response was ready. A render
shared with an identical request in flight shows the shared render's durations.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from .config import TelemetryConfig
from .keys import RENDITION, SOURCE
from .metrics import route_of

PROVIDER = web.AppKey("tracer_provider", TracerProvider)
# In the order they happen; each is a key of Rendition.timings (milliseconds).
CHILDREN = ("fetch", "queue", "render", "encode")
# W3C Trace Context (`traceparent`, `tracestate`) whatever OTEL_PROPAGATORS says: it is
# what the README promises.
_PROPAGATOR = TraceContextTextMapPropagator()


def provider_for(telemetry: TelemetryConfig) -> TracerProvider:
    """A provider exporting to the configured collector (OTLP/HTTP, protobuf)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = telemetry.otlp_endpoint
    assert endpoint is not None
    if urlsplit(endpoint).path in ("", "/"):  # as OTEL_EXPORTER_OTLP_ENDPOINT: a base URL
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    resource = Resource.create(
        {"service.name": telemetry.service_name, "service.version": __version__}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def install(app: web.Application, provider: TracerProvider) -> None:
    """Flush `provider` when `app` stops (its middleware is `middleware(tracer_of(…))`)."""
    app[PROVIDER] = provider

    async def flush(app: web.Application) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # waits for the batch in hand; bounded by the exporter's timeout

    app.cleanup_ctx.append(flush)


def tracer_of(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("proxy", __version__)


def middleware(tracer: trace.Tracer) -> Callable:
    @web.middleware
    async def traced(request: web.Request, handler) -> web.StreamResponse:
        parent = _PROPAGATOR.extract(request.headers)
        with tracer.start_as_current_span(
            f"{request.method} {request.path}", context=parent, kind=SpanKind.SERVER,
            record_exception=False, set_status_on_exception=False,
        ) as span:  # fmt: skip
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            finally:
                _finish(span, tracer, request, status)

    return traced


def _finish(span: trace.Span, tracer: trace.Tracer, request: web.Request, status: int) -> None:
    route = route_of(request)
    # Low-cardinality name: operators group by it, so never the id or the operations.
    span.update_name(f"{request.method} {route}")
    span.set_attribute("http.request.method", request.method)
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("url.path", request.path)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    source = request.get(SOURCE)
    if source is not None:
        span.set_attribute("progimage.source.kind", source.kind)
    rendition = request.get(RENDITION)
    if rendition is None:
        return
    if rendition.result is not None:
        span.set_attribute("progimage.output.format", rendition.result.format)
        cache = "hit" if rendition.from_cache else "store" if rendition.from_store else "miss"
        span.set_attribute("progimage.cache", cache)
    if rendition.fallback:
        span.set_attribute("progimage.fallback", rendition.fallback)
    _children(tracer, span, rendition.timings)


def _children(tracer: trace.Tracer, parent: trace.Span, timings: dict[str, float]) -> None:
    steps = [(name, timings[name]) for name in CHILDREN if name in timings]
    if not steps:
        return
    end = time.time_ns()
    start = end - sum(int(ms * 1e6) for _, ms in steps)
    context = trace.set_span_in_context(parent)
    for name, ms in steps:
        finish = start + int(ms * 1e6)
        child = tracer.start_span(name, context=context, start_time=start)
        child.end(end_time=finish)
        start = finish
