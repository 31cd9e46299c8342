"""The README's nginx server for an old imgproxy host, in front of the real service: signed
imgproxy URLs pass through byte for byte and render; a wrong signature is still refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import pyvips
from test_nginx import NginxProcess, ensure_nginx, fetch

from conftest import REPO, ServerProcess, free_port, gradient
from proxy.dialects import imgproxy

pytestmark = pytest.mark.e2e

KEY, SALT = b"test-key".hex(), b"test-salt".hex()


def readme_server_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Migrating from imgproxy", 1)[1]
    return re.search(r"```nginx\n(.*?)```", section, re.S)[1]


@pytest.fixture(scope="module")
def old_host(tmp_path_factory) -> Iterator[tuple[int, ServerProcess]]:
    tmp = tmp_path_factory.mktemp("imgproxy-nginx")
    service = ServerProcess(
        tmp, {"dialects": {"imgproxy": {"enabled": True, "key": KEY, "salt": SALT}}}
    ).start()
    nginx = NginxProcess(ensure_nginx(), tmp, service.port)
    port = free_port()
    block = readme_server_block()
    assert block.count("listen 80;") == 1
    conf = nginx.conf.read_text().rstrip()
    assert conf.endswith("}")  # the http block's end: the README says to add it in there
    block = block.replace("listen 80;", f"listen 127.0.0.1:{port};")
    nginx.conf.write_text(conf[:-1] + block + "}\n")
    try:
        nginx.start()
        yield port, service
    finally:
        nginx.stop()
        service.stop()


def test_signed_imgproxy_urls_work_through_the_old_host(old_host) -> None:
    port, service = old_host
    put = fetch(service.port, "PUT", "/images", body=gradient(300, 200).jpegsave_buffer(Q=90))
    assert put.status == 201, put.body
    photo = put.json()["id"]
    # `%2C` must reach the service as sent: decoded, the signature would no longer match.
    path = f"/cb:v%2C2/rs:fill:120:80/plain/{photo}@png"
    sig = imgproxy.signature(path, KEY, SALT)
    reply = fetch(port, "GET", f"/{sig}{path}", headers={"Host": "imgproxy.example.com"})
    assert reply.status == 200, reply.body
    image = pyvips.Image.new_from_buffer(reply.body, "")
    assert (image.width, image.height) == (120, 80)
    assert reply.headers["Content-Type"] == "image/png"
    wrong = fetch(port, "GET", f"/insecure{path}", headers={"Host": "imgproxy.example.com"})
    assert wrong.status == 403
    assert wrong.headers["Content-Type"] == "application/problem+json"
