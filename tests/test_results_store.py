"""The results store (`cache.results_in_store`): rendered results on disk, across restarts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest
import pyvips
from aiohttp import web

from conftest import decode, gradient
from proxy.keys import RENDERER
from proxy.pipeline import Result
from proxy.results import ResultStore

STORED = {"cache": {"results_in_store": True}}


def noise_png(width: int, height: int) -> bytes:
    """Incompressible pixels: a PNG (and every PNG rendered from it) stays big."""
    bands = [
        pyvips.Image.gaussnoise(width, height, mean=128, sigma=80).cast("uchar") for _ in "rgb"
    ]
    return bands[0].bandjoin(bands[1:]).copy(interpretation="srgb").pngsave_buffer()


def render_count(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("progimage_render_seconds_count")
    )


def stored_files(data: Path) -> list[Path]:
    results = data / "results"
    return [p for p in results.glob("??/*") if p.is_file()] if results.exists() else []


# --- end to end, against `progimage serve`


@pytest.mark.e2e
async def test_a_restart_serves_stored_results_without_rendering(start_server, jpeg_bytes) -> None:
    server = start_server(**STORED)
    path = "/resize/100x/fmt/webp/{}"
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=jpeg_bytes) as response:
            path = path.format((await response.json())["id"])
        async with http.get(path) as response:
            assert response.status == 200
            assert 'cache;desc="miss"' in response.headers["Server-Timing"]
            etag, first = response.headers["ETag"], await response.read()
    assert len(stored_files(server.data)) == 1
    server.stop()
    server.start()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get(path) as response:
            assert response.status == 200
            timing = response.headers["Server-Timing"]
            assert 'cache;desc="store"' in timing and "store;dur=" in timing
            assert response.headers["ETag"] == etag
            assert response.headers["Content-Type"] == "image/webp"
            body = await response.read()
        assert body == first
        assert decode(body).width == 100
        async with http.get(path) as response:  # now from memory
            assert 'cache;desc="hit"' in response.headers["Server-Timing"]
        async with http.get("/metrics") as response:
            text = await response.text()
    assert render_count(text) == 0  # this process never rendered it
    assert 'progimage_cache_requests_total{cache="results_store",result="hit"} 1.0' in text


@pytest.mark.e2e
async def test_eviction_keeps_the_store_within_its_bound(start_server) -> None:
    server = start_server(cache={"results_in_store": True, "results_store_mb": 1})
    limit = 1 << 20
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=noise_png(500, 500)) as response:
            source = (await response.json())["id"]
        written = 0
        for width in range(300, 316):
            async with http.get(f"/resize/{width}x/fmt/png/{source}") as response:
                assert response.status == 200
                written += len(await response.read())
    assert written > 3 * limit
    deadline = time.monotonic() + 10
    while sum(p.stat().st_size for p in stored_files(server.data)) > limit:
        assert time.monotonic() < deadline, "the results store stayed over its bound"
        await asyncio.sleep(0.05)
    assert len(stored_files(server.data)) >= 2  # evicted down to the bound, not emptied


@pytest.mark.e2e
async def test_a_deleted_original_makes_its_stored_results_unreachable(
    start_server, jpeg_bytes
) -> None:
    server = start_server(**STORED)
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=jpeg_bytes) as response:
            image_id = (await response.json())["id"]
        async with http.get(f"/resize/120x/{image_id}") as response:
            assert response.status == 200
        [result_file] = stored_files(server.data)
        async with http.delete(f"/images/{image_id}") as response:
            assert response.status == 204
        async with http.get(f"/resize/120x/{image_id}") as response:
            assert response.status == 404
    assert result_file.exists()  # still on disk, yet never served
    server.stop()
    server.start()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get(f"/resize/120x/{image_id}") as response:
            assert response.status == 404
            assert response.headers["Content-Type"] == "application/problem+json"


# --- in process


async def test_remote_results_are_stored_under_their_upstream_identity(
    app_client, aiohttp_server, jpeg_bytes
) -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=jpeg_bytes, content_type="image/jpeg", headers={"ETag": '"v1"'})

    origin = web.Application()
    origin.router.add_get("/photo.jpg", serve)
    upstream = await aiohttp_server(origin)
    settings = {**STORED, "sources": {"allow_private_networks": True}}
    path = f"/resize/80x/{upstream.make_url('/photo.jpg')}"
    first = await app_client(**settings)
    response = await first.get(path)
    assert response.status == 200 and 'cache;desc="miss"' in response.headers["Server-Timing"]
    second = await app_client(**settings)  # a new process on the same storage path
    response = await second.get(path)
    assert response.status == 200 and 'cache;desc="store"' in response.headers["Server-Timing"]
    assert second.server.app[RENDERER].renders == 0


async def test_off_by_default(app_client, tmp_path: Path) -> None:
    client = await app_client()
    response = await client.put("/images", data=gradient(50, 40).pngsave_buffer())
    image_id = (await response.json())["id"]
    response = await client.get(f"/resize/20x/{image_id}")
    assert response.status == 200
    assert client.server.app[RENDERER].results_store is None
    assert not (tmp_path / "data" / "results").exists()


def result(body: bytes = b"x" * 300, fmt: str = "png") -> Result:
    return Result(body, fmt, 30, 20, 1, 4, True, 1.0, 2.0)


async def test_a_result_round_trips_and_survives_a_restart(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, 1 << 20)
    await store.open()
    assert await store.get("A" * 24) is None
    await store.put("A" * 24, result())
    back = await store.get("A" * 24)
    assert back is not None
    assert (back.body, back.format, back.mime, back.width, back.height) == (
        b"x" * 300, "png", "image/png", 30, 20
    )  # fmt: skip
    assert (back.pages, back.bands, back.has_alpha) == (1, 4, True)
    again = ResultStore(tmp_path, 1 << 20)
    await again.open()
    assert again.size == store.size > 300  # sizes rebuilt by a scan
    assert (await again.get("A" * 24)).body == b"x" * 300


async def test_budget_and_placeholders_survive_the_store(tmp_path: Path) -> None:
    from dataclasses import replace

    store = ResultStore(tmp_path, 1 << 20)
    await store.open()
    marks = {
        "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj",
        "thumbhash": "AAAA",
        "dominant_color": "ff0000",
    }
    await store.put("B" * 24, replace(result(), over_budget=4321, placeholders=marks))
    back = await store.get("B" * 24)
    assert back.over_budget == 4321 and back.placeholders == marks


async def test_unreadable_files_are_dropped_not_served(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, 1 << 20)
    await store.open()
    await store.put("B" * 24, result())
    path = store.path("B" * 24)
    path.write_bytes(path.read_bytes()[:-10])  # cut short, as by a power loss
    assert await store.get("B" * 24) is None
    assert not path.exists()
    path.write_bytes(b"not a result")
    assert await store.get("B" * 24) is None


async def test_the_least_recently_used_results_go_first(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, 1300)  # room for three results of ~410 bytes
    await store.open()
    keys = [letter * 24 for letter in "abcd"]
    for key in keys[:3]:
        await store.put(key, result())
    now = time.time()
    for age, key in zip((300, 200, 100), keys[:3], strict=True):
        os.utime(store.path(key), (now - age, now - age))
    assert await store.get(keys[0]) is not None  # the oldest, read: now the most recent
    await store.put(keys[3], result())  # over the bound: evict down to 90% of it
    await store.close()  # waits for the eviction
    present = [key for key in keys if store.path(key).exists()]
    assert present == [keys[0], keys[3]]
    assert store.size == sum(store.path(k).stat().st_size for k in present) <= 1300


async def test_results_larger_than_the_store_or_a_zero_bound_are_not_kept(tmp_path) -> None:
    store = ResultStore(tmp_path / "small", 100)
    await store.open()
    await store.put("C" * 24, result())
    assert await store.get("C" * 24) is None
    off = ResultStore(tmp_path / "off", 0)
    await off.open()
    await off.put("C" * 24, result())
    assert await off.get("C" * 24) is None and off.size == 0
