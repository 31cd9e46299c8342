"""Part two over HTTP: client hints, downloads, budgets, presets, b64 sources, placeholders
and the fallback image, against the in-process app (and a real origin for remote sources)."""

from __future__ import annotations

import base64

import pytest
from aiohttp import web
from test_app import assert_problem, upload

from conftest import decode, gradient

PROBLEM = "application/problem+json"


@pytest.fixture
def photo_png() -> bytes:
    return gradient(400, 300).pngsave_buffer()


# --- dpr/auto


async def test_dpr_auto_reads_the_client_hint(client, photo_png) -> None:
    image_id = (await upload(client, photo_png))["id"]
    url = f"/resize/100x/dpr/auto/{image_id}"
    plain = await client.get(url)
    assert decode(await plain.read()).width == 100
    assert plain.headers["Vary"] == "Sec-CH-DPR, DPR"
    assert plain.headers["Accept-CH"] == "Sec-CH-DPR, DPR"
    hinted = await client.get(url, headers={"Sec-CH-DPR": "2"})
    assert decode(await hinted.read()).width == 200
    legacy = await client.get(url, headers={"DPR": "1.5"})
    assert decode(await legacy.read()).width == 150
    # The hint is the same image as the explicit ratio: one ETag for both.
    explicit = await client.get(f"/resize/100x/dpr/2/{image_id}")
    assert explicit.headers["ETag"] == hinted.headers["ETag"] != plain.headers["ETag"]
    assert "Accept-CH" not in explicit.headers


@pytest.mark.parametrize(
    ("hint", "width"),
    [("9", 400), ("0.5", 100), ("abc", 100), ("nan", 100), ("2.04", 200), ("1.25", 130)],
)
async def test_dpr_auto_clamps_and_rounds(client, photo_png, hint: str, width: int) -> None:
    image_id = (await upload(client, photo_png))["id"]
    response = await client.get(
        f"/resize/100x/dpr/auto/enlarge/{image_id}", headers={"Sec-CH-DPR": hint}
    )
    assert response.status == 200
    assert decode(await response.read()).width == width


async def test_dpr_auto_never_passes_the_output_limit(app_client, photo_png) -> None:
    client = await app_client(limits={"max_output_dimension": 300})
    image_id = (await upload(client, photo_png))["id"]
    response = await client.get(
        f"/resize/200x/dpr/auto/enlarge/{image_id}", headers={"Sec-CH-DPR": "3"}
    )
    assert response.status == 200
    assert decode(await response.read()).width == 300


async def test_auto_format_and_auto_dpr_vary_on_both(client, photo_png) -> None:
    image_id = (await upload(client, photo_png))["id"]
    response = await client.get(
        f"/resize/50x/dpr/auto/fmt/auto/{image_id}", headers={"Accept": "image/webp"}
    )
    assert response.headers["Vary"] == "Accept, Sec-CH-DPR, DPR"
    assert response.content_type == "image/webp"


# --- output headers


async def test_download_names_the_file_with_the_output_extension(client, photo_png) -> None:
    image_id = (await upload(client, photo_png))["id"]
    response = await client.get(f"/resize/50x/fmt/jpeg/download/holiday-2026/{image_id}")
    assert response.headers["Content-Disposition"] == 'attachment; filename="holiday-2026.jpg"'
    response = await client.get(f"/download/cat/{image_id}.webp")
    assert response.headers["Content-Disposition"] == 'attachment; filename="cat.webp"'
    plain = await client.get(f"/resize/50x/{image_id}")
    assert "Content-Disposition" not in plain.headers


async def test_an_unreachable_budget_says_so_in_a_header(client) -> None:
    import pyvips

    noise = pyvips.Image.gaussnoise(600, 400).cast("uchar").bandjoin([90, 200])
    image_id = (await upload(client, noise.copy(interpretation="srgb").pngsave_buffer()))["id"]
    response = await client.get(f"/fmt/jpeg/maxbytes/1024/{image_id}")
    body = await response.read()
    assert response.status == 200
    assert int(response.headers["ProgImage-Over-Budget"]) == len(body) > 1024
    fits = await client.get(f"/resize/40x/fmt/jpeg/maxbytes/20000/{image_id}")
    assert "ProgImage-Over-Budget" not in fits.headers
    assert len(await fits.read()) <= 20000


async def test_format_mismatch_is_a_problem(client, photo_png) -> None:
    image_id = (await upload(client, photo_png))["id"]
    await assert_problem(await client.get(f"/lossless/{image_id}.jpg"), 400, "'lossless'")
    await assert_problem(await client.get(f"/palette/8/{image_id}.webp"), 400, "'palette/8'")


# --- equal images, equal ETags


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("/padding/5", "/padding/5,5,5,5"),
        ("/fill/40x40/gravity/0.5,0.5", "/fill/40x40"),
        ("/crop/0.0,0,0.5,0.5", "/crop/0,0.0,0.5,0.5"),
        ("/hue/0/rotate/0", ""),
        ("/saturation/-10/brightness/5", "/brightness/5/saturation/-10"),
    ],
)
async def test_equal_images_share_an_etag(client, photo_png, a: str, b: str) -> None:
    image_id = (await upload(client, photo_png))["id"]
    first = await client.get(f"{a}/{image_id}")
    second = await client.get(f"{b}/{image_id}")
    assert first.status == second.status == 200
    assert first.headers["ETag"] == second.headers["ETag"]


# --- presets


async def test_presets_expand_from_config(app_client, photo_png) -> None:
    client = await app_client(presets={"definitions": {"thumb": "/fill/64x48/fmt/webp"}})
    image_id = (await upload(client, photo_png))["id"]
    response = await client.get(f"/preset/thumb/{image_id}")
    assert response.content_type == "image/webp"
    img = decode(await response.read())
    assert (img.width, img.height) == (64, 48)
    expanded = await client.get(f"/fill/64x48/fmt/webp/{image_id}")
    assert response.headers["ETag"] == expanded.headers["ETag"]
    overridden = await client.get(f"/preset/thumb/fmt/png/{image_id}")
    assert overridden.content_type == "image/png"
    await assert_problem(await client.get(f"/preset/nope/{image_id}"), 400, "'preset/nope'")


async def test_presets_only_closes_the_set(app_client, photo_png) -> None:
    client = await app_client(presets={"definitions": {"thumb": "/resize/64x"}, "only": True})
    image_id = (await upload(client, photo_png))["id"]
    assert (await client.get(f"/preset/thumb/{image_id}")).status == 200
    await assert_problem(await client.get(f"/resize/64x/{image_id}"), 400, "presets only")
    await assert_problem(await client.get(f"/preset/thumb/q/10/{image_id}"), 400, "'q'")


# --- b64 sources and placeholders


async def test_b64_source_names_a_stored_id(client, photo_png) -> None:
    image_id = (await upload(client, photo_png))["id"]
    encoded = base64.urlsafe_b64encode(image_id.encode()).decode().rstrip("=")
    response = await client.get(f"/resize/50x/b64:{encoded}.png")
    assert response.status == 200 and response.content_type == "image/png"
    same = await client.get(f"/resize/50x/{image_id}.png")
    assert response.headers["ETag"] == same.headers["ETag"]


async def test_metadata_answers_carry_placeholders(client) -> None:
    import pyvips

    red = (pyvips.Image.black(60, 40) + [255, 0, 0]).cast("uchar").copy(interpretation="srgb")
    image_id = (await upload(client, red.pngsave_buffer()))["id"]
    info = await (await client.get(f"/images/{image_id}/info")).json()
    assert info["dominant_color"] == "ff0000"
    assert len(info["blurhash"]) == 4 + 2 * 4 * 3  # size, max AC, DC: 4 + 2 per component
    assert base64.b64decode(info["thumbhash"])
    derived = await (await client.get(f"/resize/10x/info/{image_id}")).json()
    assert derived["dominant_color"] == "ff0000" and derived["blurhash"]
    by_source = await (await client.get(f"/info/{image_id}")).json()
    assert by_source["thumbhash"] == info["thumbhash"]


# --- the fallback image


@pytest.fixture
def fallback_file(tmp_path) -> str:
    path = tmp_path / "missing.png"
    path.write_bytes(
        (gradient(80, 60) * 0 + [0, 200, 0])
        .cast("uchar")
        .copy(interpretation="srgb")
        .pngsave_buffer()
    )
    return str(path)


async def test_fallback_answers_an_unknown_id(app_client, fallback_file) -> None:
    client = await app_client(fallback={"image": fallback_file})
    response = await client.get("/resize/40x/fmt/png/" + "ab" * 16)
    assert response.status == 404
    assert response.content_type == "image/png"
    assert response.headers["ProgImage-Fallback"] == "not-found"
    assert response.headers["Cache-Control"] == "public, max-age=60"
    img = decode(await response.read())
    assert (img.width, img.height) == (40, 30)  # the request's own operations
    assert img(5, 5)[:3] == [0, 200, 0]
    assert response.headers["ETag"]


async def test_fallback_status_and_age_follow_config(app_client, fallback_file, photo_png) -> None:
    client = await app_client(fallback={"image": fallback_file, "status": 200, "max_age": 5})
    image_id = (await upload(client, photo_png))["id"]
    assert (await client.delete(f"/images/{image_id}")).status == 204
    response = await client.get(f"/resize/20x/{image_id}")
    assert response.status == 200 and response.headers["Cache-Control"] == "public, max-age=5"
    assert response.headers["ProgImage-Fallback"] == "not-found"
    assert "immutable" not in response.headers["Cache-Control"]


async def test_fallback_may_be_a_stored_image(app_client, make_config, aiohttp_client) -> None:
    from proxy.app import create_app

    first = await app_client()
    green = gradient(30, 30).pngsave_buffer()
    fallback_id = (await upload(first, green))["id"]
    # The same storage path, now with the stored image as the fallback.
    config = make_config(fallback={"image": fallback_id})
    client = await aiohttp_client(create_app(config))
    response = await client.get("/fmt/png/" + "cd" * 16)
    assert response.status == 404 and response.headers["ProgImage-Fallback"] == "not-found"
    assert decode(await response.read()).width == 30


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/resize/abc/" + "ab" * 16, 400),  # a bad request
        ("/sepia/" + "ab" * 16, 400),
        ("/images/" + "ab" * 16, 404),  # the storage API: never a fallback
        ("/images/" + "ab" * 16 + ".png", 404),
        ("/info/" + "ab" * 16, 404),
        ("/resize/10x/info/" + "ab" * 16, 404),  # metadata, not an image
    ],
)
async def test_no_fallback_where_a_problem_belongs(app_client, fallback_file, path, status) -> None:
    client = await app_client(fallback={"image": fallback_file})
    response = await client.get(path)
    assert response.status == status
    assert response.content_type == PROBLEM
    assert "ProgImage-Fallback" not in response.headers


async def test_fallback_for_remote_sources_that_fail(aiohttp_server, app_client, fallback_file):
    import asyncio

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(status=500)

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="not an image")

    origin = web.Application()
    origin.router.add_get("/gone.jpg", gone)
    origin.router.add_get("/broken.jpg", broken)
    origin.router.add_get("/slow.jpg", slow)
    origin.router.add_get("/text.jpg", text)
    server = await aiohttp_server(origin)
    client = await app_client(
        fallback={"image": fallback_file},
        sources={"allow_private_networks": True},
        limits={"fetch_timeout": 0.5},
    )
    base = f"http://127.0.0.1:{server.port}"
    for name, status, kind in (
        ("gone", 404, "not-found"),
        ("broken", 404, "upstream-error"),
        ("slow", 404, "upstream-error"),
    ):
        response = await client.get(f"/resize/20x/{base}/{name}.jpg")
        assert response.status == status, name
        assert response.headers["ProgImage-Fallback"] == kind, name
        assert decode(await response.read()).width == 20
    # Not an image is the source's fault, not its absence: the problem stays.
    response = await client.get(f"/resize/20x/{base}/text.jpg")
    assert response.status == 415 and response.content_type == PROBLEM
    # A refused address stays refused.
    strict = await app_client(fallback={"image": fallback_file})
    response = await strict.get(f"/resize/20x/{base}/gone.jpg")
    assert response.status == 403 and response.content_type == PROBLEM


def test_a_missing_fallback_file_stops_the_start(make_config, tmp_path) -> None:
    from proxy.config import ConfigError

    with pytest.raises(ConfigError, match="fallback.image"):
        make_config(fallback={"image": str(tmp_path / "nope.png")})
    with pytest.raises(ConfigError, match="fallback.status"):
        make_config(fallback={"status": 500})
    with pytest.raises(ConfigError, match="presets.definitions.bad"):
        make_config(presets={"definitions": {"bad": "/resize/huge"}})
    with pytest.raises(ConfigError, match="output.metadata"):
        make_config(output={"metadata": "all"})
