"""The repo's nginx.conf in front of the real service: caching, negotiation, pass-through.

nginx is started from a copy of ./nginx.conf in which only the listen and upstream addresses are
replaced by free ports, so what is tested is the file that `make stack` and deployments use.
When nginx is missing it is installed (apt-get, as root); when that cannot be done the tests fail
with the reason: they never skip.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
import pyvips

from conftest import REPO, ServerProcess, free_port, gradient, wait_for_port

pytestmark = pytest.mark.e2e

NGINX_CONF = REPO / "nginx.conf"
LISTEN = "127.0.0.1:8000"  # exactly once in nginx.conf: the listen address
UPSTREAM = "127.0.0.1:8080"  # exactly once in nginx.conf: the service

CHROME_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX_ACCEPT = "image/avif,image/webp,*/*"
CANONICAL_AVIF = "image/avif,image/webp,*/*"  # what nginx sends the service for the AVIF class
WEBP_ONLY = "image/webp,*/*"
JPEG_ONLY = "image/jpeg"
SAFARI_ACCEPT = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8"
# nginx.conf's JPEG XL switch as shipped, and as README "JPEG XL" says to turn it on.
OFFER_JXL_OFF = 'map "" $progimage_offer_jxl {\n        default 0;'
OFFER_JXL_ON = OFFER_JXL_OFF.replace("default 0;", "default 1;")


# --- nginx itself


def ensure_nginx() -> str:
    """The nginx binary; installed with apt-get when missing. Fails (never skips) otherwise."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.geteuid() != 0:
        pytest.fail("nginx is not installed and these tests are not root: apt-get install -y nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = []
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "nginx"]):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=600, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.fail(f"cannot install nginx: {' '.join(command)}: {exc}")
        output.append(done.stdout[-2000:] + done.stderr[-2000:])
        if done.returncode != 0:
            pytest.fail(f"cannot install nginx: {' '.join(command)} failed:\n{output[-1]}")
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        pytest.fail("apt-get install -y nginx succeeded but there is no nginx binary")
    return found


def nginx_globals() -> str:
    # As root the workers would run as nobody/www-data, who cannot enter pytest's 0700 temp
    # directories to write the cache; keep them as the user running the tests.
    return "daemon off;" + (" user root;" if os.geteuid() == 0 else "")


class NginxProcess:
    """nginx from the repo's nginx.conf, listening on a free port in front of `upstream_port`."""

    def __init__(
        self, binary: str, tmp: Path, upstream_port: int, *, offer_jxl: bool = False
    ) -> None:
        text = NGINX_CONF.read_text()
        assert text.count(LISTEN) == 1 and text.count(UPSTREAM) == 1, (
            f"nginx.conf must name {LISTEN} and {UPSTREAM} exactly once each"
        )
        assert text.count(OFFER_JXL_OFF) == 1, "nginx.conf must ship $progimage_offer_jxl as 0"
        if offer_jxl:
            text = text.replace(OFFER_JXL_OFF, OFFER_JXL_ON)
        self.binary = binary
        self.port = free_port()
        self.prefix = tmp / f"nginx-{self.port}"
        self.prefix.mkdir()
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            text.replace(LISTEN, f"127.0.0.1:{self.port}").replace(
                UPSTREAM, f"127.0.0.1:{upstream_port}"
            )
        )
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> NginxProcess:
        self._log = open(self.prefix / "stderr.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-g", nginx_globals()],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_port(self.port, self.process)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            pytest.fail(f"nginx did not start: {exc}\n{self.log()}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.prefix / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def cache(self) -> str | None:
        return self.headers.get("X-Cache-Status")

    def json(self) -> dict:
        return json.loads(self.body)


def fetch(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> Reply:
    """One request on its own connection; the path is sent exactly as given (`//` included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


@dataclass
class Stack:
    service: ServerProcess
    nginx: NginxProcess

    def get(self, path: str, **kwargs) -> Reply:
        return fetch(self.nginx.port, kwargs.pop("method", "GET"), path, **kwargs)

    def direct(self, path: str, **kwargs) -> Reply:
        return fetch(self.service.port, kwargs.pop("method", "GET"), path, **kwargs)

    def upload(self, data: bytes) -> str:
        reply = self.get("/images", method="PUT", body=data)
        assert reply.status == 201, reply.body
        return reply.json()["id"]


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return ensure_nginx()


@pytest.fixture(scope="module")
def stack(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    service = ServerProcess(tmp, {}).start()
    nginx = NginxProcess(nginx_binary, tmp, service.port)
    try:
        nginx.start()
        yield Stack(service, nginx)
    finally:
        nginx.stop()
        service.stop()


@pytest.fixture(scope="module")
def image_id(stack: Stack) -> str:
    return stack.upload(gradient(160, 120).jpegsave_buffer(Q=85))


def is_jpeg(body: bytes) -> bool:
    return body[:3] == b"\xff\xd8\xff"


def is_webp(body: bytes) -> bool:
    return body[:4] == b"RIFF" and body[8:12] == b"WEBP"


def is_avif(body: bytes) -> bool:
    return body[4:8] == b"ftyp" and body[8:12] in (b"avif", b"avis")


def is_jxl(body: bytes) -> bool:
    return body[:2] == b"\xff\x0a"


# --- the file as written


def test_nginx_conf_is_valid_as_written(nginx_binary: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [nginx_binary, "-t", "-p", str(tmp_path), "-c", str(NGINX_CONF)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = NGINX_CONF.read_text()
    assert text.count(LISTEN) == 1 and text.count(UPSTREAM) == 1


# --- through nginx


def test_upload_through_nginx_reaches_the_service(stack: Stack) -> None:
    data = gradient(123, 77).jpegsave_buffer(Q=90)
    put = stack.get("/images", method="PUT", body=data)
    assert put.status == 201, put.body
    image = put.json()
    assert put.headers["Location"] == f"/images/{image['id']}"
    # Stored by the service itself, exactly.
    assert stack.direct(f"/images/{image['id']}").body == data

    first = stack.get(f"/images/{image['id']}")
    second = stack.get(f"/images/{image['id']}")
    assert (first.status, second.status) == (200, 200)
    assert first.body == second.body == data
    assert (first.cache, second.cache) == ("MISS", "HIT")

    # A write is never answered from the cache: the service says "already stored".
    again = stack.get("/images", method="PUT", body=data)
    assert again.status == 200 and again.json()["id"] == image["id"]
    assert again.cache != "HIT"


def test_second_get_of_a_derived_url_is_a_cache_hit(stack: Stack, image_id: str) -> None:
    path = f"/resize/37x/{image_id}"
    first = stack.get(path)
    second = stack.get(path)
    assert (first.status, second.status) == (200, 200)
    assert (first.cache, second.cache) == ("MISS", "HIT")
    assert second.body == first.body and is_jpeg(first.body)
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Cache-Control"] == first.headers["Cache-Control"]
    head = stack.get(path, method="HEAD")
    assert head.status == 200 and head.cache == "HIT" and head.body == b""
    assert head.headers["Content-Length"] == str(len(first.body))


def test_fmt_auto_caches_each_accept_class_separately(stack: Stack, image_id: str) -> None:
    path = f"/resize/41x/fmt/auto/{image_id}"

    avif = stack.get(path, headers={"Accept": CHROME_ACCEPT})
    assert avif.status == 200 and avif.cache == "MISS"
    assert is_avif(avif.body), avif.body[:16]
    assert avif.headers["Vary"] == "Accept"

    # An AVIF is cached for this URL now: a WebP-only client must still never get it.
    webp = stack.get(path, headers={"Accept": WEBP_ONLY})
    assert webp.status == 200 and webp.cache == "MISS"
    assert is_webp(webp.body), webp.body[:16]

    jpeg = stack.get(path, headers={"Accept": JPEG_ONLY})
    assert jpeg.status == 200 and jpeg.cache == "MISS"
    assert is_jpeg(jpeg.body), jpeg.body[:16]

    # Other spellings of the same class share its entry, and each class keeps its own bytes.
    for accept, expected in (
        (FIREFOX_ACCEPT, avif.body),
        (SAFARI_ACCEPT, avif.body),  # image/jxl plays no part while nginx does not offer it
        ("image/jxl", jpeg.body),
        ("image/avif;q=0.9, image/webp;q=0.8", avif.body),
        (WEBP_ONLY, webp.body),
        ("image/avif;q=0, image/webp", webp.body),  # q=0 refuses AVIF
        ("image/avif; q=0.0, image/webp;q=0, image/jpeg", jpeg.body),
        ("image/webp", webp.body),
        (JPEG_ONLY, jpeg.body),
        ("*/*", jpeg.body),
        (None, jpeg.body),
    ):
        reply = stack.get(path, headers={"Accept": accept} if accept else {})
        assert reply.status == 200 and reply.cache == "HIT", accept
        assert reply.body == expected, accept
        assert reply.headers["Vary"] == "Accept"


def test_dpr_auto_caches_each_rounded_ratio_separately(stack: Stack, image_id: str) -> None:
    path = f"/resize/40x/dpr/auto/{image_id}"

    def width(reply: Reply) -> int:
        return pyvips.Image.new_from_buffer(reply.body, "").width

    double = stack.get(path, headers={"Sec-CH-DPR": "2"})
    assert double.status == 200 and double.cache == "MISS" and width(double) == 80
    assert double.headers["Vary"] == "Sec-CH-DPR, DPR"
    assert double.headers["Accept-CH"] == "Sec-CH-DPR, DPR"
    single = stack.get(path)
    assert single.cache == "MISS" and width(single) == 40
    # Spellings that round to a cached ratio share its entry and its bytes.
    for headers, expected in (
        ({"Sec-CH-DPR": "2.04"}, double.body),
        ({"Sec-CH-DPR": "1.95"}, double.body),
        ({"DPR": "2"}, double.body),
        ({"Sec-CH-DPR": "2", "DPR": "3"}, double.body),  # the standard header wins
        ({"Sec-CH-DPR": "0.5"}, single.body),
        ({"Sec-CH-DPR": "abc"}, single.body),
        ({}, single.body),
    ):
        reply = stack.get(path, headers=headers)
        assert reply.status == 200 and reply.cache == "HIT", headers
        assert reply.body == expected, headers
    # 1.25 rounds half up to 1.3, behind nginx as in the service itself.
    rounded = stack.get(path, headers={"Sec-CH-DPR": "1.25"})
    assert rounded.cache == "MISS" and width(rounded) == 52
    assert stack.direct(path, headers={"Sec-CH-DPR": "1.25"}).body == rounded.body
    # URLs without dpr/auto do not split their entry by the client's ratio.
    plain = f"/resize/44x/{image_id}"
    assert stack.get(plain, headers={"Sec-CH-DPR": "2"}).cache == "MISS"
    assert stack.get(plain, headers={"Sec-CH-DPR": "3"}).cache == "HIT"


def test_if_none_match_gets_304_through_nginx(stack: Stack, image_id: str) -> None:
    path = f"/resize/43x/{image_id}"
    etag = stack.direct(path).headers["ETag"]  # learnt without touching nginx's cache
    assert etag

    # Not cached yet: nginx fetches the whole image to store it, and answers 304 from it.
    first = stack.get(path, headers={"If-None-Match": etag})
    assert first.status == 304 and first.body == b"" and first.cache == "MISS"
    # Cached: nginx answers 304 from the stored ETag.
    second = stack.get(path, headers={"If-None-Match": etag})
    assert second.status == 304 and second.body == b"" and second.cache == "HIT"
    assert second.headers["ETag"] == etag

    other = stack.get(path, headers={"If-None-Match": '"something-else"'})
    assert other.status == 200 and other.cache == "HIT" and is_jpeg(other.body)

    original = stack.get(f"/images/{image_id}", headers={"If-None-Match": f'"{image_id}"'})
    assert original.status == 304


def test_delete_reaches_the_service(stack: Stack) -> None:
    image_id = stack.upload(gradient(90, 60).pngsave_buffer())
    cached = f"/resize/45x/{image_id}"
    assert stack.get(cached).status == 200

    deleted = stack.get(f"/images/{image_id}", method="DELETE")
    assert deleted.status == 204
    assert stack.direct(f"/images/{image_id}").status == 404
    assert stack.direct(cached).status == 404
    again = stack.get(f"/images/{image_id}", method="DELETE")
    assert again.status == 404  # reached the service again: DELETE is never cached

    # A URL that was never cached answers the service's 404 at once.
    assert stack.get(f"/resize/46x/{image_id}").status == 404
    # nginx's cache is not purged by a DELETE (§4: downstream caches are not purged): a derived
    # URL it already holds keeps being served from it until it expires or is evicted.
    still = stack.get(cached)
    assert still.status == 200 and still.cache == "HIT"


@pytest.mark.parametrize(
    "path",
    ["/metrics", "//metrics", "/metrics/", "/%6detrics", "/./metrics", "/images/../metrics",
     "/metrics?format=text"],
)  # fmt: skip
def test_metrics_is_refused_through_nginx(stack: Stack, path: str) -> None:
    reply = stack.get(path)
    assert reply.status in (403, 404), (reply.status, reply.body[:200])
    assert reply.headers.get_content_type() == "application/problem+json"
    assert b"# TYPE" not in reply.body


@contextlib.contextmanager
def recording_upstream(
    nginx_binary: str, tmp_path: Path, **options
) -> Iterator[tuple[NginxProcess, list[tuple[str, str | None]]]]:
    """nginx in front of a stand-in upstream that records (path, Accept) of each request."""
    seen: list[tuple[str, str | None]] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            seen.append((self.path, self.headers.get("Accept")))
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base
            pass

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    nginx = NginxProcess(nginx_binary, tmp_path, upstream.server_address[1], **options)
    try:
        nginx.start()
        yield nginx, seen
    finally:
        nginx.stop()
        upstream.shutdown()
        upstream.server_close()
        thread.join(timeout=10)


def test_upstream_gets_the_path_as_sent_and_a_canonical_accept(
    nginx_binary: str, tmp_path: Path
) -> None:
    """What reaches the service: the path exactly as the client sent it (merge_slashes off, an
    embedded `https://` keeps its `//`), and one Accept per cache class for fmt/auto."""
    with recording_upstream(nginx_binary, tmp_path) as (nginx, seen):
        cases = [
            ("/resize/10x/https://example.com//images/a.jpg?w=1&h=2", None, None),
            ("/fmt/auto/https://example.com/a.jpg", CHROME_ACCEPT, CANONICAL_AVIF),
            ("/fmt/auto/https://example.com/a.jpg", "image/webp;q=0.9, */*", "image/webp,*/*"),
            ("/fmt/auto/https://example.com/a.jpg", "image/avif;q=0.5", CANONICAL_AVIF),
            ("/fmt/auto/https://example.com/a.jpg", "image/avif;q=0, image/webp", "image/webp,*/*"),
            ("/fmt/auto/https://example.com/a.jpg", "image/avif;q=0.000,image/webp; q=0", "*/*"),
            ("/fmt/auto/https://example.com/a.jpg", "text/html", "text/html"),
            # Names the formats in a way neither nginx nor the service reads as accepting them:
            # the service is sent a plain */*, so the `other` entry cannot end up AVIF.
            ("/fmt/auto/https://example.com/a.jpg", "image/avifx, image/webp2", "*/*"),
            # As shipped ($progimage_offer_jxl 0) the service is never told of image/jxl.
            ("/fmt/auto/https://example.com/a.jpg", SAFARI_ACCEPT, CANONICAL_AVIF),
            ("/fmt/auto/https://example.com/a.jpg", "image/jxl", "*/*"),
            ("/fmt/auto/https://example.com/a.jpg", "image/png, image/jxl;q=0.9", "*/*"),
        ]
        for path, accept, _ in cases:
            reply = fetch(nginx.port, "GET", path, headers={"Accept": accept} if accept else {})
            assert reply.status == 200, nginx.log()
        assert seen == [(path, upstream_accept) for path, _, upstream_accept in cases]


def test_upstream_gets_a_canonical_accept_per_jxl_class_when_offered(
    nginx_binary: str, tmp_path: Path
) -> None:
    """With $progimage_offer_jxl at 1 a client that accepts JPEG XL is a class of its own,
    split by what else it accepts, so any order of output.auto_formats is answered right."""
    path = "/fmt/auto/https://example.com/a.jpg"
    cases = [
        (SAFARI_ACCEPT, "image/jxl,image/avif,image/webp,*/*"),
        ("image/jxl, image/webp;q=0.9", "image/jxl,image/webp,*/*"),
        ("image/jxl", "image/jxl,*/*"),
        ("image/png, image/jxl;q=0.5", "image/jxl,*/*"),
        (CHROME_ACCEPT, CANONICAL_AVIF),
        (WEBP_ONLY, "image/webp,*/*"),
        ("image/jxl;q=0, image/webp", "image/webp,*/*"),  # q=0 refuses JPEG XL
        ("image/jxlx", "*/*"),
        ("text/html", "text/html"),
    ]
    with recording_upstream(nginx_binary, tmp_path, offer_jxl=True) as (nginx, seen):
        for accept, _ in cases:
            reply = fetch(nginx.port, "GET", path, headers={"Accept": accept})
            assert reply.status == 200, nginx.log()
    assert seen == [(path, upstream_accept) for _, upstream_accept in cases]


def test_fmt_auto_with_jxl_offered_caches_jxl_and_avif_apart(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A service whose auto_formats lead with jxl, behind nginx with the switch on: JPEG XL to
    the clients that take it, AVIF to the others, never one cached for the other; behind the
    shipped nginx.conf the same service is never asked for JPEG XL."""
    tmp = tmp_path_factory.mktemp("jxl-stack")
    service = ServerProcess(tmp, {"output": {"auto_formats": ["jxl", "avif", "webp"]}}).start()
    offered = NginxProcess(nginx_binary, tmp, service.port, offer_jxl=True)
    shipped = NginxProcess(nginx_binary, tmp, service.port)
    try:
        offered.start()
        shipped.start()
        stack = Stack(service, offered)
        path = f"/resize/43x/fmt/auto/{stack.upload(gradient(160, 120).jpegsave_buffer(Q=85))}"

        jxl = stack.get(path, headers={"Accept": SAFARI_ACCEPT})
        assert jxl.status == 200 and jxl.cache == "MISS" and is_jxl(jxl.body), jxl.body[:16]
        assert jxl.headers["Content-Type"] == "image/jxl"
        assert jxl.headers["Vary"] == "Accept"
        avif = stack.get(path, headers={"Accept": CHROME_ACCEPT})
        assert avif.cache == "MISS" and is_avif(avif.body), avif.body[:16]
        only = stack.get(path, headers={"Accept": "image/jxl"})
        assert only.cache == "MISS" and only.body == jxl.body
        for accept, expected in (
            ("image/avif,image/jxl,image/webp,*/*", jxl.body),
            (FIREFOX_ACCEPT, avif.body),
            ("image/jxl;q=0.5", jxl.body),
            ("image/jxl;q=0, image/avif, image/webp", avif.body),
        ):
            reply = stack.get(path, headers={"Accept": accept})
            assert reply.status == 200 and reply.cache == "HIT", accept
            assert reply.body == expected, accept

        behind_shipped = Stack(service, shipped)
        safari = behind_shipped.get(path, headers={"Accept": SAFARI_ACCEPT})
        assert safari.status == 200 and is_avif(safari.body), safari.body[:16]
        assert not is_jxl(behind_shipped.get(path, headers={"Accept": "image/jxl"}).body)
    finally:
        offered.stop()
        shipped.stop()
        service.stop()


def test_embedded_url_reaches_the_service_unchanged(stack: Stack) -> None:
    # Whatever the service makes of a remote source here (refused: loopback; or not enabled),
    # nginx must hand it the same request, so the answer through nginx is the direct answer.
    path = "/resize/10x/https://127.0.0.1:9/a//b.jpg?v=1"
    direct = stack.direct(path)
    proxied = stack.get(path)
    assert proxied.status == direct.status
    assert proxied.body == direct.body
    assert proxied.headers.get_content_type() == direct.headers.get_content_type()


def test_error_responses_are_not_cached(stack: Stack, image_id: str) -> None:
    for path in (f"/resize/10x/{'0' * 32}", f"/resize/huge/{image_id}", f"/images/{'1' * 32}"):
        first = stack.get(path)
        second = stack.get(path)
        assert first.status >= 400 and second.status == first.status, path
        assert first.cache == "MISS" and second.cache == "MISS", path
        assert second.headers.get_content_type() == "application/problem+json"


def test_on_demand_post_is_passed_through_and_not_cached(stack: Stack) -> None:
    data = gradient(64, 48).jpegsave_buffer()
    replies = [stack.get("/resize/20x/fmt/png", method="POST", body=data) for _ in range(2)]
    for reply in replies:
        assert reply.status == 200, reply.body[:200]
        assert reply.body[:8] == b"\x89PNG\r\n\x1a\n"
        assert reply.cache != "HIT"


def test_upload_over_the_limit_is_refused_by_nginx(stack: Stack) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.nginx.port, timeout=30)
    try:
        conn.putrequest("PUT", "/images")
        conn.putheader("Content-Length", str(52428800 + 1))
        conn.endheaders()  # no body: nginx answers from the declared length
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 413
    assert json.loads(body)["status"] == 413
