"""OpenTelemetry tracing: spans of real requests, read back with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import REPO, decode, free_port
from proxy.app import create_app

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced(aiohttp_client, make_config, exporter):
    """A factory of clients of an app whose spans land in `exporter`."""

    async def make(**sections):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return await aiohttp_client(create_app(make_config(**sections), tracer_provider=provider))

    return make


def server_spans(exporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]


def children_of(exporter, span) -> list:
    found = [s for s in exporter.get_finished_spans() if s.parent is not None
             and s.parent.span_id == span.context.span_id]  # fmt: skip
    return sorted(found, key=lambda s: s.start_time)


async def test_a_render_is_a_server_span_with_its_steps(traced, exporter, jpeg_bytes) -> None:
    client = await traced()
    image = (await (await client.put("/images", data=jpeg_bytes)).json())["id"]
    exporter.clear()
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = await client.get(
        f"/resize/100x/fmt/webp/{image}", headers={"traceparent": traceparent}
    )
    assert response.status == 200
    assert decode(await response.read()).width == 100
    (span,) = server_spans(exporter)
    # The caller's trace goes on: same trace id, its span as our parent.
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID and span.parent.is_remote
    assert span.name == "GET derived"
    attributes = dict(span.attributes)
    assert attributes == {
        "http.request.method": "GET",
        "http.route": "derived",
        "http.response.status_code": 200,
        "url.path": f"/resize/100x/fmt/webp/{image}",
        "progimage.source.kind": "id",
        "progimage.output.format": "webp",
        "progimage.cache": "miss",
    }
    steps = children_of(exporter, span)
    assert [s.name for s in steps] == ["fetch", "queue", "render", "encode"]
    # End to end, inside the request, and as long as Server-Timing says.
    timing = dict(part.split(";dur=") for part in response.headers["Server-Timing"].split(", ")
                  if ";dur=" in part)  # fmt: skip
    for earlier, later in zip(steps, steps[1:], strict=False):
        assert earlier.end_time == later.start_time
    assert span.start_time <= steps[0].start_time and steps[-1].end_time <= span.end_time
    for step in steps:
        assert abs((step.end_time - step.start_time) / 1e6 - float(timing[step.name])) < 0.1

    exporter.clear()
    again = await client.get(f"/resize/100x/fmt/webp/{image}")
    assert again.status == 200
    (span,) = server_spans(exporter)
    assert span.attributes["progimage.cache"] == "hit"
    assert format(span.context.trace_id, "032x") != TRACE_ID  # a new trace without traceparent
    assert children_of(exporter, span) == []


async def test_other_routes_and_failures(traced, exporter, jpeg_bytes) -> None:
    client = await traced()
    assert (await client.put("/images", data=jpeg_bytes)).status == 201
    assert (await client.get("/resize/0x0/" + "a" * 32)).status == 400
    assert (await client.get("/resize/10x/" + "b" * 32)).status == 404
    assert (await client.get("/images/" + "c" * 32)).status == 404
    upload, bad, missing, original = server_spans(exporter)
    assert (upload.name, upload.attributes["http.response.status_code"]) == ("PUT /images", 201)
    assert "progimage.source.kind" not in upload.attributes
    assert bad.attributes["http.response.status_code"] == 400
    assert missing.attributes["http.response.status_code"] == 404
    assert missing.attributes["progimage.source.kind"] == "id"  # known before it failed
    assert "progimage.output.format" not in missing.attributes
    assert original.name == "GET /images/{id}"
    # 4xx are the client's doing: the span is not an error; 5xx would be.
    assert all(s.status.status_code != StatusCode.ERROR for s in (bad, missing, original))


async def test_a_remote_source_has_its_fetch(traced, exporter, aiohttp_server, jpeg_bytes):
    async def photo(_request: web.Request) -> web.Response:
        return web.Response(body=jpeg_bytes, content_type="image/jpeg")

    origin = web.Application()
    origin.router.add_get("/a.jpg", photo)
    remote = await aiohttp_server(origin)
    client = await traced(sources={"allow_private_networks": True})
    response = await client.get(f"/fill/20x20/fmt/png/{remote.make_url('/a.jpg')}")
    assert response.status == 200
    (span,) = server_spans(exporter)
    assert span.attributes["progimage.source.kind"] == "url"
    assert span.attributes["progimage.output.format"] == "png"
    assert [s.name for s in children_of(exporter, span)] == ["fetch", "queue", "render", "encode"]
    exporter.clear()
    assert (await client.get(f"/fill/20x20/{remote.make_url('/gone.jpg')}")).status == 502
    (span,) = server_spans(exporter)
    assert span.attributes["progimage.source.kind"] == "url"
    assert span.status.status_code == StatusCode.ERROR


def test_off_by_default_opentelemetry_is_not_even_loaded() -> None:
    script = (
        "import sys; from proxy.app import create_app; from proxy.config import Config; "
        "app = create_app(Config()); "
        "print(any(m.startswith(('opentelemetry', 'proxy.tracing')) for m in sys.modules), "
        "len(app.middlewares))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=REPO)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # observe and problems: CORS and write tokens are off, so their middlewares are left out
    assert result.stdout.split() == ["False", "2"]


@pytest.mark.e2e
async def test_spans_reach_an_otlp_collector(start_server, jpeg_bytes) -> None:
    """`telemetry.otlp_endpoint` on the real server; the collector is a tiny OTLP/HTTP sink."""
    received: list[ExportTraceServiceRequest] = []
    arrived = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        arrived.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        server = await asyncio.to_thread(
            start_server,
            env={"OTEL_BSP_SCHEDULE_DELAY": "50"},  # the SDK's batch interval, in ms
            telemetry={"otlp_endpoint": f"http://127.0.0.1:{port}", "service_name": "photos"},
        )
        from proxy.client import AsyncClient

        async with AsyncClient(server.url) as images:
            stored = await images.upload(jpeg_bytes)
            await images.get(stored.id, resize="60x")
        names: set[str] = set()
        while not {"GET derived", "render"} <= names:
            await asyncio.wait_for(arrived.wait(), timeout=30)
            arrived.clear()
            names = {span.name for message in received for resource in message.resource_spans
                     for scope in resource.scope_spans for span in scope.spans}  # fmt: skip
        resource = received[0].resource_spans[0].resource
        attributes = {a.key: a.value.string_value for a in resource.attributes}
        assert attributes["service.name"] == "photos"
        assert {"PUT /images", "GET derived", "fetch", "queue", "render", "encode"} <= names
    finally:
        await runner.cleanup()
