"""`proxy.client` against the real server process: every call, sync and async."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import ServerProcess, decode, free_port, gradient
from proxy import links
from proxy.client import AsyncClient, Client, Image, Job, ProgImageError, image_id

pytestmark = pytest.mark.e2e

KEY = "client-key"
TOKEN = "client-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("client")
    sections = {
        "signing": {"key": KEY},
        "auth": {"tokens": [TOKEN]},
        # Imports in these tests come from the server itself, on loopback.
        "sources": {"allow_private_networks": True},
    }
    process = ServerProcess(tmp, sections).start()
    yield process
    process.stop()


@pytest.fixture
def client(server) -> Iterator[Client]:
    with Client(server.url, token=TOKEN, key=KEY) as images:
        yield images


def distinct(n: int) -> bytes:
    """A small PNG whose bytes no other `n` gives."""
    return gradient(30 + n, 20).pngsave_buffer()


def test_upload_bytes_then_a_path_gives_one_id(client, tmp_path, jpeg_bytes) -> None:
    first = client.upload(jpeg_bytes)
    assert (first.format, first.width, first.height) == ("jpeg", 400, 300)
    assert first.id == image_id(jpeg_bytes) and first.url == f"/images/{first.id}"
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes)
    again = client.upload(path)  # streamed from the file
    assert again.id == first.id and first.new is not again.new and not again.new
    assert client.upload(str(path)).id == first.id
    assert client.original(first.id) == jpeg_bytes
    assert client.exists(first.id)
    facts = client.info(first.id)
    assert (facts["width"], facts["height"], facts["format"]) == (400, 300, "jpeg")


def test_derive_stores_the_result_and_get_renders(client, jpeg_bytes) -> None:
    source = client.upload(jpeg_bytes).id
    derived = client.derive(source, crop=(0, 0, 200, 100), fmt="png")
    assert isinstance(derived, Image)
    assert (derived.format, derived.width, derived.height) == ("png", 200, 100)
    assert decode(client.original(derived.id)).width == 200
    # get() fetches the signed URL url() builds: the server checks the signature.
    small = decode(client.get(source, resize="50x", fmt="webp"))
    assert (small.width, small.get("vips-loader")) == (50, "webpload_buffer")


def test_background_jobs_are_waited_for(client, jpeg_bytes) -> None:
    source = client.upload(jpeg_bytes).id
    job = client.derive(source, resize="40x", fmt="png", background=True)
    assert isinstance(job, Job) and job.url == f"/jobs/{job.id}"
    image = client.wait(job)
    assert (image.format, image.width) == ("png", 40)
    assert client.job(job.id).status == "done"


def test_import_url_and_a_failed_job_raises_its_problem(client, server, jpeg_bytes) -> None:
    source = client.upload(jpeg_bytes).id
    imported = client.import_url(f"{server.url}/images/{source}.png")
    assert isinstance(imported, Image) and imported.format == "png"
    job = client.import_url(f"{server.url}/images/{'0' * 32}", background=True)
    assert isinstance(job, Job)
    with pytest.raises(ProgImageError) as failure:
        client.wait(job)
    # The service's verdict on a source that answered 404: a 502, at once, not retried.
    assert failure.value.status == failure.value.problem["status"] == 502
    assert "404" in failure.value.detail
    with pytest.raises(ProgImageError) as at_once:
        client.import_url(f"{server.url}/images/{'0' * 32}")
    assert at_once.value.status == 502


def test_list_iterates_every_page(client) -> None:
    ids = {client.upload(distinct(n)).id for n in range(5)}
    paged = [image.id for image in client.list(page_size=2)]
    assert paged == sorted(paged) and len(paged) == len(set(paged))
    assert ids <= set(paged)
    assert paged == [image.id for image in client.list(page_size=1000)]
    assert all(image.created for image in client.list(page_size=3))


def test_delete_then_the_id_is_gone(client) -> None:
    image = client.upload(distinct(50))
    client.delete(image.id)
    assert not client.exists(image.id)
    with pytest.raises(ProgImageError) as gone:
        client.delete(image.id)
    assert gone.value.status == 404
    assert gone.value.problem["type"].endswith("/not-found")


def test_failures_carry_the_problem(server, client) -> None:
    with pytest.raises(ProgImageError) as refused:
        client.upload(b"this is not an image")
    assert refused.value.status == 415 and "not an image" in refused.value.detail
    with Client(server.url) as anonymous, pytest.raises(ProgImageError) as unauthorised:
        anonymous.upload(distinct(60))
    assert unauthorised.value.status == 401
    with pytest.raises(ValueError, match="unknown operation"):
        client.url("a" * 32, squash=True)


def test_an_unreachable_server_is_a_status_0_error(tmp_path) -> None:
    with Client(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01) as nowhere:
        with pytest.raises(ProgImageError) as failure:
            nowhere.exists("a" * 32)
    assert failure.value.status == 0 and "cannot reach" in failure.value.detail


def test_urls_are_those_of_proxy_links_signed_and_based(server) -> None:
    with Client(server.url, key=KEY, url_base="https://img.example.com") as images:
        source = "a" * 32
        assert images.url(source, resize="300x200", fmt="webp") == links.url(
            source, key=KEY, base="https://img.example.com", resize="300x200", fmt="webp"
        )
        assert images.srcset(source, [320, 640], fill="320x200") == links.srcset(
            source, [320, 640], key=KEY, base="https://img.example.com", fill="320x200"
        )
    with Client(server.url) as unsigned:
        assert unsigned.url(source, q=50) == f"{server.url}/q/50/{source}"


async def test_the_async_client_does_the_same(server, tmp_path, jpeg_bytes) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(jpeg_bytes)
    async with AsyncClient(server.url, token=TOKEN, key=KEY) as images:
        stored = await images.upload(path)
        assert stored.id == image_id(jpeg_bytes)
        assert await images.exists(stored.id)
        assert (await images.info(stored.id))["width"] == 400
        assert await images.original(stored.id) == jpeg_bytes
        job = await images.derive(stored.id, fill="32x32", fmt="png", background=True)
        assert isinstance(job, Job)
        square = await images.wait(job)
        assert (square.width, square.height) == (32, 32)
        assert decode(await images.get(square.id, fmt="webp")).width == 32
        imported = await images.import_url(f"{server.url}/images/{stored.id}.webp")
        assert isinstance(imported, Image) and imported.format == "webp"
        listed = [image.id async for image in images.list(page_size=2)]
        assert {stored.id, square.id, imported.id} <= set(listed)
        await images.delete(square.id)
        assert not await images.exists(square.id)
        assert (await images.job(job)).status == "done"


def test_which_answers_are_tried_again_and_after_how_long() -> None:
    problem = {"Content-Type": "application/problem+json"}
    with Client("http://127.0.0.1:1", retries=2, backoff=1.0) as images:
        assert images._pause(0, httpx.Response(503, headers={"Retry-After": "2"})) == 2.0
        assert images._pause(0, httpx.Response(503, headers={"Retry-After": "86400"})) == 30.0
        later = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past: go now
        assert images._pause(0, httpx.Response(503, headers={"Retry-After": later})) == 0.0
        assert 0.5 <= images._pause(0, httpx.Response(500, headers=problem)) <= 1.0
        assert 1.0 <= images._pause(1, httpx.Response(504)) <= 2.0
        assert images._pause(0, httpx.Response(502)) is not None  # a gateway's
        assert images._pause(0, httpx.Response(502, headers=problem)) is None  # the service's
        for final in (400, 404, 415, 501, 507):
            assert images._pause(0, httpx.Response(final)) is None
        assert images._pause(2, httpx.Response(503)) is None  # out of retries
        assert images._pause(1, None) is not None  # a lost connection
