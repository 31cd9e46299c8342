"""End to end: `progimage serve` as a real process, spoken to over HTTP on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from conftest import REPO, decode

pytestmark = pytest.mark.e2e


async def test_upload_transform_and_delete(start_server, photo_bytes: bytes) -> None:
    server = start_server()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=photo_bytes) as response:
            assert response.status == 201
            image_id = (await response.json())["id"]
        async with http.get(f"/resize/300x300/fmt/webp/{image_id}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/webp"
            etag = response.headers["ETag"]
            image = decode(await response.read())
            assert (image.width, image.height) == (300, 200)
        async with http.get(
            f"/fmt/webp/resize/300x300/{image_id}", headers={"If-None-Match": etag}
        ) as response:
            assert response.status == 304
        async with http.get(f"/images/{image_id}") as response:
            assert await response.read() == photo_bytes
        async with http.delete(f"/images/{image_id}") as response:
            assert response.status == 204
        async with http.get(f"/resize/300x300/fmt/webp/{image_id}") as response:
            assert response.status == 404
            assert response.headers["Content-Type"] == "application/problem+json"


async def test_environment_overrides_the_config_file(start_server, photo_bytes) -> None:
    server = start_server(env={"PROGIMAGE_LIMITS__MAX_UPLOAD_BYTES": "1000"})
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=photo_bytes) as response:
            assert response.status == 413
            assert "1000" in (await response.json())["detail"]


async def test_several_worker_processes_share_one_port(start_server, photo_bytes) -> None:
    server = start_server(server={"workers": 2})
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=photo_bytes) as response:
            image_id = (await response.json())["id"]

        async def fetch(width: int) -> tuple[int, int]:
            async with http.get(f"/resize/{width}x/{image_id}") as response:
                return response.status, decode(await response.read()).width

        results = await asyncio.gather(*(fetch(50 + i) for i in range(20)))
    assert results == [(200, 50 + i) for i in range(20)]
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 2


def test_bad_config_fails_at_start_naming_the_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits: {queue: lots}\n")
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--config", str(bad)],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert "limits.queue" in result.stderr


def test_bad_environment_value_fails_naming_the_variable(tmp_path) -> None:
    env = {**os.environ, "PROGIMAGE_SERVER__PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "check-config"],
        capture_output=True, text=True, timeout=30, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 2
    assert "server.port" in result.stderr and "PROGIMAGE_SERVER__PORT" in result.stderr


async def test_killed_mid_upload_leaves_nothing_served(start_server, photo_bytes) -> None:
    server = start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"PUT /images HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(photo_bytes)
    )
    writer.write(photo_bytes[: len(photo_bytes) // 2])
    await writer.drain()
    await asyncio.sleep(0.3)
    server.stop(signal.SIGKILL)
    writer.close()
    leftovers = list((server.data / "tmp").iterdir())
    assert all(p.suffix == ".part" for p in leftovers)  # only ever a temp file
    assert not list((server.data / "originals").rglob("*"))
    server.start()  # a restart sweeps the temp files away
    assert list((server.data / "tmp").iterdir()) == []
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get("/images") as response:
            assert (await response.json())["images"] == []
        async with http.put("/images", data=photo_bytes) as response:
            assert response.status == 201


async def test_originals_survive_a_sigkill_byte_identical(start_server, photo_bytes) -> None:
    server = start_server()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.put("/images", data=photo_bytes) as response:
            image_id = (await response.json())["id"]
    server.stop(signal.SIGKILL)
    server.start()
    async with aiohttp.ClientSession(server.url) as http:
        async with http.get(f"/images/{image_id}") as response:
            assert await response.read() == photo_bytes


def test_sign_command_prints_a_signed_path(tmp_path) -> None:
    env = {**os.environ, "PROGIMAGE_SIGNING__KEY": "secret"}
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "sign", "/resize/10x/" + "a" * 32],
        capture_output=True, text=True, timeout=30, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from proxy import signing

    assert result.stdout.strip() == signing.signed_path("/resize/10x/" + "a" * 32, "secret")
