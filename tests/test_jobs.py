"""Asynchronous imports: `Prefer: respond-async` → 202 and a job, polled at /jobs/{job}."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from conftest import decode, gradient
from proxy.errors import Overloaded, Unprocessable
from proxy.jobs import Jobs
from proxy.keys import JOBS, POOL

ASYNC = {"Prefer": "respond-async"}
POLL_SECONDS = 30


async def submit(http, payload: dict) -> str:
    """POST /images with respond-async; checks the 202 and returns the job's URL."""
    async with http.post("/images", json=payload, headers=ASYNC) as response:
        assert response.status == 202, await response.text()
        body = await response.json()
        assert response.headers["Location"] == f"/jobs/{body['job']}" == body["url"]
        assert response.headers["Preference-Applied"] == "respond-async"
    assert body["status"] == "pending" and body["image"] is None and body["error"] is None
    assert len(body["job"]) == 32 and int(body["job"], 16) >= 0
    return body["url"]


async def poll(http, url: str) -> dict:
    """GET the job until it is no longer pending (at most POLL_SECONDS)."""
    deadline = asyncio.get_running_loop().time() + POLL_SECONDS
    while True:
        async with http.get(url) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Cache-Control"] == "no-store"
            state = await response.json()
        if state["status"] != "pending":
            return state
        assert asyncio.get_running_loop().time() < deadline, f"job still pending: {state}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def origin(aiohttp_server, jpeg_bytes: bytes):
    """A remote origin on loopback serving one good and one truncated JPEG."""
    bodies = {"good.jpg": jpeg_bytes, "corrupt.jpg": jpeg_bytes[: len(jpeg_bytes) // 2]}

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=bodies[request.match_info["name"]], content_type="image/jpeg")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    return await aiohttp_server(app)


# --- end to end, against `progimage serve`


@pytest.mark.e2e
async def test_a_job_derives_and_stores_an_image(start_server, jpeg_bytes: bytes) -> None:
    server = start_server()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=jpeg_bytes) as response:
            source = (await response.json())["id"]
        job = await submit(http, {"from": f"/crop/0,0,200,100/fmt/png/{source}"})
        state = await poll(http, job)
        assert state["status"] == "done", state
        assert state["error"] is None
        image = state["image"]
        assert (image["format"], image["width"], image["height"]) == ("png", 200, 100)
        assert image["url"] == f"/images/{image['id']}"
        async with http.get(image["url"]) as response:
            assert response.status == 200
            stored = decode(await response.read())
        assert (stored.width, stored.height) == (200, 100)
        # The same import without the preference answers at once, with the same image.
        payload = {"from": f"/crop/0,0,200,100/fmt/png/{source}"}
        async with http.post("/images", json=payload) as response:
            assert response.status == 200  # those bytes are stored already
            assert (await response.json())["id"] == image["id"]


@pytest.mark.e2e
async def test_a_job_with_a_corrupt_source_fails_with_the_422_problem(start_server, origin) -> None:
    server = start_server(sources={"allow_private_networks": True})
    async with aiohttp.ClientSession(server.url) as http:
        job = await submit(http, {"url": str(origin.make_url("/corrupt.jpg"))})
        state = await poll(http, job)
        assert state["status"] == "failed" and state["image"] is None
        problem = state["error"]
        assert problem["status"] == 422
        assert problem["type"].endswith("/unprocessable-image")
        assert "premature end" in problem["detail"] or "truncated" in problem["detail"]
        # And a good URL through the same route is stored.
        state = await poll(http, await submit(http, {"url": str(origin.make_url("/good.jpg"))}))
        assert state["status"] == "done"
        assert (state["image"]["width"], state["image"]["height"]) == (400, 300)


@pytest.mark.e2e
async def test_unknown_jobs_are_404_problems(start_server) -> None:
    server = start_server()
    async with aiohttp.ClientSession(server.url) as http:
        for job in ("0" * 32, "A" * 32, "not-a-job"):
            async with http.get(f"/jobs/{job}") as response:
                assert response.status == 404
                assert response.headers["Content-Type"] == "application/problem+json"
                assert (await response.json())["status"] == 404


@pytest.mark.e2e
async def test_with_two_workers_any_worker_answers_for_a_job(start_server, jpeg_bytes) -> None:
    server = start_server(server={"workers": 2})
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=jpeg_bytes) as response:
            source = (await response.json())["id"]
        jobs = [await submit(http, {"from": f"/resize/{50 + i}x/{source}"}) for i in range(4)]
    seen: dict[str, set[str]] = {job: set() for job in jobs}
    # A fresh connection each time, so the kernel hands each poll to either worker.
    for _ in range(15):
        for job in jobs:
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(server.url, connector=connector) as http:
                async with http.get(job) as response:
                    assert response.status == 200, await response.text()
                    seen[job].add((await response.json())["status"])
        await asyncio.sleep(0.02)
    for job in jobs:
        async with aiohttp.ClientSession(server.url) as http:
            state = await poll(http, job)
        assert state["status"] == "done", state
        assert seen[job] <= {"pending", "done"}


# --- in process: validation, waiting for the pool, the bounds


async def test_a_bad_request_is_refused_before_any_job(app_client) -> None:
    client = await app_client()
    for payload in (
        {"from": "relative"},
        {"from": "/resize/abc/" + "0" * 32},
        {"url": "ftp://x"},
        {},
    ):
        response = await client.post("/images", json=payload, headers=ASYNC)
        assert response.status == 400, payload
    assert len(client.server.app[JOBS]) == 0


async def test_a_missing_source_is_a_failed_job(app_client) -> None:
    client = await app_client()
    response = await client.post("/images", json={"from": f"/resize/10x/{'0' * 32}"}, headers=ASYNC)
    state = await poll(client, (await response.json())["url"])
    assert state["status"] == "failed" and state["error"]["status"] == 404


async def test_a_job_waits_for_a_full_render_pool_instead_of_failing(app_client) -> None:
    client = await app_client(limits={"concurrency": 1, "queue": 0})
    image = gradient(120, 80).pngsave_buffer()
    source = (await (await client.put("/images", data=image)).json())["id"]
    release = threading.Event()
    blocker = asyncio.ensure_future(client.server.app[POOL].run(release.wait, 10))
    await asyncio.sleep(0.05)
    # The pool is full: a synchronous request gets the 503 …
    response = await client.post("/images", json={"from": f"/resize/60x/{source}"})
    assert response.status == 503
    # … a job waits for it.
    response = await client.post("/images", json={"from": f"/resize/60x/{source}"}, headers=ASYNC)
    job = (await response.json())["url"]
    await asyncio.sleep(0.3)
    assert (await (await client.get(job)).json())["status"] == "pending"
    release.set()
    await blocker
    state = await poll(client, job)
    assert state["status"] == "done" and state["image"]["width"] == 60


async def test_a_job_gives_up_on_a_queue_that_stays_full(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path, concurrency=1, patience=0.3)
    await jobs.open()
    attempts = 0

    async def overloaded() -> dict:
        nonlocal attempts
        attempts += 1
        raise Overloaded("render queue is full")

    state = await _finish(jobs, await jobs.submit(overloaded))
    assert state["status"] == "failed" and state["error"]["status"] == 503
    assert attempts > 1  # it tried again before giving up
    await jobs.close()


async def test_jobs_are_bounded_and_forgotten_an_hour_after_they_finish(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path, concurrency=1, max_jobs=2, ttl=0.3)
    await jobs.open()
    gate = asyncio.Event()

    async def waits() -> dict:
        await gate.wait()
        return {"id": "x"}

    first, second = await jobs.submit(waits), await jobs.submit(waits)
    with pytest.raises(Overloaded):
        await jobs.submit(waits)
    gate.set()
    assert (await _finish(jobs, first))["image"] == {"id": "x"}
    await _finish(jobs, second)
    with pytest.raises(Overloaded):  # finished jobs count until they expire
        await jobs.submit(waits)
    await asyncio.sleep(0.35)
    assert await jobs.get(first) is None
    assert not (tmp_path / f"{first}.json").exists()
    await jobs.submit(waits)  # room again
    await jobs.close()


async def test_state_is_shared_through_files_with_other_workers(tmp_path: Path) -> None:
    """Two Jobs over one directory stand for two worker processes of one node."""
    mine, theirs = Jobs(tmp_path, concurrency=1), Jobs(tmp_path, concurrency=1)
    await mine.open()
    await theirs.open()

    async def ok() -> dict:
        return {"id": "abc"}

    async def bad() -> dict:
        raise Unprocessable("the image cannot be decoded")

    done, failed = await mine.submit(ok), await mine.submit(bad)
    await _finish(mine, done)
    await _finish(mine, failed)
    assert await theirs.get(done) == await mine.get(done)
    assert (await theirs.get(failed))["error"]["status"] == 422
    assert await theirs.get("f" * 32) is None
    assert await theirs.get("../" + done) is None
    await mine.close()


async def test_jobs_of_a_stopped_worker_are_reported_lost(tmp_path: Path) -> None:
    jobs = Jobs(tmp_path, concurrency=1)
    await jobs.open()
    forever = asyncio.Event()

    async def hangs() -> dict:
        await forever.wait()
        return {}

    job = await jobs.submit(hangs)
    await asyncio.sleep(0.05)
    await jobs.close()  # graceful stop: recorded as lost at once
    state = await Jobs(tmp_path, concurrency=1).get(job)
    assert state["status"] == "failed" and state["error"]["type"].endswith("/job-lost")
    # A pending job whose process died without a word (SIGKILL) is lost too.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = "e" * 32
    (tmp_path / f"{orphan}.json").write_text(json.dumps(
        {"job": orphan, "status": "pending", "image": None, "error": None,
         "pid": int(dead.stdout), "finished": None}
    ))  # fmt: skip
    state = await Jobs(tmp_path, concurrency=1).get(orphan)
    assert state["status"] == "failed" and state["error"]["status"] == 503


async def _finish(jobs: Jobs, job: str) -> dict:
    for _ in range(250):
        state = await jobs.get(job)
        if state["status"] != "pending":
            return state
        await asyncio.sleep(0.02)
    raise AssertionError(f"job still pending: {state}")
