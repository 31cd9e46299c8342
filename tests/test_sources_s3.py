"""`s3://{bucket}/{key}` sources: objects of buckets ProgImage never wrote to, on SeaweedFS."""

from __future__ import annotations

import asyncio
import uuid

import botocore.session
import pytest
from botocore.config import Config as BotoConfig
from test_sources_local import raw_get

from conftest import S3_ACCESS_KEY, S3_SECRET_KEY, decode, gradient
from proxy.keys import RENDERER


def boto(seaweedfs):
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=seaweedfs.endpoint, region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY,
        config=BotoConfig(s3={"addressing_style": "path"}),
    )  # fmt: skip


@pytest.fixture(scope="module")
def buckets(seaweedfs):
    """A bucket of photos someone already has, and one ProgImage must never read."""
    client = boto(seaweedfs)
    photos, secret = f"photos-{uuid.uuid4().hex[:8]}", f"secret-{uuid.uuid4().hex[:8]}"
    for name in (photos, secret):
        client.create_bucket(Bucket=name)
    tabby = gradient(300, 200).jpegsave_buffer()
    client.put_object(Bucket=photos, Key="cats/tabby.jpg", Body=tabby)
    client.put_object(Bucket=photos, Key="a b/ü.png", Body=gradient(50, 40).pngsave_buffer())
    client.put_object(Bucket=photos, Key="notes.txt", Body=b"not an image")
    client.put_object(Bucket=secret, Key="cats/tabby.jpg", Body=gradient(31, 17).jpegsave_buffer())
    yield client, photos, secret
    client.close()


@pytest.fixture
def s3_client(app_client, s3_env, buckets):
    _, photos, _ = buckets

    async def make(**sections):
        s3 = {"buckets": [photos], "endpoint_url": s3_env.endpoint, "region": "us-east-1"}
        return await app_client(sources={"s3": s3}, **sections)

    return make


async def test_an_object_of_an_existing_bucket_is_served(s3_client, buckets):
    _, photos, _ = buckets
    client = await s3_client()
    response = await client.get(f"/resize/150x/s3://{photos}/cats/tabby.jpg")
    assert response.status == 200
    image = decode(await response.read())
    assert (image.width, image.height) == (150, 100)
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    # Keys with spaces and non-ASCII names, percent-encoded in the URL.
    response = await client.get(f"/fmt/png/s3://{photos}/a%20b/%C3%BC.png")
    assert response.status == 200 and decode(await response.read()).width == 50
    status, _, body = await raw_get(client, f"/resize/150x/s3:/{photos}/cats/tabby.jpg")
    assert status == 200 and decode(body).width == 150  # as a slash-merging proxy sends it


async def test_other_buckets_and_ways_into_them_are_403(s3_client, buckets):
    _, photos, secret = buckets
    client = await s3_client()
    for source in (
        f"s3://{secret}/cats/tabby.jpg",
        f"s3://{photos}/../{secret}/cats/tabby.jpg",
        f"s3://{photos}/%2e%2e/{secret}/cats/tabby.jpg",
        f"s3://{photos}/cats/%00tabby.jpg",
    ):
        status, content_type, _ = await raw_get(client, f"/resize/20x/{source}")
        assert (status, content_type) == (403, "application/problem+json"), source


async def test_s3_sources_are_off_without_buckets(app_client, buckets):
    _, photos, _ = buckets
    client = await app_client()
    response = await client.get(f"/resize/20x/s3://{photos}/cats/tabby.jpg")
    assert response.status == 403
    assert "sources.s3.buckets" in (await response.json())["detail"]


async def test_a_missing_key_is_404_and_gets_the_fallback(s3_client, buckets, tmp_path):
    _, photos, _ = buckets
    client = await s3_client()
    response = await client.get(f"/resize/20x/s3://{photos}/cats/none.jpg")
    assert response.status == 404 and response.content_type == "application/problem+json"
    fallback = tmp_path / "fallback.png"
    fallback.write_bytes(gradient(80, 80).pngsave_buffer())
    client = await s3_client(fallback={"image": str(fallback)})
    response = await client.get(f"/resize/20x/s3://{photos}/cats/none.jpg")
    assert response.headers["ProgImage-Fallback"] == "not-found"
    assert decode(await response.read()).width == 20


async def test_the_etag_follows_the_objects_etag(s3_client, buckets):
    boto_client, photos, _ = buckets
    key = f"changing-{uuid.uuid4().hex[:6]}.png"
    boto_client.put_object(Bucket=photos, Key=key, Body=gradient(40, 40).pngsave_buffer())
    client = await s3_client(cache={"remote_ttl": 0})  # nothing kept: every request GETs
    first = await client.get(f"/fmt/png/s3://{photos}/{key}")
    same = await client.get(f"/fmt/png/s3://{photos}/{key}")
    assert first.headers["ETag"] == same.headers["ETag"]
    boto_client.put_object(Bucket=photos, Key=key, Body=gradient(70, 40).pngsave_buffer())
    second = await client.get(f"/fmt/png/s3://{photos}/{key}")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert decode(await second.read()).width == 70


async def test_concurrent_first_requests_share_one_get_and_the_cache_keeps_it(s3_client, buckets):
    _, photos, _ = buckets
    client = await s3_client()
    responses = await asyncio.gather(
        *(client.get(f"/resize/{w}x/s3://{photos}/cats/tabby.jpg") for w in range(20, 28))
    )
    assert {r.status for r in responses} == {200}
    assert (await client.get(f"/resize/99x/s3://{photos}/cats/tabby.jpg")).status == 200
    assert client.app[RENDERER].sources["s3"].gets == 1


async def test_limits_and_image_checks_apply(s3_client, buckets):
    _, photos, _ = buckets
    client = await s3_client(limits={"max_source_bytes": 1000})
    assert (await client.get(f"/resize/20x/s3://{photos}/cats/tabby.jpg")).status == 413
    client = await s3_client()
    assert (await client.get(f"/resize/20x/s3://{photos}/notes.txt")).status == 415
    response = await client.get(f"/info/s3://{photos}/cats/tabby.jpg")
    assert response.status == 200 and (await response.json())["width"] == 300
