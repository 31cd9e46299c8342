"""Prometheus metrics and the access log, in process and across worker processes."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from proxy import metrics


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_count_requests_renders_and_cache(client, photo_bytes) -> None:
    before = await (await client.get("/metrics")).text()
    image_id = (await (await client.put("/images", data=photo_bytes)).json())["id"]
    for _ in range(3):
        assert (await client.get(f"/fill/50x50/{image_id}")).status == 200
    response = await client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    name = "progimage_requests_total"
    grew = sample(text, name, route="derived", status="200") - sample(
        before, name, route="derived", status="200"
    )
    assert grew == 3
    assert sample(text, "progimage_render_seconds_count", family="fill") >= 1
    assert sample(text, "progimage_cache_requests_total", cache="results", result="hit") >= 2
    assert "progimage_render_queue_depth" in text and "progimage_renders_in_flight" in text
    assert sample(text, "progimage_bytes_in_total") >= len(photo_bytes)
    assert sample(text, "progimage_bytes_out_total") > 0


async def test_one_json_access_log_line_per_request(client, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="proxy.access"):
        await client.get("/health")
        await client.get("/resize/bad/" + "0" * 32)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "proxy.access"]
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/health", 200),
        ("/resize/bad/" + "0" * 32, 400),
    ]
    assert all(line["ms"] >= 0 and "bytes_out" in line for line in lines)


@pytest.mark.parametrize(
    ("path", "remote", "timing"),
    [
        ("/resize/10x/" + "0" * 32, "127.0.0.1", None),
        ('/text/say "hi" \\ back/é%20/\x01\t', None, 'cache;desc="hit"'),
        ("/" + "\u2603" * 3, "::1", "render;dur=1.5"),
    ],
)
def test_an_access_line_is_the_json_of_its_fields(path, remote, timing) -> None:
    line = json.loads(
        metrics.access_line("GET", path, "derived", 200, 0.0123456, 0, 99, remote, timing)
    )
    assert line == {
        "ts": pytest.approx(time.time(), abs=5),
        "method": "GET", "path": path, "route": "derived", "status": 200, "ms": 12.35,
        "bytes_in": 0, "bytes_out": 99, "remote": remote, **({"timing": timing} if timing else {}),
    }  # fmt: skip


@pytest.mark.e2e
async def test_metrics_cover_every_worker_process(start_server, photo_bytes) -> None:
    server = start_server(server={"workers": 2})
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=photo_bytes) as response:
            image_id = (await response.json())["id"]

        async def get(i: int) -> int:
            async with http.get(f"/resize/{20 + i}x/{image_id}") as response:
                await response.read()
                return response.status

        # New connections each time, so both workers take a share.
        statuses = await asyncio.gather(*(get(i) for i in range(40)))
        assert set(statuses) == {200}
        totals = []
        for _ in range(6):
            async with aiohttp.ClientSession(server.url) as fresh:
                async with fresh.get("/metrics") as response:
                    text = await response.text()
            totals.append(sample(text, "progimage_requests_total", route="derived", status="200"))
    # Whichever worker answers, it reports all 40 renders, not only its own share.
    assert all(total == 40 for total in totals), totals
