"""`watermark` and `text` over HTTP: the stored overlay, the refusals, the caches, signing, and
identical bytes from two server processes."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
import pyvips
import yarl
from test_app import assert_problem, upload

from conftest import animated_gif, decode
from proxy import signing

W, H = 400, 300
TEXT = "%C2%A9%20ProgImage"  # "© ProgImage"


def flat(rgb: list[int], width: int = W, height: int = H) -> pyvips.Image:
    return (pyvips.Image.black(width, height) + rgb).cast("uchar").copy(interpretation="srgb")


@pytest.fixture
def grey_png() -> bytes:
    return flat([128, 128, 128]).pngsave_buffer()


@pytest.fixture
def logo_png() -> bytes:
    """A red 100×50 box on a transparent 120×70 canvas: the margin of the logo itself."""
    box = flat([255, 0, 0], 100, 50).bandjoin(255)
    return box.embed(10, 10, 120, 70).copy(interpretation="srgb").pngsave_buffer()


def red(image: pyvips.Image) -> np.ndarray:
    a = image.numpy().astype(int)
    return (a[:, :, 0] > 200) & (a[:, :, 1] < 60) & (a[:, :, 2] < 60)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    assert len(xs), "no pixel found"
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


@pytest.fixture
async def text_client(app_client):
    return await app_client(overlays={"allow_unsigned_text": True})


# --- watermark


async def test_watermark_lands_southeast_at_a_quarter_of_the_width(client, grey_png, logo_png):
    image, logo = (await upload(client, grey_png))["id"], (await upload(client, logo_png))["id"]
    response = await client.get(f"/watermark/{logo}/fmt/png/{image}")
    assert response.status == 200, await response.text()
    out = decode(await response.read())
    assert (out.width, out.height) == (W, H)
    # The logo is 100 wide on a 120 canvas, scaled to 100 (a quarter of 400): the box ~83 px,
    # its canvas' bottom-right corner 6 px (2 % of 300) inside the output's.
    left, top, width, height = bbox(red(out))
    assert abs(width - 83) <= 2 and abs(height - 42) <= 2
    assert abs((left + width) - (W - 6 - 8)) <= 2 and abs((top + height) - (H - 6 - 8)) <= 2
    assert (out.numpy()[: H // 2, : W // 2] == 128).all()  # the rest untouched


async def test_watermark_opacity_tile_and_size(client, grey_png, logo_png):
    image, logo = (await upload(client, grey_png))["id"], (await upload(client, logo_png))["id"]
    half = decode(await (await client.get(f"/watermark/{logo},centre,0.5/fmt/png/{image}")).read())
    r, g, b = half.numpy()[H // 2, W // 2][:3]
    assert abs(int(r) - (255 + 128) / 2) <= 2 and abs(int(g) - 64) <= 2
    tiled = decode(await (await client.get(f"/watermark/{logo},tile,1,0.1/fmt/png/{image}")).read())
    mask = tiled.numpy()[:, :, 0] > 200
    for rows in (slice(0, H // 2), slice(H // 2, H)):
        for cols in (slice(0, W // 2), slice(W // 2, W)):
            assert mask[rows, cols].any()
    big = decode(
        await (await client.get(f"/watermark/{logo},northwest,1,0.5/fmt/png/{image}")).read()
    )
    left, top, width, _ = bbox(red(big))
    assert abs(width - 200 * 100 / 120) <= 2  # the 120-wide canvas is half the output: 200
    assert left < W // 2 and top < H // 2


async def test_watermark_on_every_frame_of_an_animation(client, logo_png):
    image, logo = (
        (await upload(client, animated_gif(frames=3, width=120, height=90)))["id"],
        (await upload(client, logo_png))["id"],
    )
    response = await client.get(f"/watermark/{logo},northwest,1,0.5/fmt/gif/{image}")
    assert response.status == 200, await response.text()
    body = await response.read()
    whole = pyvips.Image.new_from_buffer(body, "", n=-1)
    assert whole.get("n-pages") == 3
    for page in range(3):
        frame = pyvips.Image.new_from_buffer(body, "", page=page).numpy()
        assert (frame[10:28, 10:52, 0] > 200).all() and (frame[10:28, 10:52, 1] < 60).all(), page


async def test_watermark_applies_to_on_demand_posts(client, grey_png, logo_png):
    logo = (await upload(client, logo_png))["id"]
    response = await client.post(f"/watermark/{logo},centre/fmt/png", data=grey_png)
    assert response.status == 200, await response.text()
    assert red(decode(await response.read()))[H // 2, W // 2]


async def test_unknown_or_deleted_watermark_is_400_naming_it(client, grey_png, logo_png):
    image, logo = (await upload(client, grey_png))["id"], (await upload(client, logo_png))["id"]
    missing = "0" * 32
    await assert_problem(await client.get(f"/watermark/{missing}/{image}"), 400, missing)
    assert (await client.get(f"/watermark/{logo}/{image}")).status == 200
    assert (await client.delete(f"/images/{logo}")).status == 204
    # The rendition is cached, but the watermark's absence is checked before the cache.
    await assert_problem(await client.get(f"/watermark/{logo}/{image}"), 400, logo)
    await assert_problem(await client.post(f"/watermark/{logo}", data=grey_png), 400, logo)


@pytest.mark.parametrize(
    ("argument", "words"),
    [
        ("abc", ["stored image id"]),
        ("{logo},middle", ["position"]),
        ("{logo},centre,2", ["opacity"]),
        ("{logo},centre,1,0", ["size"]),
        ("{logo},centre,1,0.5,extra", ["expected"]),
    ],
)
async def test_malformed_watermark_is_400(client, grey_png, logo_png, argument, words):
    image, logo = (await upload(client, grey_png))["id"], (await upload(client, logo_png))["id"]
    response = await client.get(f"/watermark/{argument.format(logo=logo)}/{image}")
    await assert_problem(response, 400, "watermark", *words)


def test_watermark_over_max_pixels_is_422_before_decoding(start_server, logo_png):
    def put(server, data: bytes) -> str:
        request = urllib.request.Request(f"{server.url}/images", data=data, method="PUT")
        with urllib.request.urlopen(request) as response:
            import json

            return json.load(response)["id"]

    first = start_server()
    small = flat([90, 90, 90], 100, 80).pngsave_buffer()
    image, logo = put(first, small), put(first, flat([255, 0, 0], 3000, 3000).pngsave_buffer())
    first.stop()
    # The same store under a lower limit: the 9 MP watermark now passes it, the image does not.
    second = start_server(limits={"max_pixels": 1_000_000})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{second.url}/watermark/{logo}/{image}")
    assert refused.value.code == 422
    assert refused.value.headers["Content-Type"].startswith("application/problem+json")
    detail = refused.value.read().decode()
    assert logo in detail and "over the limit" in detail
    with urllib.request.urlopen(f"{second.url}/resize/50x/{image}") as response:
        assert response.status == 200  # the service is fine


# --- text


async def test_unsigned_text_is_refused_unless_allowed(client, grey_png):
    image = (await upload(client, grey_png))["id"]
    await assert_problem(
        await client.get(f"/text/{TEXT}/{image}"), 403, "allow_unsigned_text", "signing.key"
    )
    await assert_problem(await client.post(f"/text/{TEXT}", data=grey_png), 403, "text")


async def test_signed_text_renders_without_the_switch(app_client, grey_png):
    key = "a-key-of-the-site"
    client = await app_client(signing={"key": key})
    image = (await upload(client, grey_png))["id"]
    path = f"/text/{TEXT}/fmt/png/{image}"
    response = await client.get(signing.signed_path(path, key))
    assert response.status == 200, await response.text()
    assert (await client.get(path)).status == 403


async def test_text_changes_its_corner_only(text_client, grey_png):
    image = (await upload(text_client, grey_png))["id"]
    response = await text_client.get(f"/text/{TEXT}/fmt/png/{image}")
    assert response.status == 200, await response.text()
    changed = (decode(await response.read()).numpy() != 128).any(axis=2)
    left, top, width, height = bbox(changed)
    assert left > W // 2 and top > H * 3 // 4  # southeast
    assert left + width <= W - 6 + 1 and top + height <= H - 6 + 1  # the 2 % margin


async def test_non_latin_text_and_the_etag(text_client, grey_png):
    image = (await upload(text_client, grey_png))["id"]
    etags = set()
    greek, russian = "%CE%A9%CE%BC%CE%AD%CE%B3%CE%B1", "%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0"
    for words in (greek, russian, "Paris"):
        response = await text_client.get(f"/text/{words},centre,1,0.2/fmt/png/{image}")
        assert response.status == 200, await response.text()
        ink = (decode(await response.read()).numpy() != 128).any(axis=2)
        assert ink.sum() > 500, words  # glyphs drawn, not empty boxes or nothing
        etags.add(response.headers["ETag"])
    assert len(etags) == 3


async def test_tiled_text_covers_every_quadrant(text_client, grey_png):
    image = (await upload(text_client, grey_png))["id"]
    response = await text_client.get(f"/text/DRAFT,tile,0.5,0.08/fmt/png/{image}")
    ink = (decode(await response.read()).numpy() != 128).any(axis=2)
    for rows in (slice(0, H // 2), slice(H // 2, H)):
        for cols in (slice(0, W // 2), slice(W // 2, W)):
            assert ink[rows, cols].mean() > 0.02


async def test_text_goes_through_the_cache(text_client, grey_png):
    image = (await upload(text_client, grey_png))["id"]
    # encoded=True: the client sends the path as written (yarl would turn %2C into a comma).
    url = yarl.URL(f"/text/Hello%2C%20world/{image}", encoded=True)
    first = await text_client.get(url)
    second = await text_client.get(url)
    assert first.status == 200, await first.text()
    assert 'cache;desc="miss"' in first.headers["Server-Timing"]
    assert 'cache;desc="hit"' in second.headers["Server-Timing"]
    assert await first.read() == await second.read()
    again = await text_client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    # The comma is the text's own (%2C): a different text from two fields.
    other = await text_client.get(f"/text/Hello,centre/{image}")
    assert other.status == 200 and other.headers["ETag"] != first.headers["ETag"]


@pytest.mark.parametrize(
    ("argument", "words"),
    [
        ("a" * 201, ["1 to 200"]),
        ("line%0Abreak", ["control"]),
        ("%E2%80%AEevil", ["direction"]),
        ("%FF%FE", ["UTF-8"]),
        ("hello,middle", ["position"]),
        ("hello,centre,1,0.9", ["size"]),
        ("hello,centre,1,0.1,red", ["RRGGBB"]),
        ("a,b,c,d,e,f", ["%2C"]),
        ("%E6%9D%B1%E4%BA%AC%20%F0%9F%98%80", ["no glyph", "U+6771, U+4EAC, U+1F600"]),
    ],
)
async def test_bad_text_is_400(text_client, grey_png, argument, words):
    image = (await upload(text_client, grey_png))["id"]
    await assert_problem(await text_client.get(f"/text/{argument}/{image}"), 400, "text", *words)


def test_same_url_same_bytes_from_two_processes(start_server, grey_png, logo_png):
    import json

    def put(server, data: bytes) -> str:
        request = urllib.request.Request(f"{server.url}/images", data=data, method="PUT")
        with urllib.request.urlopen(request) as response:
            return json.load(response)["id"]

    settings = {"overlays": {"allow_unsigned_text": True}, "cache": {"results_in_store": False}}
    a = start_server(**settings)
    image, logo = put(a, grey_png), put(a, logo_png)
    b = start_server(**settings)  # the same store, another process (and its own caches)
    words = "%C3%87a%20va%20%E2%80%94%205%20%E2%82%AC"  # "Ça va — 5 €"
    path = f"/watermark/{logo},tile,0.6,0.2/text/{words},north/{image}"
    bodies = []
    for server in (a, b, a):
        with urllib.request.urlopen(server.url + path) as response:
            bodies.append(response.read())
    assert bodies[0] == bodies[1] == bodies[2]
    assert decode(bodies[0]).width == W


async def test_watermark_is_upright_and_in_the_etag(client, grey_png, logo_png):
    from conftest import IMAGES

    image = (await upload(client, grey_png))["id"]
    logo = (await upload(client, logo_png))["id"]
    # Stored 400×300 with EXIF orientation 6: upright it is 300×400, taller than wide.
    portrait = (await upload(client, (IMAGES / "portrait-exif6.jpg").read_bytes()))["id"]
    response = await client.get(f"/watermark/{portrait},centre,1,0.3/fmt/png/{image}")
    assert response.status == 200, await response.text()
    changed = (decode(await response.read()).numpy() != 128).any(axis=2)
    _, _, width, height = bbox(changed)
    assert abs(width - 120) <= 2 and abs(height - 160) <= 2  # 0.3 × 400 wide, 4:3 upright
    other = await client.get(f"/watermark/{logo},centre,1,0.3/fmt/png/{image}")
    assert other.headers["ETag"] != response.headers["ETag"]
