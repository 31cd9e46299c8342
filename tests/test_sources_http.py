"""Remote sources against a real origin on 127.0.0.1: fetching, caching, limits and SSRF."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import pytest
import pyvips
from aiohttp import web
from aiohttp.abc import AbstractResolver
from yarl import URL

from conftest import IMAGES, decode, free_port
from proxy import cache
from proxy import config as config_module
from proxy.errors import BadGateway, Forbidden
from proxy.keys import REMOTE, RENDERER
from proxy.sources import http as http_source
from proxy.sources.http import HttpSource, check_hop

HUGE = 64 * 1024 * 1024
PRIVATE_OK = {"allow_private_networks": True}


@dataclass
class Origin:
    """A real HTTP server on 127.0.0.1 that serves images and misbehaves on request."""

    port: int = 0
    hits: Counter = field(default_factory=Counter)
    etag: str | None = None
    last_modified: str | None = None
    body: bytes = b""
    queries: list[str] = field(default_factory=list)
    cookies: list[str | None] = field(default_factory=list)
    huge_sent: int = 0
    huge_done: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def total(self) -> int:
        return sum(self.hits.values())


def origin_app(origin: Origin, png: bytes) -> web.Application:
    @web.middleware
    async def count(request: web.Request, handler):
        origin.hits[request.path] += 1
        return await handler(request)

    def image(**headers: str) -> web.Response:
        if origin.etag:
            headers["ETag"] = origin.etag
        if origin.last_modified:
            headers["Last-Modified"] = origin.last_modified
        return web.Response(body=origin.body, content_type="image/jpeg", headers=headers)

    async def a_jpg(request: web.Request) -> web.Response:
        return image()

    async def b_png(request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    async def slowish(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)  # long enough for every concurrent request to pile up
        return image()

    async def query(request: web.Request) -> web.Response:
        origin.queries.append(request.rel_url.raw_query_string)
        return image()

    async def chain(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return image()
        # Alternate relative and absolute Locations: both must be followed and checked.
        location = f"/r/{n - 1}" if n % 2 else origin.url(f"/r/{n - 1}")
        raise web.HTTPFound(location)

    async def slow_headers(request: web.Request) -> web.Response:
        await asyncio.wait_for(origin.release.wait(), 30)
        return image()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(origin.body)
        await response.prepare(request)
        await response.write(origin.body[:100])
        await asyncio.wait_for(origin.release.wait(), 30)
        await response.write(origin.body[100:])
        return response

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        if request.match_info["how"] == "declared":
            response.content_length = HUGE
        chunk = origin.body + bytes(64 * 1024)
        try:
            await response.prepare(request)
            while origin.huge_sent < HUGE:
                await response.write(chunk)
                origin.huge_sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, which is the point
        finally:
            origin.huge_done.set()
        return response

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="hello, not an image")

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="upstream says no")

    async def to_localhost(request: web.Request) -> web.Response:
        raise web.HTTPFound(origin.url("/a.jpg", host="localhost"))

    async def to_ftp(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"ftp://127.0.0.1:{origin.port}/a.jpg")

    async def set_cookie(request: web.Request) -> web.Response:
        response = image()
        response.set_cookie("session", "secret")
        return response

    async def echo_cookie(request: web.Request) -> web.Response:
        origin.cookies.append(request.headers.get("Cookie"))
        return image()

    app = web.Application(middlewares=[count])
    r = app.router
    r.add_get("/a.jpg", a_jpg)
    r.add_get("/b.png", b_png)
    r.add_get("/slowish.jpg", slowish)
    r.add_get("/q.jpg", query)
    r.add_get("/r/{n:\\d+}", chain)
    r.add_get("/slow-headers", slow_headers)
    r.add_get("/slow-body", slow_body)
    r.add_get("/huge/{how}", huge)
    r.add_get("/text", text)
    r.add_get("/status/{code:\\d+}", status)
    r.add_get("/to-localhost", to_localhost)
    r.add_get("/to-ftp", to_ftp)
    r.add_get("/set-cookie", set_cookie)
    r.add_get("/echo-cookie", echo_cookie)
    return app


@pytest.fixture
async def origin(aiohttp_server, jpeg_bytes, png_alpha_bytes):
    state = Origin(body=jpeg_bytes)
    server = await aiohttp_server(origin_app(state, png_alpha_bytes), host="127.0.0.1")
    state.port = server.port
    yield state
    state.release.set()  # let parked handlers finish so the server closes promptly


@pytest.fixture
def remote_client(app_client):
    """A client of an app that may fetch from 127.0.0.1 (where the test origin lives)."""

    async def make(sources: dict | None = None, **sections):
        return await app_client(sources={**PRIVATE_OK, **(sources or {})}, **sections)

    return make


def path(text: str) -> URL:
    """A request path sent byte for byte: no re-quoting of `%3A`, `[`, `//` by the client."""
    return URL(text, encoded=True)


async def problem(response) -> dict:
    assert response.content_type == "application/problem+json"
    return json.loads(await response.read())


# --- fetching and rendering


async def test_resize_remote_jpeg(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg')}"))
    assert response.status == 200, await response.text()
    image = decode(await response.read())
    assert (image.width, image.height) == (100, 75)
    assert response.content_type == "image/jpeg"
    assert "fetch;dur=" in response.headers["Server-Timing"]


@pytest.mark.parametrize(
    "source",
    [
        "http:/127.0.0.1:{port}/a.jpg",  # collapsed by a proxy that merges slashes
        "http%3A%2F%2F127.0.0.1%3A{port}%2Fa.jpg",
        "HTTP://127.0.0.1:{port}/a.jpg",
    ],
    ids=["collapsed", "percent-encoded", "upper-case-scheme"],
)
async def test_source_spellings(remote_client, origin, source):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{source.format(port=origin.port)}"))
    assert response.status == 200, await response.text()
    assert decode(await response.read()).width == 100
    assert origin.hits["/a.jpg"] == 1


async def test_query_string_belongs_to_the_source(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/q.jpg')}?w=10&x=a%20b"))
    assert response.status == 200, await response.text()
    assert origin.queries == ["w=10&x=a%20b"]


async def test_png_source_keeps_its_format(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/50x/{origin.url('/b.png')}"))
    assert response.status == 200
    assert response.content_type == "image/png"
    assert decode(await response.read()).hasalpha()


async def test_different_transforms_fetch_once(remote_client, origin):
    client = await remote_client()
    for ops in ("resize/100x", "resize/50x", "fmt/png", "grayscale", "resize/100x"):
        response = await client.get(path(f"/{ops}/{origin.url('/a.jpg')}"))
        assert response.status == 200, await response.text()
    assert origin.hits["/a.jpg"] == 1


async def test_concurrent_first_requests_fetch_and_render_once(remote_client, origin):
    client = await remote_client()
    url = path(f"/resize/100x/{origin.url('/slowish.jpg')}")
    responses = await asyncio.gather(*(client.get(url) for _ in range(10)))
    assert [r.status for r in responses] == [200] * 10
    assert len({r.headers["ETag"] for r in responses}) == 1
    assert origin.hits["/slowish.jpg"] == 1
    assert client.app[RENDERER].renders == 1


async def test_a_large_remote_original_gets_a_preview_from_its_first_small_render(
    remote_client, origin
):
    photo = pyvips.Image.new_from_file(str(IMAGES / "photo.jpg"))
    origin.body = photo.resize(3000 / photo.width).jpegsave_buffer(Q=85)  # 3000x1998
    client = await remote_client()
    url = origin.url("/a.jpg")
    cached = client.app[REMOTE].cache

    large = await client.get(path(f"/resize/800x800/{url}"))  # a preview would not serve it
    assert large.status == 200 and cached.get(url).original.preview is None
    small = await client.get(path(f"/resize/300x300/{url}"))
    assert small.status == 200 and decode(await small.read()).width == 300
    preview = cached.get(url).original.preview
    assert preview is not None and decode(preview).width == 1024

    # Later small renders read it: a red stand-in makes that visible.
    red = (decode(preview).new_from_image([255, 0, 0])).copy(interpretation="srgb")
    entry = cached.get(url)
    cached.put(url, replace(entry, original=replace(entry.original, preview=red.jpegsave_buffer())))
    later = decode(await (await client.get(path(f"/resize/200x200/{url}"))).read())
    assert later.width == 200 and later[0].avg() > 250 and later[1].avg() < 5
    assert origin.hits["/a.jpg"] == 1


async def test_source_cache_expires_after_remote_ttl(remote_client, origin, monkeypatch):
    client = await remote_client(cache={"remote_ttl": 60})
    url = path(f"/resize/100x/{origin.url('/a.jpg')}")
    assert (await client.get(url)).status == 200
    clock = time.monotonic()
    monkeypatch.setattr(http_source.time, "monotonic", lambda: clock + 61)
    assert (await client.get(url)).status == 200
    assert origin.hits["/a.jpg"] == 2


async def test_cache_headers_for_remote_sources(remote_client, origin):
    client = await remote_client(cache={"remote_ttl": 600})
    url = origin.url("/a.jpg")
    response = await client.get(path(f"/resize/100x/{url}"))
    assert response.headers["Cache-Control"] == "public, max-age=600"
    assert response.headers["Cache-Tag"] == cache.url_tag(url)
    assert response.headers["Surrogate-Key"] == cache.url_tag(url)


async def test_expires_caps_remote_max_age(remote_client, origin):
    client = await remote_client(cache={"remote_ttl": 86400})
    expires = int(time.time()) + 100
    response = await client.get(path(f"/expires/{expires}/{origin.url('/a.jpg')}"))
    assert response.status == 200
    max_age = int(response.headers["Cache-Control"].removeprefix("public, max-age="))
    assert 90 <= max_age <= 100


async def test_if_none_match_after_fetch(remote_client, origin):
    client = await remote_client()
    url = path(f"/resize/100x/{origin.url('/a.jpg')}")
    first = await client.get(url)
    etag = first.headers["ETag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    assert origin.hits["/a.jpg"] == 1  # answered from the source cache


@pytest.mark.parametrize(
    ("field", "first", "second"),
    [
        ("etag", '"v1"', '"v2"'),
        ("last_modified", "Mon, 01 Jan 2024 00:00:00 GMT", "Tue, 02 Jan 2024 00:00:00 GMT"),
    ],
)
async def test_etag_follows_the_upstream_validator(remote_client, origin, field, first, second):
    client = await remote_client(cache={"remote_ttl": 0})  # no source cache: refetch each time
    url = path(f"/resize/100x/{origin.url('/a.jpg')}")
    setattr(origin, field, first)
    one = (await client.get(url)).headers["ETag"]
    same = (await client.get(url)).headers["ETag"]
    setattr(origin, field, second)
    other = (await client.get(url)).headers["ETag"]
    assert one == same != other
    assert origin.hits["/a.jpg"] == 3


async def test_without_validators_the_etag_follows_the_bytes(
    remote_client, origin, png_alpha_bytes, jpeg_bytes
):
    client = await remote_client(cache={"remote_ttl": 0})
    url = path(f"/fmt/png/{origin.url('/a.jpg')}")
    one = (await client.get(url)).headers["ETag"]
    same = (await client.get(url)).headers["ETag"]
    origin.body = jpeg_bytes[:-2] + b"\x00\xff\xd9"  # other bytes, same URL, no validator
    other = (await client.get(url)).headers["ETag"]
    assert one == same != other


async def test_info_of_a_remote_source(remote_client, origin):
    client = await remote_client()
    url = origin.url("/a.jpg")
    response = await client.get(path(f"/info/{url}"))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["id"] is None
    assert body["url"] == url
    assert (body["format"], body["width"], body["height"]) == ("jpeg", 400, 300)
    assert body["size"] == len(origin.body)
    assert len(body["phash"]) == 16


async def test_info_operation_on_a_remote_source(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/info/{origin.url('/a.jpg')}"))
    assert response.status == 200
    assert (await response.json())["width"] == 100


async def test_post_url_imports_the_exact_bytes(remote_client, origin):
    client = await remote_client()
    response = await client.post("/images", json={"url": origin.url("/a.jpg")})
    assert response.status == 201, await response.text()
    record = await response.json()
    assert (record["format"], record["width"], record["height"]) == ("jpeg", 400, 300)
    assert response.headers["Location"] == f"/images/{record['id']}"
    stored = await client.get(f"/images/{record['id']}")
    assert await stored.read() == origin.body
    again = await client.post("/images", json={"url": origin.url("/a.jpg")})
    assert again.status == 200  # same bytes: already stored


async def test_post_from_a_derived_remote_path(remote_client, origin):
    client = await remote_client()
    response = await client.post("/images", json={"from": f"/resize/50x/{origin.url('/a.jpg')}"})
    assert response.status == 201, await response.text()
    assert (await response.json())["width"] == 50


@pytest.mark.parametrize("url", [42, "ftp://127.0.0.1/a.jpg", "/a.jpg", "http://", "not a url"])
async def test_post_url_must_be_an_http_url(remote_client, origin, url):
    client = await remote_client()
    response = await client.post("/images", json={"url": url})
    assert response.status == 400
    assert origin.total == 0


async def test_post_url_follows_the_source_rules(remote_client, origin):
    client = await remote_client()
    response = await client.post("/images", json={"url": origin.url("/text")})
    assert response.status == 415
    listing = await (await client.get("/images")).json()
    assert listing["images"] == []


async def test_cookies_are_never_replayed(remote_client, origin):
    client = await remote_client()
    assert (await client.get(path(f"/fmt/png/{origin.url('/set-cookie')}"))).status == 200
    assert (await client.get(path(f"/fmt/png/{origin.url('/echo-cookie')}"))).status == 200
    assert origin.cookies == [None]


# --- redirects


async def test_five_redirects_are_followed(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/r/5')}"))
    assert response.status == 200, await response.text()
    assert [origin.hits[f"/r/{n}"] for n in range(6)] == [1] * 6


async def test_six_redirects_are_too_many(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/r/6')}"))
    assert response.status == 502
    assert "redirected more than 5" in (await problem(response))["detail"]
    assert origin.hits["/r/0"] == 0  # the seventh request is never sent


async def test_redirect_to_a_host_outside_allowed_hosts(remote_client, origin):
    client = await remote_client(sources={"allowed_hosts": ["127.0.0.1"]})
    response = await client.get(path(f"/resize/100x/{origin.url('/to-localhost')}"))
    assert response.status == 403
    assert "allowed_hosts" in (await problem(response))["detail"]
    assert origin.hits["/a.jpg"] == 0


async def test_redirect_to_another_scheme(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/to-ftp')}"))
    assert response.status == 403
    assert origin.hits["/a.jpg"] == 0


# --- limits and upstream failures


@pytest.mark.parametrize("where", ["/slow-headers", "/slow-body"])
async def test_timeout_is_504(remote_client, origin, where):
    client = await remote_client(limits={"fetch_timeout": 0.5})
    started = time.monotonic()
    response = await client.get(path(f"/resize/100x/{origin.url(where)}"))
    assert response.status == 504
    assert time.monotonic() - started < 3
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("how", ["streamed", "declared"])
async def test_huge_source_is_413_and_the_download_stops(remote_client, origin, how):
    limit = 1024 * 1024
    client = await remote_client(limits={"max_source_bytes": limit})
    response = await client.get(path(f"/resize/100x/{origin.url(f'/huge/{how}')}"))
    assert response.status == 413
    await asyncio.wait_for(origin.huge_done.wait(), 10)
    # The origin noticed the hang-up long before the end: a few socket buffers at most.
    assert origin.huge_sent < HUGE // 4


@pytest.mark.parametrize("code", [404, 403, 500, 503])
async def test_upstream_errors_are_502(remote_client, origin, code):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url(f'/status/{code}')}"))
    assert response.status == 502
    assert str(code) in (await problem(response))["detail"]


async def test_unreachable_origin_is_502(remote_client):
    client = await remote_client(limits={"fetch_timeout": 2})
    response = await client.get(path(f"/resize/100x/http://127.0.0.1:{free_port()}/a.jpg"))
    assert response.status == 502


async def test_not_an_image_is_415(remote_client, origin):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{origin.url('/text')}"))
    assert response.status == 415


async def test_image_bomb_from_a_remote_source_is_422(remote_client, origin):
    client = await remote_client(limits={"max_pixels": 400 * 300 - 1})
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg')}"))
    assert response.status == 422
    assert "over the limit" in (await problem(response))["detail"]


@pytest.mark.parametrize("source", ["http://127.0.0.1:99999/a.jpg", "http://[::1/a.jpg"])
async def test_malformed_source_url_is_400(remote_client, source):
    client = await remote_client()
    response = await client.get(path(f"/resize/100x/{source}"))
    assert response.status == 400


async def test_failures_are_not_cached(remote_client, origin):
    client = await remote_client()
    url = path(f"/resize/100x/{origin.url('/text')}")
    assert (await client.get(url)).status == 415
    assert (await client.get(url)).status == 415
    assert origin.hits["/text"] == 2


# --- SSRF: the guard refuses before any connection is attempted

SSRF_URLS = [
    "http://127.0.0.1:{port}/a.jpg",
    "http://localhost:{port}/a.jpg",
    "http://LocalHost.:{port}/a.jpg",
    "http://[::1]:{port}/a.jpg",
    "http://[::ffff:127.0.0.1]:{port}/a.jpg",
    "http://[::ffff:7f00:1]:{port}/a.jpg",
    "http://2130706433:{port}/a.jpg",
    "http://0x7f000001:{port}/a.jpg",
    "http://0x7f.0.0.1:{port}/a.jpg",
    "http://0177.0.0.1:{port}/a.jpg",
    "http://127.1:{port}/a.jpg",
    "http://127.0.0.1.:{port}/a.jpg",
    "http://0.0.0.0:{port}/a.jpg",
    "http://[::]:{port}/a.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://10.0.0.1/a.jpg",
    "http://192.168.1.1/a.jpg",
    "http://172.16.0.1/a.jpg",
    "http://100.64.0.1/a.jpg",
    "http://[fd00::1]/a.jpg",
    "http://[fe80::1]/a.jpg",
    "http://224.0.0.1/a.jpg",
    "http:/127.0.0.1:{port}/a.jpg",
    "http%3A%2F%2F127.0.0.1%3A{port}%2Fa.jpg",
]


@pytest.fixture
async def guarded_client(app_client):
    # A small timeout: if the guard ever let one through, nothing could wait on it for long.
    return await app_client(limits={"fetch_timeout": 0.5})


@pytest.mark.parametrize("source", SSRF_URLS)
async def test_ssrf_is_refused(guarded_client, origin, source):
    response = await guarded_client.get(path(f"/resize/100x/{source.format(port=origin.port)}"))
    assert response.status == 403, await response.text()
    assert origin.total == 0
    assert guarded_client.app[REMOTE].requests == 0  # refused before any request was sent


async def test_ssrf_through_info_and_import(guarded_client, origin):
    info = await guarded_client.get(path(f"/info/{origin.url('/a.jpg')}"))
    assert info.status == 403
    imported = await guarded_client.post("/images", json={"url": origin.url("/a.jpg")})
    assert imported.status == 403
    assert origin.total == 0


async def test_allowed_hosts_refuses_other_hosts(remote_client, origin):
    client = await remote_client(sources={"allowed_hosts": ["*.example.com", "cdn.test"]})
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg')}"))
    assert response.status == 403
    assert origin.total == 0


async def test_allowed_hosts_glob_lets_matching_hosts_through(remote_client, origin):
    client = await remote_client(sources={"allowed_hosts": ["127.0.0.*"]})
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg')}"))
    assert response.status == 200


class MapToLoopback(AbstractResolver):
    """Resolves every name to 127.0.0.1, standing in for a DNS answer pointing inside."""

    def __init__(self, *args, **kwargs) -> None:
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        return [
            {"hostname": host, "host": "127.0.0.1", "port": port,
             "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def test_names_resolving_to_private_addresses_are_refused(app_client, origin, monkeypatch):
    monkeypatch.setattr(http_source, "DefaultResolver", MapToLoopback)
    client = await app_client(limits={"fetch_timeout": 0.5})
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg', host='images.test')}"))
    assert response.status == 403
    assert "resolves to a non-public address" in (await problem(response))["detail"]
    assert origin.total == 0


async def test_the_resolver_stand_in_does_reach_the_origin(app_client, origin, monkeypatch):
    # The control for the test above: without the guard the same name reaches the origin.
    monkeypatch.setattr(http_source, "DefaultResolver", MapToLoopback)
    client = await app_client(sources=PRIVATE_OK)
    response = await client.get(path(f"/resize/100x/{origin.url('/a.jpg', host='images.test')}"))
    assert response.status == 200
    assert origin.hits["/a.jpg"] == 1


# --- the redirect hop check, without any network


class Redirecting:
    """A stand-in client session whose every answer is a redirect to `location`."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.sent: list[str] = []

    def get(self, url, **kwargs):
        self.sent.append(str(url))
        return _Redirect(self.location)


class _Redirect:
    status, reason = 302, "Found"

    def __init__(self, location: str) -> None:
        self.headers = {"Location": location}

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return False


REDIRECT_TARGETS = [
    "http://127.0.0.1/a.jpg",
    "http://localhost/a.jpg",
    "http://[::1]/a.jpg",
    "http://[::ffff:127.0.0.1]/a.jpg",
    "http://2130706433/a.jpg",
    "http://0x7f.0.0.1/a.jpg",
    "http://127.1/a.jpg",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/a.jpg",
    "http://[fd00::1]/a.jpg",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "http://outside.test/a.jpg",  # not in allowed_hosts
]


@pytest.mark.parametrize("location", REDIRECT_TARGETS)
async def test_public_host_redirecting_inside_is_refused(location):
    config = config_module.with_overrides(
        config_module.Config(), sources={"allowed_hosts": ["images.example.com"]}
    )
    session = Redirecting(location)
    source = HttpSource(config, session)  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        await source.download("http://images.example.com/a.jpg")
    assert session.sent == ["http://images.example.com/a.jpg"]


async def test_redirect_loop_stops_after_five():
    config = config_module.Config()
    session = Redirecting("/again")
    source = HttpSource(config, session)  # type: ignore[arg-type]
    with pytest.raises(BadGateway):
        await source.download("http://images.example.com/start")
    assert len(session.sent) == 6


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://images.example.com/a.jpg", True),
        ("https://images.example.com/a.jpg", True),
        ("http://8.8.8.8/a.jpg", True),
        ("http://127.0.0.1/a.jpg", False),
        ("http://[::ffff:127.0.0.1]/a.jpg", False),
        ("http://169.254.169.254/", False),
        ("ftp://images.example.com/a.jpg", False),
        ("file:///etc/passwd", False),
    ],
)
def test_check_hop(url, allowed):
    sources = config_module.Config().sources
    if allowed:
        check_hop(URL(url), sources)
    else:
        with pytest.raises(Forbidden):
            check_hop(URL(url), sources)
