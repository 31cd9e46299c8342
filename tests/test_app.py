"""The HTTP API in process: storage, derived images, headers, and every error status."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time

import pytest
import pyvips
from aiohttp import FormData

from conftest import decode, gradient
from proxy.keys import POOL, RENDERER, STORE

PROBLEM = "application/problem+json"


async def upload(client, data: bytes, expect: int = 201) -> dict:
    response = await client.put("/images", data=data)
    assert response.status == expect, await response.text()
    return await response.json()


async def assert_problem(response, status: int, *words: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json()
    assert body["status"] == status
    assert set(body) >= {"type", "title", "status", "detail"}
    for word in words:
        assert word in body["detail"], body
    return body


# --- storage API


async def test_put_returns_the_stored_image(client, jpeg_bytes: bytes) -> None:
    response = await client.put("/images", data=jpeg_bytes)
    assert response.status == 201
    body = await response.json()
    assert len(body["id"]) == 32
    assert response.headers["Location"] == f"/images/{body['id']}"
    assert body == {
        "id": body["id"], "url": f"/images/{body['id']}", "format": "jpeg",
        "width": 400, "height": 300, "size": len(jpeg_bytes),
    }  # fmt: skip
    assert body["id"] == hashlib.sha256(jpeg_bytes).hexdigest()[:32]


async def test_same_bytes_again_is_200_with_the_same_id(client, jpeg_bytes: bytes) -> None:
    first = await upload(client, jpeg_bytes)
    second = await upload(client, jpeg_bytes, expect=200)
    assert first["id"] == second["id"]


@pytest.mark.parametrize("field", ["image", "file", "data"])
async def test_multipart_upload(client, png_alpha_bytes: bytes, field: str) -> None:
    form = FormData()
    form.add_field("note", "ignored")
    form.add_field(field, png_alpha_bytes, filename="x.jpg", content_type="image/jpeg")
    response = await client.post("/images", data=form)
    assert response.status == 201
    body = await response.json()
    assert body["format"] == "png"  # sniffed from the bytes, not from the name or type


async def test_multipart_without_a_file_field_is_400(client) -> None:
    form = FormData()
    form.add_field("other", b"abc", filename="a.png")
    await assert_problem(await client.post("/images", data=form), 400, "image")


async def test_get_original_is_exact_with_etag_and_304(client, photo_bytes: bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/images/{image_id}")
    assert response.status == 200
    assert await response.read() == photo_bytes
    assert response.headers["ETag"] == f'"{image_id}"'
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    again = await client.get(f"/images/{image_id}", headers={"If-None-Match": f'"{image_id}"'})
    assert again.status == 304
    head = await client.head(f"/images/{image_id}")
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(photo_bytes)


async def test_range_requests(client, photo_bytes: bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    url = f"/images/{image_id}"
    part = await client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status == 206
    assert await part.read() == photo_bytes[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(photo_bytes)}"
    tail = await client.get(url, headers={"Range": "bytes=-5"})
    assert await tail.read() == photo_bytes[-5:]
    rest = await client.get(url, headers={"Range": "bytes=100-"})
    assert await rest.read() == photo_bytes[100:]
    bad = await client.get(url, headers={"Range": f"bytes={len(photo_bytes)}-"})
    await assert_problem(bad, 416)
    assert bad.headers["Content-Range"] == f"bytes */{len(photo_bytes)}"
    stale = await client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert stale.status == 200 and await stale.read() == photo_bytes


async def test_original_converted_by_suffix(client, photo_bytes: bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/images/{image_id}.webp")
    assert response.status == 200
    assert response.content_type == "image/webp"
    image = decode(await response.read())
    assert (image.width, image.height) == (512, 341)
    await assert_problem(await client.get(f"/images/{image_id}.bmp"), 400, ".bmp")


async def test_info_and_diff(client, photo_bytes: bytes, jpeg_bytes: bytes) -> None:
    a = (await upload(client, photo_bytes))["id"]
    b = (await upload(client, jpeg_bytes))["id"]
    info = await (await client.get(f"/images/{a}/info")).json()
    assert info["width"] == 512 and info["height"] == 341 and info["mime"] == "image/jpeg"
    assert info["bands"] == 3 and info["has_alpha"] is False and info["pages"] == 1
    assert info["size"] == len(photo_bytes) and len(info["phash"]) == 16
    assert await (await client.get(f"/info/{a}")).json() == info
    same = await (await client.get(f"/images/{a}/diff/{a}")).json()
    assert same == {"a": a, "b": a, "distance": 0, "similar": True}
    different = await (await client.get(f"/images/{a}/diff/{b}")).json()
    assert different["distance"] > 10 and different["similar"] is False


async def test_list_pages_in_id_order(client) -> None:
    ids = sorted(
        [(await upload(client, gradient(10 + i, 10).pngsave_buffer()))["id"] for i in range(5)]
    )
    first = await (await client.get("/images?limit=2")).json()
    assert [i["id"] for i in first["images"]] == ids[:2]
    assert first["next"] == ids[1]
    assert set(first["images"][0]) == {"id", "format", "width", "height", "size", "created"}
    second = await (await client.get(f"/images?limit=2&after={first['next']}")).json()
    assert [i["id"] for i in second["images"]] == ids[2:4]
    last = await (await client.get(f"/images?limit=2&after={second['next']}")).json()
    assert [i["id"] for i in last["images"]] == ids[4:] and last["next"] is None


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "limit=0", "limit=1001", "after=xyz"])
async def test_bad_list_parameters_are_400(client, query: str) -> None:
    await assert_problem(await client.get(f"/images?{query}"), 400, query)


async def test_delete_makes_every_url_404(client, photo_bytes: bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    derived = f"/resize/50x/{image_id}"
    first = await client.get(derived)
    etag = first.headers["ETag"]
    assert (await client.delete(f"/images/{image_id}")).status == 204
    for url in (f"/images/{image_id}", derived, f"/images/{image_id}/info", f"/{image_id}.png"):
        await assert_problem(await client.get(url), 404, image_id)
    # A cached render must not answer for a deleted original, nor a validator give 304.
    await assert_problem(await client.get(derived, headers={"If-None-Match": etag}), 404)
    await assert_problem(await client.delete(f"/images/{image_id}"), 404)


# --- derived images


async def test_derived_image_has_the_requested_size_and_headers(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/resize/300x300/fmt/webp/{image_id}")
    assert response.status == 200
    assert response.content_type == "image/webp"
    image = decode(await response.read())
    assert (image.width, image.height) == (300, 200)
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"].startswith('"') and len(response.headers["ETag"]) > 10
    assert response.headers["Cache-Tag"] == image_id == response.headers["Surrogate-Key"]
    assert "Vary" not in response.headers
    timing = response.headers["Server-Timing"]
    assert "render;dur=" in timing and "encode;dur=" in timing and 'cache;desc="miss"' in timing
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_repeat_comes_from_the_cache_and_order_does_not_matter(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    a = await client.get(f"/resize/100x/grayscale/{image_id}")
    b = await client.get(f"/grayscale/resize/100x/{image_id}")
    assert a.headers["ETag"] == b.headers["ETag"]
    assert await a.read() == await b.read()
    assert 'cache;desc="hit"' in b.headers["Server-Timing"]
    assert client.app[RENDERER].renders == 1


async def test_if_none_match_is_304_without_reading_the_original(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    url = f"/fill/64x64/{image_id}"
    etag = (await client.get(url)).headers["ETag"]
    # Corrupt the stored file: a 304 that still read it would now fail.
    client.app[STORE].path(image_id).write_bytes(b"garbage")
    response = await client.get(url, headers={"If-None-Match": etag})
    assert response.status == 304
    assert response.headers["ETag"] == etag
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


async def test_fmt_auto_negotiates_and_varies(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    url = f"/resize/100x/fmt/auto/{image_id}"
    cases = {
        "image/avif,image/webp,*/*": "image/avif",
        "image/webp,*/*": "image/webp",
        "image/png,*/*": "image/jpeg",
        "": "image/jpeg",
    }
    etags = set()
    for accept, mime in cases.items():
        response = await client.get(url, headers={"Accept": accept})
        assert response.content_type == mime, accept
        assert response.headers["Vary"] == "Accept"
        decode(await response.read())
        etags.add(response.headers["ETag"])
    assert len(etags) == 3  # the two "other" clients share one variant


async def test_output_format_auto_from_config(app_client, photo_bytes) -> None:
    client = await app_client(output={"format": "auto"})
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/{image_id}", headers={"Accept": "image/webp"})
    assert response.content_type == "image/webp" and response.headers["Vary"] == "Accept"


async def test_quality_defaults_come_from_config(app_client, photo_bytes) -> None:
    low = await app_client(output={"quality": {"jpeg": 10}})
    image_id = (await upload(low, photo_bytes))["id"]
    small = await (await low.get(f"/{image_id}.jpg")).read()
    explicit = await (await low.get(f"/q/90/{image_id}.jpg")).read()
    assert len(small) * 2 < len(explicit)


async def test_info_operation_describes_the_result(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/resize/100x/fmt/png/info/{image_id}")
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["format"] == "png" and body["width"] == 100 and body["height"] == 67
    png = await (await client.get(f"/resize/100x/fmt/png/{image_id}")).read()
    assert body["size"] == len(png)


async def test_expires(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    future = int(time.time()) + 100
    response = await client.get(f"/expires/{future}/{image_id}")
    assert response.status == 200
    max_age = int(response.headers["Cache-Control"].split("max-age=")[1])
    assert 90 <= max_age <= 100
    assert "immutable" not in response.headers["Cache-Control"]
    await assert_problem(await client.get(f"/expires/1000/{image_id}"), 403, "expired")


async def test_an_expiring_url_seen_before_is_refused_once_it_expires(
    client, photo_bytes, monkeypatch
) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    now = time.time()
    path = f"/expires/{int(now) + 100}/resize/40x/{image_id}"
    assert (await client.get(path)).status == 200
    assert (await client.get(path)).status == 200  # remembered, and a cache hit
    monkeypatch.setattr(time, "time", lambda: now + 200)
    await assert_problem(await client.get(path), 403, "expired")


async def test_a_crop_of_one_pixel_and_of_the_whole_side_are_two_images(client, photo_bytes):
    """`1` is a pixel and `1.0` the whole side, though Python finds them equal: whatever is
    remembered of the first request must not answer the second."""
    image_id = (await upload(client, photo_bytes))["id"]
    pixel = await client.get(f"/crop/0,0,1,1/fmt/png/{image_id}")
    whole = await client.get(f"/crop/0,0,1.0,1.0/fmt/png/{image_id}")
    assert (decode(await pixel.read()).width, decode(await pixel.read()).height) == (1, 1)
    full = decode(await whole.read())
    info = await (await client.get(f"/images/{image_id}/info")).json()
    assert (full.width, full.height) == (info["width"], info["height"])
    assert pixel.headers["ETag"] != whole.headers["ETag"]


async def test_long_accept_headers_are_negotiated_each_time(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    padding = ", ".join(f"application/x-{i}" for i in range(300))  # ~6 KB of types
    for accepted, mime in [("image/avif", "image/avif"), ("image/webp", "image/webp")] * 2:
        headers = {"Accept": f"{padding}, {accepted}"}
        response = await client.get(f"/resize/40x/fmt/auto/{image_id}", headers=headers)
        assert response.status == 200
        assert response.content_type == mime


async def test_one_url_answers_each_client_by_its_own_headers(client, photo_bytes) -> None:
    """The same URL asked by different clients, in turns: what was negotiated for one never
    answers another (each answer is remembered, and the second round is cache hits)."""
    image_id = (await upload(client, photo_bytes))["id"]
    path = f"/resize/60x/fmt/auto/dpr/auto/{image_id}"
    clients = [
        ({"Accept": "image/avif,image/webp,*/*", "Sec-CH-DPR": "2"}, "image/avif", 120),
        ({"Accept": "image/webp,*/*"}, "image/webp", 60),
        ({"Accept": "*/*", "DPR": "3"}, "image/jpeg", 180),
        ({"Accept": "image/webp,*/*", "DPR": "1.5"}, "image/webp", 90),
    ]
    etags = []
    for _ in range(2):
        for headers, mime, width in clients:
            response = await client.get(path, headers=headers)
            assert response.status == 200
            assert response.content_type == mime
            assert decode(await response.read()).width == width
            assert response.headers["Vary"] == "Accept, Sec-CH-DPR, DPR"
            etags.append(response.headers["ETag"])
    assert etags[:4] == etags[4:] and len(set(etags)) == 4


async def test_on_demand_post_transforms_without_storing(client, photo_bytes) -> None:
    response = await client.post("/resize/100x/fmt/png", data=photo_bytes)
    assert response.status == 200 and response.content_type == "image/png"
    assert decode(await response.read()).width == 100
    listing = await (await client.get("/images")).json()
    assert listing["images"] == []
    await assert_problem(await client.post("/resize/100x/fmt/png", data=b"nope"), 415)
    await assert_problem(await client.post("/resize/abc", data=photo_bytes), 400, "resize/abc")


async def test_derive_and_store(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.post("/images", json={"from": f"/crop/0,0,100,80/{image_id}"})
    assert response.status == 201
    body = await response.json()
    assert (body["width"], body["height"]) == (100, 80) and body["id"] != image_id
    stored = decode(await (await client.get(f"/images/{body['id']}")).read())
    assert (stored.width, stored.height) == (100, 80)


# --- errors


async def test_bad_path_is_400_problem_json(client) -> None:
    body = await assert_problem(await client.get("/resize/abc/" + "0" * 32), 400, "resize/abc")
    assert body["title"] == "Bad Request"


async def test_unknown_id_and_route_are_404(client) -> None:
    await assert_problem(await client.get("/resize/10x/" + "a" * 32), 404, "a" * 32)
    await assert_problem(await client.get("/images/" + "a" * 32), 404)
    await assert_problem(await client.get("/images/" + "a" * 32 + "/nothing"), 404)


async def test_wrong_method_is_405(client) -> None:
    await assert_problem(await client.patch("/images"), 405)


async def test_upload_over_the_limit_is_413(app_client) -> None:
    client = await app_client(limits={"max_upload_bytes": 1000})
    big = gradient(200, 200).pngsave_buffer()
    await assert_problem(await client.put("/images", data=big), 413, "1000")

    async def chunked():  # no Content-Length: refused while streaming
        for _ in range(10):
            yield b"\xff\xd8\xff" + bytes(500)

    await assert_problem(await client.put("/images", data=chunked()), 413)
    assert list(client.app[STORE].tmp.iterdir()) == []
    assert not any(client.app[STORE].originals.rglob("*"))


async def test_not_an_image_is_415(client) -> None:
    await assert_problem(await client.put("/images", data=b"hello, world"), 415)
    await assert_problem(await client.put("/images", data=b"PK\x03\x04" + bytes(64)), 415)
    # a PDF is read (SPEC §10): one that is not really one is corrupt, not unknown
    await assert_problem(await client.put("/images", data=b"%PDF-1.7\n..."), 422)


async def test_empty_body_is_400(client) -> None:
    await assert_problem(await client.put("/images", data=b""), 400, "empty")


async def test_corrupt_and_bomb_uploads_are_422(app_client, photo_bytes) -> None:
    client = await app_client(limits={"max_pixels": 100_000})
    await assert_problem(await client.put("/images", data=photo_bytes[:20000]), 422)
    bomb = pyvips.Image.black(1000, 1000).pngsave_buffer()
    await assert_problem(await client.put("/images", data=bomb), 422, "over the limit")
    assert not any(client.app[STORE].originals.rglob("*"))
    assert list(client.app[STORE].tmp.iterdir()) == []


async def test_bad_json_body_is_400(client) -> None:
    bad = await client.post("/images", data=b"{nope", headers={"Content-Type": "application/json"})
    await assert_problem(bad, 400, "JSON")
    await assert_problem(await client.post("/images", json=[1, 2]), 400)
    await assert_problem(await client.post("/images", json={"from": "relative"}), 400)


async def test_full_queue_is_503_with_retry_after(app_client) -> None:
    client = await app_client(limits={"concurrency": 1, "queue": 0})
    big = gradient(2500, 2500).pngsave_buffer(compression=1)
    image_id = (await upload(client, io.BytesIO(big)))["id"]
    slow = asyncio.ensure_future(client.get(f"/blur/60/fmt/png/{image_id}"))
    pool = client.app[POOL]
    for _ in range(200):  # wait until the slow render holds the only slot
        if pool.running:
            break
        await asyncio.sleep(0.01)
    assert pool.running == 1
    response = await client.get(f"/resize/10x/{image_id}")
    await assert_problem(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert (await slow).status == 200
    assert (await client.get(f"/resize/10x/{image_id}")).status == 200  # recovered


async def test_identical_concurrent_requests_render_once(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    responses = await asyncio.gather(
        *(client.get(f"/resize/200x/blur/3/{image_id}") for _ in range(8))
    )
    bodies = {await r.read() for r in responses}
    assert len(bodies) == 1
    assert client.app[RENDERER].renders == 1


async def test_index_describes_the_service(client) -> None:
    body = await (await client.get("/")).json()
    assert body["service"] == "progimage" and "resize" in body["operations"]
    assert (await (await client.get("/health")).json()) == {"status": "ok"}


def test_problem_body_is_rfc9457() -> None:
    from proxy.errors import BadRequest

    assert json.loads(json.dumps(BadRequest("x").problem()))["status"] == 400


# --- regressions found in review


async def test_a_render_queued_behind_a_delete_is_404(app_client, photo_bytes) -> None:
    client = await app_client(limits={"concurrency": 1, "queue": 4})
    big = gradient(2500, 2500).pngsave_buffer(compression=1)
    big_id = (await upload(client, io.BytesIO(big)))["id"]
    small_id = (await upload(client, photo_bytes))["id"]
    slow = asyncio.ensure_future(client.get(f"/blur/60/fmt/png/{big_id}"))
    pool = client.app[POOL]
    for _ in range(200):
        if pool.running:
            break
        await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(client.get(f"/resize/20x/{small_id}"))
    for _ in range(200):
        if pool.waiting:
            break
        await asyncio.sleep(0.01)
    assert (await client.delete(f"/images/{small_id}")).status == 204
    await assert_problem(await queued, 404, "deleted")
    assert (await slow).status == 200


async def test_pad_of_16bit_and_cmyk_sources(client) -> None:
    sixteen = (gradient(40, 30).cast("ushort") * 256).copy(interpretation="rgb16")
    cmyk = gradient(40, 30).bandjoin(0).copy(interpretation="cmyk").jpegsave_buffer()
    for data in (sixteen.pngsave_buffer(), cmyk):
        image_id = (await upload(client, data))["id"]
        response = await client.get(f"/pad/100x100/fmt/png/{image_id}")
        assert response.status == 200, await response.text()
        image = decode(await response.read())
        assert image.getpoint(50, 2) == pytest.approx([255, 255, 255], abs=2)  # white margin


async def test_undecodable_authorization_header_is_403(app_client) -> None:
    client = await app_client(auth={"tokens": ["t0ken"]})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"PUT /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
        b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    status_line = await reader.readline()
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 403"), status_line


async def test_unicode_digits_in_limit_are_400(client) -> None:
    await assert_problem(await client.get("/images?limit=²"), 400)


async def test_fmt_auto_honours_q_zero(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(
        f"/fmt/auto/{image_id}", headers={"Accept": "image/avif;q=0, image/webp"}
    )
    assert response.content_type == "image/webp"


async def test_post_to_an_api_route_is_405_and_sig_prefix_is_ignored(client, photo_bytes):
    await assert_problem(await client.post("/health", data=photo_bytes), 405)
    response = await client.post("/sig/whatever/resize/10x", data=photo_bytes)
    assert response.status == 200
    assert decode(await response.read()).width == 10


async def test_info_cannot_be_stored(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.post("/images", json={"from": f"/info/{image_id}"})
    await assert_problem(response, 400, "info")


async def test_originals_are_sandboxed(client, photo_bytes) -> None:
    image_id = (await upload(client, photo_bytes))["id"]
    response = await client.get(f"/images/{image_id}")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
