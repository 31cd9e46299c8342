"""`local:///{path}` sources against a real directory, with every traversal sent byte for byte."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from conftest import decode, gradient
from proxy import config as config_module
from proxy import signing
from proxy.keys import RENDERER


@pytest.fixture
def tree(tmp_path: Path, jpeg_bytes: bytes) -> Path:
    """root/ with photo.jpg, sub/pic.png, symlinks in and out; a secret beside the root."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "photo.jpg").write_bytes(jpeg_bytes)
    (root / "sub" / "pic.png").write_bytes(gradient(60, 40).pngsave_buffer())
    (root / "notes.txt").write_text("not an image")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(gradient(33, 22).jpegsave_buffer())
    (root / "out").symlink_to(outside / "secret.jpg")
    (root / "outdir").symlink_to(outside)
    (root / "inside").symlink_to(root / "sub" / "pic.png")
    (root / "sub" / "up").symlink_to("../../outside")
    return root


@pytest.fixture
def local_client(app_client, tree):
    async def make(**sections):
        sources = {"local": {"root": str(tree)}, **sections.pop("sources", {})}
        return await app_client(sources=sources, **sections)

    return make


async def raw_get(client, target: str) -> tuple[int, str, bytes]:
    """GET `target` exactly as written: no client normalises `..` or re-encodes anything."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    head = f"GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    writer.write(head.encode("latin-1"))
    await writer.drain()
    response = await reader.read()
    writer.close()
    header, _, body = response.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return status, fields.get("Content-Type", ""), body


TRAVERSALS = [
    "local:///../outside/secret.jpg",
    "local:///sub/../../outside/secret.jpg",
    "local:///%2e%2e/outside/secret.jpg",
    "local:///%2E%2E%2Foutside%2Fsecret.jpg",
    "local:///%252e%252e/outside/secret.jpg",
    "local:///%252e%252e%252foutside%252fsecret.jpg",
    "local:///..%5coutside%5csecret.jpg",
    "local:///sub%5c..%5c..%5coutside%5csecret.jpg",
    "local:///%c0%ae%c0%ae/outside/secret.jpg",
    "local:///%e0%80%ae%e0%80%ae/outside/secret.jpg",
    "local:///%c0%af..%c0%afoutside/secret.jpg",
    "local:////etc/passwd",
    "local:///%2Fetc%2Fpasswd",
    "local:///C:/Windows/win.ini",
    "local:///photo.jpg%00.png",
    "local:///%00",
    "local:///./photo.jpg",
    "local:///out",
    "local:///outdir/secret.jpg",
    "local:///sub/up/secret.jpg",
]


@pytest.mark.parametrize("source", TRAVERSALS)
async def test_every_way_out_of_the_root_is_403(local_client, source):
    client = await local_client()
    status, content_type, body = await raw_get(client, f"/resize/20x/{source}")
    assert status == 403, body
    assert content_type == "application/problem+json"
    assert json.loads(body)["status"] == 403


async def test_a_file_under_the_root_is_served(local_client, jpeg_bytes):
    client = await local_client()
    response = await client.get("/resize/100x/local:///photo.jpg")
    assert response.status == 200
    image = decode(await response.read())
    assert (image.width, image.height) == (100, 75)
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    # The spelling a slash-merging proxy makes of it names the same file and the same result.
    status, _, collapsed = await raw_get(client, "/resize/100x/local:/photo.jpg")
    assert status == 200 and decode(collapsed).width == 100
    again = await client.get("/resize/100x/local:///photo.jpg")
    assert 'cache;desc="hit"' in again.headers["Server-Timing"]


async def test_symlinks_that_stay_inside_and_nested_paths_are_served(local_client):
    client = await local_client()
    for source in ("local:///inside", "local:///sub/pic.png", "local:///sub%2Fpic.png"):
        response = await client.get(f"/fmt/png/{source}")
        assert response.status == 200, source
        assert decode(await response.read()).width == 60


@pytest.mark.parametrize("source", ["local:///nothing.jpg", "local:///sub", "local:///photo.jpg/x"])
async def test_missing_files_and_directories_are_404(local_client, source):
    client = await local_client()
    response = await client.get(f"/resize/20x/{source}")
    assert response.status == 404
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("source", ["local://photo.jpg", "local:///sub/", "local:///a//b.jpg"])
async def test_malformed_local_urls_are_400(local_client, source):
    client = await local_client()
    status, content_type, _ = await raw_get(client, f"/resize/20x/{source}")
    assert status == 400 and content_type == "application/problem+json"


async def test_a_changed_file_gets_a_new_etag_and_new_pixels(local_client, tree):
    client = await local_client()
    first = await client.get("/fmt/png/local:///photo.jpg")
    assert decode(await first.read()).width == 400
    (tree / "photo.jpg").write_bytes(gradient(200, 100).jpegsave_buffer())
    stat = (tree / "photo.jpg").stat()
    os.utime(tree / "photo.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    second = await client.get("/fmt/png/local:///photo.jpg")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert decode(await second.read()).width == 200


async def test_an_unchanged_file_is_read_once_for_many_transforms(local_client):
    client = await local_client()
    for width in (10, 20, 30):
        assert (await client.get(f"/resize/{width}x/local:///photo.jpg")).status == 200
    assert client.app[RENDERER].sources["local"].reads == 1


async def test_local_sources_are_off_without_a_root(app_client):
    client = await app_client()
    response = await client.get("/resize/20x/local:///photo.jpg")
    assert response.status == 403
    assert "sources.local.root" in (await response.json())["detail"]


async def test_limits_and_image_checks_apply(local_client):
    client = await local_client(limits={"max_source_bytes": 1000})
    assert (await client.get("/resize/20x/local:///photo.jpg")).status == 413
    client = await local_client()
    assert (await client.get("/resize/20x/local:///notes.txt")).status == 415


async def test_signing_applies_to_local_sources(local_client):
    client = await local_client(signing={"key": "secret"})
    assert (await client.get("/resize/20x/local:///photo.jpg")).status == 403
    signed = signing.signed_path("/resize/20x/local:///photo.jpg", "secret")
    response = await client.get(signed)
    assert response.status == 200 and decode(await response.read()).width == 20


async def test_the_fallback_image_stands_in_for_a_missing_file(local_client, tree):
    client = await local_client(fallback={"image": str(tree / "sub" / "pic.png")})
    response = await client.get("/resize/30x/local:///nothing.jpg")
    assert response.status == 404
    assert response.headers["ProgImage-Fallback"] == "not-found"
    assert decode(await response.read()).width == 30
    traversal = await client.get("/resize/30x/local:///outdir/secret.jpg")
    assert traversal.status == 403  # a refused source never gets the fallback
    assert traversal.content_type == "application/problem+json"


async def test_info_of_a_local_source(local_client):
    client = await local_client()
    response = await client.get("/info/local:///sub/pic.png")
    assert response.status == 200
    body = await response.json()
    assert (body["width"], body["height"], body["url"]) == (60, 40, "local:///sub/pic.png")


def test_config_requires_an_existing_directory(tmp_path):
    with pytest.raises(config_module.ConfigError, match="sources.local.root"):
        config_module.from_mapping({"sources": {"local": {"root": str(tmp_path / "none")}}})
    with pytest.raises(config_module.ConfigError, match="sources.s3.buckets"):
        config_module.from_mapping({"sources": {"s3": {"buckets": ["Bad_Name"]}}})
    env = {"PROGIMAGE_SOURCES__LOCAL__ROOT": str(tmp_path)}
    assert config_module.from_mapping({}, env).sources.local.root == str(tmp_path)
