"""Scale out: two `progimage serve` nodes on one S3 bucket (SeaweedFS) behind the repo's nginx.conf.

Each node is a real process configured only through the environment (PROGIMAGE_STORAGE__* and
the standard AWS_* variables); nginx runs from a copy of ./nginx.conf whose upstream block
lists both nodes. What a cluster must guarantee: an upload through one node is served by the
other at once; a DELETE through any node is a 404 on every node within storage.consistency_s;
identical uploads racing on two nodes store one intact object; a remote source is fetched from
its origin once for all nodes (cache.sources_in_store); a variant rendered on one node is
served by the other from the bucket without a render (cache.results_in_store); a job taken by
one node is answered by the other; an id deleted and stored again is served by both at once.
The throughput of one node and of two
is measured and printed, never asserted.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import struct
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from test_nginx import NginxProcess, ensure_nginx

from conftest import SeaweedFS, ServerProcess, gradient

pytestmark = pytest.mark.e2e

CONSISTENCY_S = 2.0
BENCH_SECONDS = float(os.environ.get("CLUSTER_BENCH_SECONDS", "5"))
BENCH_CONCURRENCY = 8


# --- the cluster


class Origin:
    """A remote image origin on loopback that counts the requests it serves."""

    def __init__(self, body: bytes) -> None:
        self.hits = 0
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                origin.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def two_upstreams(nginx: NginxProcess, first: int, second: int) -> None:
    """Rewrite the copied nginx.conf so that its single upstream server line names both."""
    text = nginx.conf.read_text()
    line = f"server 127.0.0.1:{first};"
    assert text.count(line) == 1, "nginx.conf's upstream block must have one server line"
    nginx.conf.write_text(text.replace(line, f"{line}\n        server 127.0.0.1:{second};"))


@dataclass
class Cluster:
    a: ServerProcess
    b: ServerProcess
    nginx: NginxProcess
    origin: Origin

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"


def node(tmp: Path, seaweedfs: SeaweedFS, prefix: str) -> ServerProcess:
    sections = {
        "cache": {"sources_in_store": True, "results_in_store": True},
        "sources": {"allow_private_networks": True},  # the origin is on loopback
    }
    # A storage.path of its own, as on separate machines: nothing is shared but the bucket.
    own = tmp / f"node-{uuid.uuid4().hex[:8]}"
    own.mkdir()
    return ServerProcess(own, sections, seaweedfs.storage_env(prefix, CONSISTENCY_S)).start()


@pytest.fixture(scope="module")
def cluster(seaweedfs: SeaweedFS, tmp_path_factory, jpeg_bytes: bytes) -> Iterator[Cluster]:
    binary = ensure_nginx()
    tmp = tmp_path_factory.mktemp("cluster")
    prefix = f"cluster-{uuid.uuid4().hex[:8]}"
    started: list = []
    try:
        a = node(tmp, seaweedfs, prefix)
        started.append(a)
        b = node(tmp, seaweedfs, prefix)
        started.append(b)
        nginx = NginxProcess(binary, tmp, a.port)
        two_upstreams(nginx, a.port, b.port)
        started.append(nginx.start())
        origin = Origin(jpeg_bytes)
        started.append(origin)
        yield Cluster(a, b, nginx, origin)
    finally:
        for process in reversed(started):
            process.close() if isinstance(process, Origin) else process.stop()


def call(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def upload(base: str, data: bytes) -> tuple[int, str]:
    status, body, _ = call(f"{base}/images", "PUT", data)
    assert status in (200, 201), body
    return status, json.loads(body)["id"]


def unique_png(base: bytes, n: int) -> bytes:
    """`base` with a tEXt chunk naming `n`: a distinct, valid PNG (a distinct id) per n."""
    payload = b"Comment\x00" + str(n).encode()
    chunk = b"tEXt" + payload
    text = struct.pack(">I", len(payload)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return base[:33] + text + base[33:]  # right after the signature and IHDR


def wait_for(condition: Callable[[], bool], limit: float) -> float:
    """Seconds until condition() held; fails past `limit`."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed <= limit, f"still not true after {elapsed:.2f} s"
        time.sleep(0.05)
    return time.monotonic() - started


# --- behaviour


def test_an_upload_through_a_is_served_by_b_at_once(cluster: Cluster, photo_bytes: bytes):
    status, image = upload(cluster.a.url, photo_bytes)
    assert status == 201
    got, body, headers = call(f"{cluster.b.url}/images/{image}")
    assert got == 200 and body == photo_bytes
    assert headers["ETag"] == f'"{image}"'
    got, body, _ = call(f"{cluster.b.url}/images/{image}", headers={"Range": "bytes=0-99"})
    assert got == 206 and body == photo_bytes[:100]
    got, info, _ = call(f"{cluster.b.url}/images/{image}/info")
    assert got == 200 and b'"format": "jpeg"' in info
    got, _, _ = call(f"{cluster.b.url}/resize/64x/{image}")
    assert got == 200
    got, listing, _ = call(f"{cluster.lb}/images?limit=1000")
    assert got == 200 and image.encode() in listing


def test_a_delete_through_b_is_a_404_on_every_node_within_consistency_s(
    cluster: Cluster, png_alpha_bytes: bytes
):
    _, image = upload(cluster.a.url, png_alpha_bytes)
    urls = [
        f"{server.url}{path}"
        for server in (cluster.a, cluster.b)
        for path in (f"/resize/50x/{image}", f"/images/{image}/info", f"/images/{image}")
    ]
    for url in urls:  # every node now remembers the id and has the rendition in its cache
        assert call(url)[0] == 200
    assert call(f"{cluster.b.url}/images/{image}", "DELETE")[0] == 204
    # Derived URLs and info come first: answered from the result and record caches, they are
    # what consistency_s bounds (a GET of the bytes asks the bucket and learns at once).
    # The bound: consistency_s, plus a second for the polling and the store's own latency.
    took = wait_for(lambda: all(call(url)[0] == 404 for url in urls), CONSISTENCY_S + 1.0)
    print(f"\ncluster: deleted id answered 404 on both nodes after {took:.2f} s")
    assert call(f"{cluster.a.url}/images/{image}", "DELETE")[0] == 404


def test_identical_uploads_racing_on_two_nodes_store_one_intact_object(
    cluster: Cluster, gif_bytes: bytes
):
    data = gif_bytes + b""  # a fresh id for this test: the GIF is uploaded nowhere else
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: upload((cluster.a, cluster.b)[i % 2].url, data), range(8))
        )
    assert len({image for _, image in results}) == 1
    assert 201 in {status for status, _ in results}
    image = results[0][1]
    for server in (cluster.a, cluster.b):
        status, body, _ = call(f"{server.url}/images/{image}")
        assert status == 200 and body == data


def test_a_remote_source_is_fetched_once_for_both_nodes(cluster: Cluster):
    before = cluster.origin.hits
    path = f"/resize/80x/{cluster.origin.url}/picture.jpg"
    status_a, body_a, headers_a = call(f"{cluster.a.url}{path}")
    status_b, body_b, headers_b = call(f"{cluster.b.url}{path}")
    assert (status_a, status_b) == (200, 200)
    assert headers_a["ETag"] == headers_b["ETag"]  # the same upstream validator on both nodes
    assert body_a[:3] == body_b[:3] == b"\xff\xd8\xff"
    assert cluster.origin.hits - before == 1


def test_a_variant_rendered_on_a_is_served_by_b_from_the_bucket(
    cluster: Cluster, photo_bytes: bytes
):
    _, image = upload(cluster.a.url, photo_bytes)
    path = f"/resize/90x/fmt/webp/{image}"
    status, rendered, headers_a = call(f"{cluster.a.url}{path}")
    assert status == 200 and 'cache;desc="miss"' in headers_a["Server-Timing"]
    before = renders(cluster.b)
    status, served, headers_b = call(f"{cluster.b.url}{path}")
    assert status == 200 and 'cache;desc="store"' in headers_b["Server-Timing"]
    assert served == rendered and headers_b["ETag"] == headers_a["ETag"]
    assert renders(cluster.b) == before  # B rendered nothing


def test_a_job_taken_by_a_is_answered_by_b(cluster: Cluster, jpeg_bytes: bytes):
    _, image = upload(cluster.a.url, jpeg_bytes)
    body = json.dumps({"from": f"/resize/30x/{image}"}).encode()
    headers = {"Content-Type": "application/json", "Prefer": "respond-async"}
    status, accepted, response_headers = call(f"{cluster.a.url}/images", "POST", body, headers)
    assert status == 202
    poll = f"{cluster.b.url}{response_headers['Location']}"
    wait_for(lambda: json.loads(call(poll)[1])["status"] != "pending", 20)
    status, state, _ = call(poll)
    state = json.loads(state)
    assert status == 200 and state["status"] == "done", state
    assert state["image"]["width"] == 30
    assert call(f"{cluster.b.url}/images/{state['image']['id']}")[0] == 200
    assert call(f"{cluster.b.url}/jobs/{'0' * 32}")[0] == 404


def test_an_original_stored_again_after_a_delete_is_served_by_both_at_once(
    cluster: Cluster, jpeg_bytes: bytes
):
    data = unique_png(gradient(64, 48).pngsave_buffer(), 424242)
    _, image = upload(cluster.a.url, data)
    urls = [f"{server.url}/resize/40x/{image}" for server in (cluster.a, cluster.b)]
    urls += [f"{server.url}/images/{image}/info" for server in (cluster.a, cluster.b)]
    assert {call(url)[0] for url in urls} == {200}
    assert call(f"{cluster.a.url}/images/{image}", "DELETE")[0] == 204
    wait_for(lambda: all(call(url)[0] == 404 for url in urls), CONSISTENCY_S + 1.0)
    # Both nodes have just answered 404; the upload must not be hidden behind that.
    assert upload(cluster.a.url, data) == (201, image)
    assert [call(url)[0] for url in urls] == [200, 200, 200, 200]
    got, body, _ = call(f"{cluster.b.url}/images/{image}")
    assert got == 200 and body == data


def test_nginx_spreads_work_over_both_nodes(cluster: Cluster, jpeg_bytes: bytes):
    _, image = upload(cluster.lb, jpeg_bytes)
    before = {s.port: renders(s) for s in (cluster.a, cluster.b)}
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda w: call(f"{cluster.lb}/resize/{w}x/{image}")[0], range(40, 120))
        )
    assert set(statuses) == {200}
    done = {s.port: renders(s) - before[s.port] for s in (cluster.a, cluster.b)}
    assert sum(done.values()) == 80
    assert all(count > 0 for count in done.values()), done


def renders(server: ServerProcess) -> int:
    _, body, _ = call(f"{server.url}/metrics")
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("progimage_render_seconds_count")
        )
    )


# --- throughput: printed, not asserted


async def rate(targets: list[str], request: Callable[[aiohttp.ClientSession, str, int], object]):
    """Requests per second with BENCH_CONCURRENCY clients for BENCH_SECONDS, round robin."""
    counter = iter(range(10**9))
    done = 0
    failed = 0
    deadline = time.monotonic() + BENCH_SECONDS
    connector = aiohttp.TCPConnector(limit=BENCH_CONCURRENCY * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, failed
            while time.monotonic() < deadline:
                n = next(counter)
                ok = await request(session, targets[n % len(targets)], n)
                done += ok
                failed += not ok

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(BENCH_CONCURRENCY)))
        elapsed = time.monotonic() - started
    assert failed == 0, f"{failed} requests failed"
    return done / elapsed


async def test_throughput_one_node_vs_two(cluster: Cluster, photo_bytes: bytes, capsys):
    base_png = gradient(320, 240).pngsave_buffer()
    _, image = upload(cluster.a.url, photo_bytes)
    offset = {"n": 0}

    async def put(session: aiohttp.ClientSession, target: str, n: int) -> bool:
        body = unique_png(base_png, offset["n"] + n)
        async with session.put(f"{target}/images", data=body) as response:
            await response.read()
            return response.status in (200, 201)

    async def render(session: aiohttp.ClientSession, target: str, n: int) -> bool:
        # A box never asked before: a real render on some node, never a cache hit.
        k = offset["n"] + n
        box = f"{40 + k % 1000}x{40 + k // 1000}"
        async with session.get(f"{target}/resize/{box}/{image}") as response:
            await response.read()
            return response.status == 200

    results = {}
    setups = {
        "one node (A direct)": [cluster.a.url],
        "two nodes (client round robin)": [cluster.a.url, cluster.b.url],
        "two nodes (nginx, both upstreams)": [cluster.lb],
    }
    for name, targets in setups.items():
        for kind, request in (("uploads/s", put), ("renders/s", render)):
            results[(name, kind)] = await rate(targets, request)
            offset["n"] += 100_000
    with capsys.disabled():
        print(
            f"\ncluster throughput ({BENCH_SECONDS:g} s each, {BENCH_CONCURRENCY} clients, "
            f"{os.cpu_count()} cores shared by every process):"
        )
        for (name, kind), value in results.items():
            print(f"  {name:36} {kind:10} {value:8.1f}")
