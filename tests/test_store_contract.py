"""One contract, two stores: LocalStore on a temp directory and S3Store on a SeaweedFS bucket.

Every test runs against both backends; the S3 ones use a prefix of their own in one shared
bucket. A few S3-only tests at the end cover what only a shared store has: several nodes
(several S3Store instances) on one bucket, the existence cache, multipart uploads.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pyvips
from aiohttp import web

from proxy import metadata
from proxy.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from proxy.sources import Store
from proxy.sources import s3 as s3_module
from proxy.sources.http import HttpSource
from proxy.sources.local import LocalStore
from proxy.sources.s3 import S3Store
from proxy.urls import SourceRef

MAX_BYTES = 10 * 1024 * 1024


async def describe(path: Path) -> tuple[metadata.Facts, bytes | None]:
    return await asyncio.to_thread(metadata.examine, path, allow_svg=False, max_pixels=71_000_000)


async def chunks(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def image_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def s3_store(seaweedfs, tmp: Path, prefix: str, consistency_s: float = 5.0) -> S3Store:
    return S3Store(
        bucket=seaweedfs.bucket,
        prefix=prefix,
        endpoint_url=seaweedfs.endpoint,
        region="us-east-1",
        consistency_s=consistency_s,
        tmp=tmp,
    )


@pytest.fixture(params=["local", "s3"])
async def store(request, tmp_path) -> AsyncIterator[Store]:
    if request.param == "local":
        made: Store = LocalStore(tmp_path / "data")
    else:
        seaweedfs = request.getfixturevalue("s3_env")
        made = s3_store(seaweedfs, tmp_path / "tmp", f"t-{uuid.uuid4().hex[:12]}")
    await made.open()
    yield made
    await made.close()


async def put(store: Store, data: bytes):
    return await store.put(chunks(data), max_bytes=MAX_BYTES, describe=describe)


async def read(store: Store, image: str, start: int, end: int) -> bytes:
    body = await store.open_range(image, start, end)
    try:
        return b"".join([chunk async for chunk in body])
    finally:
        await body.aclose()


async def test_put_new_is_created_with_its_facts(store, jpeg_bytes):
    record, created = await put(store, jpeg_bytes)
    assert created
    assert record.id == image_id(jpeg_bytes)
    assert (record.format, record.mime) == ("jpeg", "image/jpeg")
    assert (record.width, record.height, record.bands) == (400, 300, 3)
    assert (record.has_alpha, record.pages, record.orientation) == (False, 1, 1)
    assert record.size == len(jpeg_bytes)
    assert len(record.phash) == 16
    assert abs(record.created - time.time()) < 60


async def test_put_same_bytes_again_is_not_created(store, jpeg_bytes):
    first, _ = await put(store, jpeg_bytes)
    again, created = await put(store, jpeg_bytes)
    assert not created
    assert again == first


async def test_record_reads_back_every_field(store, png_alpha_bytes):
    stored, _ = await put(store, png_alpha_bytes)
    record = await store.record(stored.id)
    assert record == stored
    assert record.has_alpha and record.bands == 4 and record.format == "png"
    assert record.info()["phash"] == stored.phash


async def test_exists_and_absent_ids(store, jpeg_bytes):
    record, _ = await put(store, jpeg_bytes)
    assert await store.exists(record.id)
    absent = "0" * 32
    assert not await store.exists(absent)
    assert not await store.exists("not-an-id")
    with pytest.raises(NotFound):
        await store.record(absent)
    with pytest.raises(NotFound):
        await store.record("../../etc/passwd")


async def test_list_pages_in_id_order(store, jpeg_bytes, png_alpha_bytes, gif_bytes):
    assert await store.list(limit=10, after=None) == []
    for data in (jpeg_bytes, png_alpha_bytes, gif_bytes):
        await put(store, data)
    ids = sorted(image_id(d) for d in (jpeg_bytes, png_alpha_bytes, gif_bytes))
    first = await store.list(limit=2, after=None)
    assert [r.id for r in first] == ids[:2]
    rest = await store.list(limit=2, after=first[-1].id)
    assert [r.id for r in rest] == ids[2:]
    assert await store.list(limit=5, after=ids[-1]) == []
    assert [r.id for r in await store.list(limit=1000, after="0" * 32)] == ids
    everything = await store.list(limit=10, after=None)
    assert {r.format for r in everything} == {"jpeg", "png", "gif"}
    for record in everything:
        assert record == await store.record(record.id)


async def test_open_range_gives_the_exact_bytes(store, jpeg_bytes):
    record, _ = await put(store, jpeg_bytes)
    last = len(jpeg_bytes) - 1
    assert await read(store, record.id, 0, last) == jpeg_bytes
    assert await read(store, record.id, 10, 19) == jpeg_bytes[10:20]
    assert await read(store, record.id, last, last) == jpeg_bytes[-1:]
    with pytest.raises(NotFound):
        await store.open_range("0" * 32, 0, 10)


async def test_an_opened_range_can_be_closed_unread(store, jpeg_bytes):
    record, _ = await put(store, jpeg_bytes)
    for _ in range(3):  # nothing leaks (filterwarnings=error would catch a ResourceWarning)
        body = await store.open_range(record.id, 0, 99)
        await body.aclose()


async def test_fetch_gives_a_renderable_original(store, jpeg_bytes):
    record, _ = await put(store, jpeg_bytes)
    original = await store.fetch(SourceRef("id", record.id))
    assert original.identity == record.id and original.tag == record.id
    data = original.data if isinstance(original.data, bytes) else original.data.read_bytes()
    assert data == jpeg_bytes
    with pytest.raises(NotFound):
        await store.fetch(SourceRef("id", "0" * 32))


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    photo = pyvips.Image.new_from_file(str(Path(__file__).parent / "images" / "photo.jpg"))
    return photo.resize(2400 / photo.width).jpegsave_buffer(Q=85)


def as_bytes(data: bytes | Path) -> bytes:
    return data if isinstance(data, bytes) else data.read_bytes()


async def preview_kept(store: Store, image: str) -> bool:
    """Whether the store still holds a preview for `image` (asked beneath the interface)."""
    if isinstance(store, LocalStore):
        return store._preview_path(image).exists()
    return await store.get_blob(f"previews/{image}") is not None


async def test_a_large_original_comes_with_its_preview_and_goes_with_it(
    store, large_jpeg, jpeg_bytes
):
    record, _ = await put(store, large_jpeg)
    original = await store.fetch(SourceRef("id", record.id))
    assert original.preview is not None
    preview = pyvips.Image.new_from_buffer(as_bytes(original.preview), "")
    assert (preview.width, preview.height) == (1024, 682)
    small, _ = await put(store, jpeg_bytes)  # 400x300: no preview
    assert (await store.fetch(SourceRef("id", small.id))).preview is None

    await store.delete(record.id)
    assert not await preview_kept(store, record.id)
    await put(store, large_jpeg)  # stored again: so is its preview
    assert await preview_kept(store, record.id)


async def test_delete_removes_everything(store, jpeg_bytes):
    record, _ = await put(store, jpeg_bytes)
    await store.delete(record.id)
    assert not await store.exists(record.id)
    with pytest.raises(NotFound):
        await store.record(record.id)
    with pytest.raises(NotFound):
        await store.fetch(SourceRef("id", record.id))
    with pytest.raises(NotFound):
        await store.open_range(record.id, 0, 10)
    assert await store.list(limit=10, after=None) == []
    _, created = await put(store, jpeg_bytes)  # and it can come back
    assert created


async def test_delete_absent_is_not_found(store):
    with pytest.raises(NotFound):
        await store.delete("0" * 32)
    with pytest.raises(NotFound):
        await store.delete("nonsense")


async def test_refused_uploads_leave_nothing(store, jpeg_bytes):
    with pytest.raises(PayloadTooLarge):
        await store.put(chunks(jpeg_bytes), max_bytes=len(jpeg_bytes) - 1, describe=describe)
    with pytest.raises(BadRequest):
        await put(store, b"")
    with pytest.raises(UnsupportedMediaType):
        await put(store, b"this is not an image at all" * 10)
    assert await store.list(limit=10, after=None) == []
    assert not await store.exists(image_id(jpeg_bytes))


async def test_blobs_round_trip(store):
    name = "sources/" + "ab" * 16
    assert await store.get_blob(name) is None
    await store.put_blob(name, b"\x00bytes\n\xff", {"validator": "etag%3A%22x%22", "fetched": "1"})
    blob = await store.get_blob(name)
    assert blob is not None
    assert blob.data == b"\x00bytes\n\xff"
    assert blob.meta == {"validator": "etag%3A%22x%22", "fetched": "1"}
    with pytest.raises(ValueError):
        await store.get_blob("../originals/x")


# --- S3 only: several nodes on one bucket


@pytest.fixture
async def two_nodes(s3_env, tmp_path) -> AsyncIterator[tuple[S3Store, S3Store]]:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    nodes = (
        s3_store(s3_env, tmp_path / "a", prefix, consistency_s=1.0),
        s3_store(s3_env, tmp_path / "b", prefix, consistency_s=1.0),
    )
    for node in nodes:
        await node.open()
    yield nodes
    for node in nodes:
        await node.close()


async def test_a_delete_on_one_node_reaches_the_other_within_consistency_s(two_nodes, jpeg_bytes):
    a, b = two_nodes
    record, _ = await put(a, jpeg_bytes)
    assert await b.exists(record.id)  # b now remembers "exists" for up to 1 s
    await a.delete(record.id)
    assert not await a.exists(record.id)  # the deleting node knows at once
    started = time.monotonic()
    while await b.exists(record.id):
        assert time.monotonic() - started <= 1.0 + 0.5, "b still sees a deleted id"
        await asyncio.sleep(0.05)
    with pytest.raises(NotFound):
        await b.fetch(SourceRef("id", record.id))


async def test_a_cached_absence_never_swallows_an_upload(two_nodes, jpeg_bytes):
    a, b = two_nodes
    record, _ = await put(a, jpeg_bytes)
    assert await b.exists(record.id)
    await a.delete(record.id)
    # b still believes the id exists; an upload through b must store it all the same.
    _, created = await put(b, jpeg_bytes)
    assert created
    assert await read(a, record.id, 0, record.size - 1) == jpeg_bytes


async def test_identical_concurrent_uploads_on_two_nodes(two_nodes, photo_bytes):
    a, b = two_nodes
    results = await asyncio.gather(*(put(node, photo_bytes) for node in (a, b, a, b)))
    assert len({record.id for record, _ in results}) == 1
    record = results[0][0]
    assert await read(b, record.id, 0, record.size - 1) == photo_bytes
    assert [r.id for r in await a.list(limit=10, after=None)] == [record.id]


async def test_large_uploads_go_up_in_parts(s3_env, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_module, "PART", 5 * 1024 * 1024)  # S3's smallest part size
    noise = pyvips.Image.gaussnoise(1400, 1400, mean=128, sigma=60).cast("uchar")
    data = noise.bandjoin([noise.rot180(), noise.flip("horizontal")])
    data = data.copy(interpretation="srgb").pngsave_buffer(compression=0)
    assert len(data) > s3_module.PART  # two parts, the last one short
    node = s3_store(s3_env, tmp_path / "tmp", f"t-{uuid.uuid4().hex[:12]}")
    await node.open()
    try:
        record, created = await put(node, data)
        assert created and record.size == len(data) and record.width == 1400
        assert await read(node, record.id, 0, record.size - 1) == data
    finally:
        await node.close()


async def test_an_unreachable_store_is_503(tmp_path, s3_env):
    node = S3Store(
        bucket="progimage-test", endpoint_url="http://127.0.0.1:9", region="us-east-1", tmp=tmp_path
    )
    await node.open()
    try:
        with pytest.raises(s3_module.StoreUnavailable) as caught:
            await node.record("0" * 32)
        assert caught.value.status == 503
    finally:
        await node.close()


# --- cache.sources_in_store: HttpSource over either store


async def test_a_remote_source_kept_in_the_store_is_fetched_once(
    store, aiohttp_server, make_config, jpeg_bytes
):
    hits = 0

    async def image(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(body=jpeg_bytes, content_type="image/jpeg", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/a.jpg", image)
    origin = await aiohttp_server(app)
    url = str(origin.make_url("/a.jpg"))
    config = make_config(sources={"allow_private_networks": True}, cache={"remote_ttl": 60})
    nodes = [HttpSource.create(config) for _ in range(2)]  # two nodes: two in-memory caches
    try:
        for node in nodes:
            node.store = store
        first = await nodes[0].fetch(SourceRef("url", url))
        second = await nodes[1].fetch(SourceRef("url", url))
        assert hits == 1
        assert first.identity == second.identity == f'{url}\netag:"v1"'
        assert first.data == second.data == jpeg_bytes
        # Older than remote_ttl: fetched again, not served from the store.
        stale = HttpSource.create(make_config(sources={"allow_private_networks": True},
                                              cache={"remote_ttl": 0}))  # fmt: skip
        stale.store = store
        try:
            await stale.fetch(SourceRef("url", url))
        finally:
            await stale.close()
        assert hits == 2
    finally:
        for node in nodes:
            await node.close()
