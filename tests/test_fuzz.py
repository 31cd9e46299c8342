"""Property tests: random paths and random upload bodies never make the service answer 500.

Each test drives its own event loop (asyncio.Runner) around one in-process app, and hypothesis
calls a synchronous inner function per example, so fixtures are set up once per test.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from conftest import gradient
from proxy.app import create_app
from proxy.keys import STORE
from proxy.ops import BY_NAME

PROBLEM = "application/problem+json"
TIMEOUT = 20
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def running_app(make_config) -> Iterator[tuple[asyncio.Runner, TestClient]]:
    """One app on its own loop; requests are made with `runner.run(...)` from sync code."""
    with asyncio.Runner() as runner:

        async def start() -> TestClient:
            client = TestClient(TestServer(create_app(make_config(limits={"fetch_timeout": 1.0}))))
            await client.start_server()
            return client

        client = runner.run(start())
        try:
            yield runner, client
        finally:
            runner.run(client.close())


async def _call(client: TestClient, method: str, raw_path: str, data: bytes | None = None):
    url = URL(str(client.make_url("/")).rstrip("/") + raw_path, encoded=True)
    async with client.session.request(method, url, data=data) as response:
        body = await response.read()
        return response.status, response.content_type, body


# --- random paths

_ARGS = ["100x", "x50", "100x100", "0x0", "99999x99999", "0,0,10,10", "-1,0,5,5", "90", "45",
         "1.5", "abc", "ffffff", "zz", "1e9", "nan", "inf", "webp", "jpeg", "centre", "smart",
         "", "%00", "..", ".", "0.25,0,0.5,1.0", "-50", "max", "0.3,0.7", "4,8", "keep",
         "b64:aHR0cDovLzEyNy4wLjAuMS94LnBuZw", "b64:!!", "auto"]  # fmt: skip
_IDS = ["0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdeF", "deadbeef"]
_SOURCES = ["https:/example.invalid/a.jpg", "http://127.0.0.1/x.png", "https://[::1]/x",
            "http://169.254.169.254/latest/meta-data", "ftp://x/y", "file:///etc/passwd",
            "data:image/png;base64,AAAA"]  # fmt: skip

_escape = st.builds(
    lambda a, b: f"%{a}{b}", st.sampled_from("0123456789abcdefABCDEFgz%"), st.sampled_from("0af7Gz")
)
_segment = st.one_of(
    st.sampled_from(sorted(BY_NAME)),
    st.sampled_from(_ARGS),
    st.sampled_from(_IDS).flatmap(lambda i: st.sampled_from([i, f"{i}.webp", f"{i}.bmp", i[:-1]])),
    st.sampled_from(_SOURCES),
    st.text(max_size=12),
    st.text(alphabet=string.ascii_letters + string.digits + ",.x-", max_size=20),
    st.lists(_escape, min_size=1, max_size=6).map("".join),
    st.integers(min_value=200, max_value=9000).map(lambda n: "a" * n),
)


def _encode(segment: str) -> str:
    # Keep '%' as is, so that both valid and broken percent-escapes reach the server raw.
    return quote(segment, safe="%,.:~!$&'()*+;=@-_/")


_path = st.tuples(
    st.sampled_from(["", "/sig/AAAA", "/sig/" + "A" * 43]),
    st.lists(_segment, min_size=0, max_size=8),
    st.sampled_from(["", "?", "?a=b", "?%zz", "?url=http://x/", "?" + "q" * 3000]),
).map(lambda t: t[0] + "/" + "/".join(_encode(s) for s in t[1]) + t[2])


def test_random_paths_never_500(running_app) -> None:
    runner, client = running_app

    @FUZZ
    @given(path=_path)
    def check(path: str) -> None:
        status, content_type, body = runner.run(
            asyncio.wait_for(_call(client, "GET", path), TIMEOUT)
        )
        assert status < 500 or status in (502, 503, 504), (path, status, body[:300])
        # aiohttp's HTTP parser refuses a request line over 8190 bytes (plain text, before the
        # app is reached); everything the app answers is problem+json.
        if 400 <= status < 500 and len(path) < 8000:
            assert content_type == PROBLEM, (path, status, body[:300])
            problem = json.loads(body)
            assert problem["status"] == status
            assert set(problem) >= {"type", "title", "status", "detail"}

    check()


# --- random upload bodies

_SEEDS = {
    "jpeg": gradient(32, 24).jpegsave_buffer(Q=80),
    "png": gradient(32, 24).pngsave_buffer(),
    "gif": gradient(16, 12).gifsave_buffer(),
    "webp": gradient(32, 24).webpsave_buffer(Q=80),
}


@st.composite
def _mutated(draw) -> bytes:
    data = bytearray(_SEEDS[draw(st.sampled_from(sorted(_SEEDS)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "zero"]))
        if not data:
            break
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "splice":
            other = _SEEDS[draw(st.sampled_from(sorted(_SEEDS)))]
            start = draw(st.integers(min_value=0, max_value=len(other) - 1))
            data[at:] = other[start:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            end = min(len(data), at + draw(st.integers(min_value=1, max_value=256)))
            data[at:end] = bytes(end - at)
    return bytes(data)


_body = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00"]).flatmap(
        lambda magic: st.binary(max_size=1024).map(lambda rest: magic + rest)
    ),
    _mutated(),
)


def test_random_upload_bodies_never_500(running_app) -> None:
    runner, client = running_app
    seen: dict[int, int] = {}

    @FUZZ
    @given(body=_body)
    def check(body: bytes) -> None:
        status, content_type, text = runner.run(
            asyncio.wait_for(_call(client, "PUT", "/images", body), TIMEOUT)
        )
        seen[status] = seen.get(status, 0) + 1
        assert status in (200, 201, 400, 413, 415, 422), (status, text[:300], body[:64])
        if status >= 400:
            assert content_type == PROBLEM

    check()
    store = client.server.app[STORE]
    assert list(store.tmp.iterdir()) == []  # refused or not, no temporary file stays behind
    print(f"upload statuses: {dict(sorted(seen.items()))}")
