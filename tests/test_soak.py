"""A short soak: concurrent clients mix valid and hostile requests against the real server.

Afterwards: no 5xx but 503, every stored original byte-identical to its upload, and the
server's resident memory grew less than RSS_BOUND_MB. `make soak` runs 5000 requests;
SOAK_REQUESTS sets the count (default small enough for `make test`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections import Counter

import aiohttp
import pytest
from test_hostile import CASES, vm_rss_mb

from conftest import gradient

pytestmark = pytest.mark.e2e

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "300"))
CLIENTS = 8
RSS_BOUND_MB = 250


def _valid_images() -> list[bytes]:
    images = []
    for i in range(12):
        image = gradient(60 + 7 * i, 40 + 5 * i)
        save = [image.jpegsave_buffer, image.pngsave_buffer, image.webpsave_buffer][i % 3]
        images.append(save())
    return images


HOSTILE = [make() for make, _allowed, sections in CASES.values() if not sections]
BAD_PATHS = ["/resize/0x0/0123456789abcdef0123456789abcdef", "/nope/x", "/rotate/45/abc",
             "/%zz%00/..", "/" + "a" * 3000, "/resize/100x/https:/%5B::1%5D/x",
             "/images/0123456789abcdef0123456789abcdef", "/fill/10x10/gravity/up/x"]  # fmt: skip


async def _client(session, base: str, plan: list[int], valid, stored, statuses) -> None:
    rng = random.Random(plan[0] if plan else 0)
    for _ in plan:
        kind = rng.choice(["upload", "upload", "derived", "derived", "hostile", "path", "ondemand"])
        if kind == "upload":
            body = rng.choice(valid)
            method, path = "PUT", "/images"
        elif kind == "derived" and stored:
            body = None
            image_id = rng.choice(sorted(stored))
            method, path = (
                "GET",
                f"/resize/{rng.randint(10, 90)}x/{image_id}.{rng.choice(['jpg', 'webp', 'png'])}",
            )
        elif kind == "hostile":
            body = rng.choice(HOSTILE)
            method, path = rng.choice([("PUT", "/images"), ("POST", "/resize/50x")])
        elif kind == "ondemand":
            body = rng.choice(valid)
            method, path = "POST", f"/resize/{rng.randint(10, 50)}x/fmt/png"
        else:
            body, method, path = None, "GET", rng.choice(BAD_PATHS)
        async with session.request(method, base + path, data=body) as response:
            payload = await response.read()
            statuses[response.status] += 1
            assert response.status < 500 or response.status == 503, (
                method, path, response.status, payload[:300],
            )  # fmt: skip
            if kind == "upload" and response.status in (200, 201):
                stored[(await response.json())["id"]] = body


async def test_soak_mixed_traffic(start_server) -> None:
    server = start_server(limits={"concurrency": 2, "queue": 8})
    valid = _valid_images()
    stored: dict[str, bytes] = {}
    statuses: Counter[int] = Counter()
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # Warm up: libvips, the caches and the allocator settle before the baseline.
        await _client(session, server.url, [1] * 30, valid, stored, Counter())
        before = vm_rss_mb(server.process.pid)
        plans = [list(range(i, REQUESTS, CLIENTS)) for i in range(CLIENTS)]
        await asyncio.gather(
            *(_client(session, server.url, plan, valid, stored, statuses) for plan in plans)
        )
        after = vm_rss_mb(server.process.pid)
        for image_id, body in stored.items():
            async with session.get(f"{server.url}/images/{image_id}") as response:
                assert response.status == 200
                assert await response.read() == body
            assert hashlib.sha256(body).hexdigest()[:32] == image_id
    assert sum(statuses.values()) == REQUESTS
    growth = after - before
    counts = dict(sorted(statuses.items()))
    print(f"soak: {REQUESTS} requests {counts}; server RSS {before:.0f} -> {after:.0f} MB "
          f"(growth {growth:.0f} MB, bound {RSS_BOUND_MB})")  # fmt: skip
    assert growth < RSS_BOUND_MB
    assert "Traceback" not in server.log()
