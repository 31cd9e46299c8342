"""The README's nginx `location` for old imaginary URLs, in the repo's nginx.conf, in front of
a real `progimage serve` with the dialect under its default prefix."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_nginx import NginxProcess, Stack, ensure_nginx, fetch

from conftest import REPO, ServerProcess, decode, gradient
from proxy.dialects.imaginary import signature

pytestmark = pytest.mark.e2e

KEY = "a-key-for-the-nginx-test"
ROUTE_BLOCK = "        location / {\n"


def readme_location() -> str:
    section = (REPO / "README.md").read_text().split("## Migrating from imaginary", 1)[1]
    return re.search(r"```nginx\n(.*?)```", section, re.S)[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("imaginary-nginx")
    service = ServerProcess(tmp, {"dialects": {"imaginary": {"enabled": True, "key": KEY}}})
    service.start()
    nginx = NginxProcess(ensure_nginx(), tmp, service.port)
    text = nginx.conf.read_text()
    assert text.count(ROUTE_BLOCK) == 1
    nginx.conf.write_text(text.replace(ROUTE_BLOCK, readme_location() + ROUTE_BLOCK))
    try:
        nginx.start()
        yield Stack(service, nginx)
    finally:
        nginx.stop()
        service.stop()


def test_old_urls_reach_the_dialect_through_nginx(stack: Stack) -> None:
    image_id = stack.upload(gradient(400, 200).jpegsave_buffer(Q=85))
    query = f"file={image_id}&height=100&width=100"
    sign = signature("/crop", query, KEY)
    first = stack.get(f"/crop?{query}&sign={sign}")
    assert first.status == 200, first.body[:300]
    image = decode(first.body)
    assert (image.width, image.height) == (100, 100)
    assert stack.get(f"/crop?{query}&sign={sign}").cache == "HIT"  # through `location /`
    refused = stack.get(f"/crop?{query}&sign={sign[::-1]}")
    assert refused.status == 403 and refused.json()["status"] == 403
    # The native URLs beside them are untouched.
    native = stack.get(f"/resize/50x/{image_id}")
    assert native.status == 200 and decode(native.body).width == 50
    # The service itself serves the dialect under its prefix.
    direct = fetch(stack.service.port, "GET", f"/imaginary/crop?{query}", headers={"API-Key": KEY})
    assert direct.status == 200
