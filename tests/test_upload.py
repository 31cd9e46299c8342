"""`progimage upload` against the real server process (SPEC §14)."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import ClientSession, web
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, gradient
from proxy.client import Client

pytestmark = pytest.mark.e2e

COMMAND = [sys.executable, "-m", "proxy", "upload"]


def make_photos(root: Path, count: int, *, side: int = 160) -> dict[str, str]:
    """`count` distinct JPEGs over nested directories; {path: expected id}."""
    base = gradient(side, side)
    cell = side // 16
    ids = {}
    for i in range(count):
        path = root / f"d{i % 5}" / f"e{i % 3}" / f"photo{i:03}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # A white square in a place of its own keeps every file's bytes, and id, apart.
        x, y = (i % 16) * cell, (i // 16 % 16) * cell
        data = base.draw_rect(255, x, y, cell, cell, fill=True).jpegsave_buffer(Q=90)
        path.write_bytes(data)
        ids[str(path)] = hashlib.sha256(data).hexdigest()[:32]
    assert len(set(ids.values())) == count
    return ids


def upload(*args: str, cwd: Path, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROGIMAGE_")}
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
        env=full_env | (env or {}),
    )  # fmt: skip


def puts(server) -> dict[str, float]:
    """How many PUT /images the server answered, by status: its own count, from /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "progimage_requests_total"
                and labels.get("route") == "/images"
                and labels.get("method") == "PUT"
            ):
                counts[labels["status"]] = counts.get(labels["status"], 0) + sample.value
    return counts


def stored(server) -> set[str]:
    with Client(server.url) as client:
        return {image.id for image in client.list(page_size=1000)}


def test_interrupted_half_way_then_resumed_stores_each_file_once(start_server, tmp_path):
    server = start_server()
    expected = make_photos(tmp_path / "photos", 200)
    originals = server.data / "originals"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROGIMAGE_")}
    first = subprocess.Popen(
        [*COMMAND, "--server", server.url, "--jobs", "2", "--map", "map.json", "photos"],
        cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    # Killed (no chance to clean up) once about half the files have arrived.
    while first.poll() is None:
        arrived = sum(1 for p in originals.glob("*/*") if len(p.name) == 32)
        if arrived >= 100:
            first.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    first.communicate()
    assert first.returncode == -signal.SIGKILL, "the first run finished before it was killed"
    halfway = stored(server)
    assert 100 <= len(halfway) < 200
    assert not (tmp_path / "map.json").exists()

    second = upload("--server", server.url, "--map", "map.json", "photos", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    uploaded = 200 - len(halfway)
    assert (
        second.stdout.splitlines()[-1]
        == f"{uploaded} uploaded, {len(halfway)} already stored, 0 failed"
    )
    # The map names every file, by the path as the user wrote it, with its content's id.
    assert json.loads((tmp_path / "map.json").read_text()) == {
        os.path.relpath(path, tmp_path): image for path, image in expected.items()
    }
    assert stored(server) == set(expected.values())
    # The server's own count: 200 originals created, not one PUT of bytes it already had.
    counts = puts(server)
    assert counts.get("201") == 200
    assert "200" not in counts
    # The bytes kept are the files' bytes.
    path, image = next(iter(expected.items()))
    with Client(server.url) as client:
        assert client.original(image) == Path(path).read_bytes()


def test_ctrl_c_keeps_what_finished_in_the_map(start_server, tmp_path) -> None:
    server = start_server()
    # Enough files that the interrupt lands mid-way however fast the machine uploads them.
    expected = make_photos(tmp_path / "photos", 240)
    originals = server.data / "originals"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PROGIMAGE_")}
    run = subprocess.Popen(
        [*COMMAND, "--server", server.url, "--jobs", "1", "--map", "map.json", "photos"],
        cwd=tmp_path, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while run.poll() is None:
        if sum(1 for p in originals.glob("*/*") if len(p.name) == 32) >= 10:
            run.send_signal(signal.SIGINT)
            break
        time.sleep(0.01)
    out, err = run.communicate()
    assert run.returncode == 130, err
    assert "interrupted; run the same command again" in err
    done = json.loads((tmp_path / "map.json").read_text())
    # The upload in flight when Ctrl-C came may have arrived without its answer.
    assert 9 <= len(done) < 240
    assert out.splitlines()[-1] == f"{len(done)} uploaded, 0 already stored, 0 failed"
    for path, image in done.items():
        assert expected[str(tmp_path / path)] == image
    assert set(done.values()) <= stored(server)


def test_failures_are_named_and_the_rest_is_stored(start_server, tmp_path, jpeg_bytes):
    server = start_server()
    (tmp_path / "in" / "deep").mkdir(parents=True)
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg_bytes)
    (tmp_path / "in" / "deep" / "notes.txt").write_text("not an image")
    result = upload("--server", server.url, "--map", "out/map.csv", "in", "missing.jpg",
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "1 uploaded, 0 already stored, 2 failed"
    assert "in/deep/notes.txt: 415" in result.stderr
    assert "missing.jpg: no such file or directory" in result.stderr
    with open(tmp_path / "out" / "map.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["path", "id"], ["in/a.jpg", hashlib.sha256(jpeg_bytes).hexdigest()[:32]]]


def test_glob_filters_names_found_in_directories(start_server, tmp_path, jpeg_bytes):
    server = start_server()
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "a.jpg").write_bytes(jpeg_bytes)
    (tmp_path / "in" / "b.png").write_bytes(gradient(20, 20).pngsave_buffer())
    (tmp_path / "in" / "c.txt").write_text("skipped by the glob")
    # in/sub/a.jpg is reached twice, and sent once.
    result = upload("--server", server.url, "--glob", "*.jpg", "./in", "in/sub/a.jpg",
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "1 uploaded, 0 already stored, 0 failed"
    assert stored(server) == {hashlib.sha256(jpeg_bytes).hexdigest()[:32]}


def test_write_token_comes_from_the_environment(start_server, tmp_path, jpeg_bytes):
    server = start_server(auth={"tokens": ["s3cret"]})
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes)
    refused = upload("--server", server.url, "a.jpg", cwd=tmp_path)
    assert refused.returncode == 1
    assert "a.jpg: 401" in refused.stderr
    wrong = upload("--server", server.url, "a.jpg", cwd=tmp_path, env={"PROGIMAGE_TOKEN": "no"})
    assert "a.jpg: 403" in wrong.stderr
    accepted = upload("--server", server.url, "a.jpg", cwd=tmp_path,
                      env={"PROGIMAGE_TOKEN": "s3cret"})  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.splitlines()[-1] == "1 uploaded, 0 already stored, 0 failed"


def test_an_unreachable_server_is_said_once(tmp_path, jpeg_bytes) -> None:
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(jpeg_bytes)
    result = upload("--server", f"http://127.0.0.1:{free_port()}", "a.jpg", "b.jpg",
                    cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("cannot reach") == 1
    assert result.stdout.splitlines()[-1] == "0 uploaded, 0 already stored, 2 failed"


def test_bad_arguments_exit_2(tmp_path):
    for args, message in (
        (["--jobs", "0", "x"], "--jobs must be at least 1"),
        (["--server", "ftp://x", "x"], "expected an http(s):// URL"),
        (["--server", "http://", "x"], "expected an http(s):// URL"),
    ):
        result = upload(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert message in result.stderr
    assert upload(cwd=tmp_path).returncode == 2  # no PATH at all


async def test_503_and_5xx_are_retried_honouring_retry_after(start_server, tmp_path, jpeg_bytes):
    """Through a front that answers the first PUT 503 (Retry-After: 1) and the next 502."""
    server = start_server()
    answered: list[tuple[int, float]] = []
    refusals = iter([503, 502])

    async def front(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        status = next(refusals, None) if request.method == "PUT" else None
        if status is not None:
            answered.append((status, time.monotonic()))
            headers = {"Retry-After": "1"} if status == 503 else {}
            return web.Response(status=status, headers=headers, text="busy")
        async with ClientSession() as http:
            async with http.request(request.method, server.url + request.path_qs, data=body,
                                    headers={"Authorization": request.headers.get(
                                        "Authorization", "")}) as response:  # fmt: skip
                answered.append((response.status, time.monotonic()))
                return web.Response(status=response.status, body=await response.read(),
                                    headers={"Content-Type": response.content_type})  # fmt: skip

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", front)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        (tmp_path / "a.jpg").write_bytes(jpeg_bytes)
        process = await asyncio.create_subprocess_exec(
            *COMMAND, "--server", f"http://127.0.0.1:{port}", "a.jpg", cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
    finally:
        await runner.cleanup()
    assert process.returncode == 0, err.decode()
    assert out.decode().splitlines()[-1] == "1 uploaded, 0 already stored, 0 failed"
    statuses = [status for status, _ in answered]
    assert statuses == [200, 404, 503, 502, 201]  # /health, HEAD, then the PUT three times
    # The retry after the 503 waited for the second its Retry-After asked for.
    assert answered[3][1] - answered[2][1] >= 1.0
