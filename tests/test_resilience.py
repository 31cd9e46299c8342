"""Overload, disconnects, slow clients and a full disk, against the real `progimage serve`."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from conftest import gradient
from proxy.keys import STORE

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
SLOW_OPS = "/blur/40/sharpen/5"  # about 1.5 s for the 2000x2000 image below on one core


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    return gradient(2000, 2000).jpegsave_buffer(Q=90)


async def _render(session, url: str, body: bytes, ops: str = SLOW_OPS) -> tuple[int, dict, float]:
    started = time.monotonic()
    async with session.post(url + ops, data=body) as response:
        await response.read()
        return response.status, dict(response.headers), time.monotonic() - started


async def test_burst_beyond_the_queue_gets_prompt_503s_and_recovers(start_server, big_jpeg) -> None:
    server = start_server(limits={"concurrency": 1, "queue": 1})
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(*(_render(session, server.url, big_jpeg) for _ in range(8)))
        statuses = sorted(status for status, _, _ in results)
        assert 500 not in statuses, statuses
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 2, statuses  # the running one and the waiting one
        refused = [(headers, elapsed) for status, headers, elapsed in results if status == 503]
        assert refused, statuses
        for headers, elapsed in refused:
            assert headers["Content-Type"].startswith(PROBLEM)
            assert int(headers["Retry-After"]) >= 1
            assert elapsed < 1.0, elapsed  # refused at once, not after waiting for a slot
        async with session.get(server.url + "/health") as health:
            assert health.status == 200
        status, _, _ = await _render(session, server.url, big_jpeg, "/resize/100x")
        assert status == 200


def _raw_request(port: int, head: bytes, body: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head + body)
    return sock


def _post_head(path: str, length: int, method: str = "POST") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


async def _render_until_ok(session, url: str, body: bytes, within: float) -> list[int]:
    seen = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        status, _, _ = await _render(session, url, body, "/resize/50x")
        seen.append(status)
        if status == 200:
            return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"no render succeeded within {within}s: {seen}")


async def test_client_gone_mid_render_leaves_a_healthy_drained_pool(start_server, big_jpeg):
    server = start_server(limits={"concurrency": 1, "queue": 0})
    sock = _raw_request(server.port, _post_head(SLOW_OPS, len(big_jpeg)), big_jpeg)
    await asyncio.sleep(0.4)  # the render is running now
    sock.close()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(server.url + "/health") as health:
            assert health.status == 200
        seen = await _render_until_ok(session, server.url, big_jpeg, within=15)
    assert 500 not in seen, seen


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed the connection (or answered) within `seconds`."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return False, b""
    except ConnectionResetError:
        return True, b""
    return True, data


async def _trickle(sock: socket.socket, data: bytes, every: float) -> bool:
    """Send byte by byte; False once the server has closed the connection."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return False
        await asyncio.sleep(every)
    return True


async def test_trickled_headers_are_cut_off_and_pin_no_render_slot(start_server, big_jpeg):
    server = start_server(limits={"concurrency": 1, "queue": 0, "header_timeout": 1.5})
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = _post_head("/resize/100x", len(big_jpeg))
    started = time.monotonic()
    trickle = asyncio.ensure_future(_trickle(sock, head, every=0.2))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        status, _, _ = await _render(session, server.url, big_jpeg, "/resize/50x")
        assert status == 200  # the one render slot is free while the headers trickle
    completed = await trickle
    closed, data = await asyncio.to_thread(_closed_within, sock, 5)
    elapsed = time.monotonic() - started
    sock.close()
    assert not completed or closed, "the server kept waiting for the headers"
    assert elapsed < 6, elapsed
    assert not data.startswith(b"HTTP/1.1 2"), data[:100]


@pytest.mark.parametrize("path", ["/images", "/resize/100x"])
async def test_trickled_body_gets_408_and_leaves_nothing(start_server, big_jpeg, path) -> None:
    server = start_server(
        limits={"concurrency": 1, "queue": 0, "body_idle_timeout": 1, "body_timeout": 2.5}
    )
    sock = _raw_request(server.port, _post_head(path, len(big_jpeg), "PUT" if "images" in path
                                                else "POST"), big_jpeg[:1000])  # fmt: skip
    started = time.monotonic()
    trickle = asyncio.ensure_future(_trickle(sock, big_jpeg[1000:1040], every=0.2))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        status, _, _ = await _render(session, server.url, big_jpeg, "/resize/50x")
        assert status == 200  # reading a body holds no render slot
    closed, data = await asyncio.to_thread(_closed_within, sock, 6)
    trickle.cancel()
    sock.close()
    assert closed
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert PROBLEM.encode() in data
    assert time.monotonic() - started < 6
    assert list((server.data / "tmp").iterdir()) == []
    assert not any(p.is_file() for p in (server.data / "originals").rglob("*"))


async def test_stalled_body_gets_408(start_server, big_jpeg) -> None:
    server = start_server(limits={"body_idle_timeout": 1, "body_timeout": 30})
    sock = _raw_request(server.port, _post_head("/images", len(big_jpeg), "PUT"), big_jpeg[:500])
    started = time.monotonic()
    closed, data = await asyncio.to_thread(_closed_within, sock, 5)
    sock.close()
    assert closed and data.startswith(b"HTTP/1.1 408"), data[:200]
    assert time.monotonic() - started < 4


# --- a full disk: 507 and nothing partial


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs root and mount); skipped where mounting is not permitted."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or not mount or not umount:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    where = tmp_path / "tiny"
    where.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"tmpfs mount not permitted: {done.stderr.decode(errors='replace')}")
    try:
        yield where
    finally:
        if subprocess.run([umount, str(where)]).returncode != 0:
            subprocess.run([umount, "-l", str(where)], check=True)  # still busy: detach it


async def test_full_disk_is_507_and_leaves_nothing(app_client, tiny_disk: Path) -> None:
    client = await app_client(storage={"path": str(tiny_disk / "data")})
    store = client.server.app[STORE]
    big = gradient(1400, 1000).pngsave_buffer(compression=0)  # ~4 MB: cannot fit in 1 MiB
    response = await client.put("/images", data=io.BytesIO(big))
    assert response.status == 507, await response.text()
    assert response.content_type == PROBLEM
    problem = json.loads(await response.text())
    assert problem["status"] == 507
    assert list(store.tmp.iterdir()) == []
    assert not any(p.is_file() for p in store.originals.rglob("*"))
    # The space is given back: a small upload right after succeeds.
    small = gradient(40, 30).jpegsave_buffer()
    response = await client.put("/images", data=small)
    assert response.status == 201, await response.text()
    image_id = (await response.json())["id"]
    stored = await client.get(f"/images/{image_id}")
    assert await stored.read() == small


def test_start_up_keeps_temp_files_of_live_sibling_workers(tmp_path: Path) -> None:
    """A worker that starts late must not delete the upload a sibling is writing right now."""
    from proxy.sources.local import LocalStore

    tmp = tmp_path / "data" / "tmp"
    tmp.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    sibling = tmp / f"{os.getppid()}-0123.part"  # a process that is certainly alive
    leftovers = [tmp / f"{dead.pid}-4567.part", tmp / f"{os.getpid()}-89ab.part", tmp / "old.part"]
    for path in [sibling, *leftovers]:
        path.write_bytes(b"partial")
    asyncio.run(LocalStore(tmp_path / "data").open())
    assert sorted(tmp.iterdir()) == [sibling]
