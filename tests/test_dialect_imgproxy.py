"""The imgproxy dialect: imgproxy's own parsing cases and documentation URLs, its signatures,
refusals by name, and real renders over HTTP, under a prefix and at the root."""

from __future__ import annotations

import base64
import hashlib
import random
import time

import pytest
from aiohttp import web
from dialects.imgproxy_cases import (
    DEFAULT_PRESET,
    ONLY_PRESETS,
    PARSING,
    PRESETS,
    REFUSED,
    SIGNATURES,
    SIZES,
    WATERMARK,
    b64,
)

from conftest import decode, gradient
from proxy import ops, urls
from proxy.config import ImgproxyDialect
from proxy.dialects import imgproxy
from proxy.errors import BadRequest, Forbidden

PROBLEM = "application/problem+json"
SETTINGS = ImgproxyDialect(enabled=True, watermark=WATERMARK)
GRAMMAR = urls.Grammar(presets=urls.compile_presets(PRESETS, 8192))
KEY, SALT = "736563726574", "68656c6c6f"  # "secret" and "hello", the docs' signing example
# The source size the parsing rows assume where the result depends on it: larger than any
# of their boxes, as the image of a parsing test would be.
LARGE = (4000, 3000)


def changed(options) -> dict[str, object]:
    return {
        name: getattr(options, name)
        for name, op in ops.FIELDS.items()
        if getattr(options, name) != op.default
    }


@pytest.mark.parametrize(("origin", "path", "expected"), PARSING, ids=[r[0] for r in PARSING])
def test_imgproxy_cases_parse_into_native_options(origin, path, expected) -> None:
    check(origin, path, expected, GRAMMAR)


def check(origin: str, path: str, expected, grammar: urls.Grammar) -> None:
    if isinstance(expected, tuple) and expected[0] == REFUSED:
        with pytest.raises(BadRequest) as caught:
            imgproxy.parse(path, SETTINGS, grammar, LARGE)
        for word in expected[1:]:
            assert word in caught.value.detail, (origin, caught.value.detail)
        return
    options, ref = imgproxy.parse(path, SETTINGS, grammar, LARGE)
    want = dict(expected)
    assert ref.value == want.pop("source"), origin
    assert changed(options) == want, origin


def test_the_default_preset_comes_first_and_the_url_wins() -> None:
    # TestParsePathPresetDefault: `default` applies to every URL; the URL's quality wins.
    grammar = urls.Grammar(presets=urls.compile_presets(DEFAULT_PRESET, 8192))
    options, _ = imgproxy.parse("/q:70/plain/http://images.dev/a.jpg", SETTINGS, grammar, LARGE)
    assert changed(options) == {"fit": ops.fit("fill", 120, 80), "blur": 0.5, "quality": 70}


def test_a_later_option_refines_a_preset_and_an_unknown_preset_is_named() -> None:
    options, _ = imgproxy.parse("/pr:test1/h:40/plain/http://a.example/x.jpg", SETTINGS, GRAMMAR,
                                LARGE)  # fmt: skip
    assert options.fit == ops.fit("fill", 120, 40)  # the preset's fill, the URL's height
    with pytest.raises(BadRequest, match="pr:nope"):
        imgproxy.parse("/pr:nope/plain/http://a.example/x.jpg", SETTINGS, GRAMMAR)


@pytest.mark.parametrize(("origin", "path", "expected"), ONLY_PRESETS,
                         ids=[r[0] for r in ONLY_PRESETS])  # fmt: skip
def test_presets_only_reads_imgproxy_presets_only_urls(origin, path, expected) -> None:
    grammar = urls.Grammar(presets=GRAMMAR.presets, presets_only=True)
    check(origin, path, expected, grammar)


def test_watermark_needs_the_configured_image() -> None:
    bare = ImgproxyDialect(enabled=True)
    with pytest.raises(BadRequest, match="dialects.imgproxy.watermark"):
        imgproxy.parse("/wm:1:ce:0:0:0.2/plain/http://a.example/x.jpg", bare, GRAMMAR)


@pytest.mark.parametrize(
    "path",
    [
        "/w:-1/plain/http://a.example/x.jpg",  # not a size
        "/w:9000/plain/http://a.example/x.jpg",  # beyond limits.max_output_dimension
        "/q:101/plain/http://a.example/x.jpg",
        "/bg:12345/plain/http://a.example/x.jpg",
        "/bg:1:2:300/plain/http://a.example/x.jpg",
        "/rt:squash/plain/http://a.example/x.jpg",
        "/plain/http://a.example/x.jpg@png@webp",
        "/!!!notbase64",
        "/rs:fit:10:10",  # no source at all
    ],
)
def test_bad_arguments_are_400_naming_them(path: str) -> None:
    with pytest.raises(BadRequest) as caught:
        imgproxy.parse(path, SETTINGS, GRAMMAR)
    assert caught.value.status == 400 and caught.value.detail


def test_whatever_the_dialect_accepts_is_a_native_url() -> None:
    """Random option mixes: each accepted one has a canonical native URL that reads back as
    the same Options (a dialect adds no meaning of its own), and each refusal is a 400."""
    rng = random.Random(18)
    names = sorted(imgproxy.OPTIONS)
    values = [
        "", "0", "1", "-90", "0.25", "0.3333333", "2.5", "100", "3000", "fp", "sm", "re", "ce",
        "nowe", "soea", "no", "true", "f", "fff", "test1", "1e400",
    ]  # fmt: skip
    accepted = 0
    for _ in range(10000):
        options = [
            ":".join([rng.choice(names), *rng.choices(values, k=rng.randint(1, 3))])
            for _ in range(rng.randint(1, 3))
        ]
        path = "/" + "/".join([*options, f"plain/{WATERMARK}"])
        size = rng.choice([(200, 100), (100, 300), (37, 41), LARGE])
        try:
            parsed, ref = imgproxy.parse(path, SETTINGS, GRAMMAR, size)
        except BadRequest as exc:
            assert exc.status == 400 and exc.detail
            continue
        accepted += 1
        native, _ = urls.parse(urls.build(parsed, ref), "", GRAMMAR)
        assert native == parsed, path
    assert accepted > 300  # the mixes do reach the mapping, not only the refusals


@pytest.mark.parametrize(("origin", "key", "salt", "path", "expected"), SIGNATURES,
                         ids=[r[0] for r in SIGNATURES])  # fmt: skip
def test_signature_vectors(origin, key, salt, path, expected) -> None:
    assert imgproxy.signature(path, key, salt) == expected, origin


# --- over HTTP, through the running app ---------------------------------------------------------


async def _store(client, image) -> str:
    response = await client.post("/images", data=image)
    assert response.status in (200, 201), await response.text()
    return (await response.json())["id"]


async def _problem(response, status: int, *words: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json()
    for word in words:
        assert word in body["detail"], body
    return body


@pytest.fixture
async def served(app_client):
    """An app with the dialect under /imgproxy, a 400×300 gradient and a watermark stored."""
    logo = gradient(60, 20).pngsave_buffer()
    wm_id = hashlib.sha256(logo).hexdigest()[:32]  # a stored image's id: its content's hash
    client = await app_client(
        dialects={"imgproxy": {"enabled": True, "watermark": wm_id}},
        presets={"definitions": PRESETS},
    )
    assert await _store(client, logo) == wm_id
    photo = await _store(client, gradient(400, 300).jpegsave_buffer(Q=90))
    return client, photo


# (imgproxy path after the signature, expected size, expected format)
RENDERS = [
    ("/rs:fit:200:200/plain/{id}", (200, 150), "jpeg"),
    ("/rs:fill:100:100/g:nowe/plain/{id}@png", (100, 100), "png"),
    ("/rs:fill-down:300:400:0/g:sm/plain/{id}@png", (225, 300), "png"),  # aspect kept
    ("/rs:fill:800:600:1/plain/{id}", (800, 600), "jpeg"),
    ("/rs:force:100:50/plain/{id}@webp", (100, 50), "webp"),
    ("/w:100/plain/{id}", (100, 75), "jpeg"),
    ("/h:60/dpr:2/plain/{id}", (160, 120), "jpeg"),
    ("/rs:fit:300:300:0:1:so/bg:255:0:0/plain/{id}", (300, 300), "jpeg"),
    ("/c:0.5:0.5/plain/{id}", (200, 150), "jpeg"),
    ("/c:100:120:soea/plain/{id}", (100, 120), "jpeg"),  # pixels, placed from the size
    ("/rs:fill:800:600/plain/{id}", (400, 300), "jpeg"),  # not enlarged: clipped to the image
    ("/rs:fill:500:200/ex:1/plain/{id}", (500, 200), "jpeg"),  # clipped, then extended
    ("/rt:auto/w:100/h:200/plain/{id}", (100, 75), "jpeg"),  # landscape into portrait: fit
    ("/pd:10:20/plain/{id}", (440, 320), "jpeg"),
    ("/rot:90/w:150/plain/{id}", (150, 200), "jpeg"),
    ("/pr:test1/plain/{id}.b64", (120, 80), "jpeg"),
    ("/s:80:80/bl:2/sh:1/pix:4/q:60/wm:0.8:soea:0:0:0.2/plain/{id}@avif", (80, 60), "avif"),
]


@pytest.mark.parametrize(("path", "size", "fmt"), RENDERS, ids=[r[0] for r in RENDERS])
async def test_renders_have_imgproxy_sizes_and_formats(served, path, size, fmt) -> None:
    client, photo = served
    if path.endswith(".b64"):  # the base64 form of the source, split with '/' as imgproxy allows
        encoded = b64(photo)
        path = path.replace("plain/{id}.b64", f"{encoded[:10]}/{encoded[10:]}")
    response = await client.get("/imgproxy/insecure" + path.format(id=photo))
    assert response.status == 200, await response.text()
    assert response.content_type == ops.MIME_TYPES[fmt]
    image = decode(await response.read())
    assert (image.width, image.height) == size


@pytest.fixture
async def geometry(app_client):
    """imgproxy's processing tests resize a 200×100 image; any 200×100 image will do."""
    client = await app_client(dialects={"imgproxy": {"enabled": True}})
    return client, await _store(client, gradient(200, 100).pngsave_buffer())


async def test_imgproxy_processing_tests_result_sizes(geometry) -> None:
    """Every row of imgproxy's resize tables, rendered: imgproxy's own result size."""
    client, image = geometry
    for origin, rt, enlarge, extend, w, h, imgproxy_size in SIZES:
        options = f"rs:{rt}:{w}:{h}" + ("/el:1" if enlarge else "") + ("/ex:1" if extend else "")
        response = await client.get(f"/imgproxy/_/{options}/plain/{image}@png")
        assert response.status == 200, (origin, await response.text())
        result = decode(await response.read())
        assert (result.width, result.height) == imgproxy_size, origin
    assert len(SIZES) == 94


async def test_the_same_image_has_the_native_etag(served) -> None:
    client, photo = served
    dialect = await client.get(f"/imgproxy/_/rs:fill:100:100/g:nowe/plain/{photo}@png")
    native = await client.get(f"/fill/100x100/gravity/northwest/fmt/png/{photo}")
    assert dialect.status == native.status == 200
    assert dialect.headers["ETag"] == native.headers["ETag"]
    assert await dialect.read() == await native.read()
    again = await client.get(
        f"/imgproxy/_/rs:fill:100:100/g:nowe/plain/{photo}@png",
        headers={"If-None-Match": native.headers["ETag"]},
    )
    assert again.status == 304
    head = await client.head(f"/imgproxy/_/rs:fill:100:100/g:nowe/plain/{photo}@png")
    assert head.status == 200 and head.headers["ETag"] == native.headers["ETag"]


async def test_pixels_follow_imgproxy_gravity_flip_and_background(served) -> None:
    client, photo = served
    # The gradient's red grows left to right: nowe keeps the left edge, soea the right.

    async def image(options: str):
        response = await client.get(f"/imgproxy/_/{options}/plain/{photo}@png")
        assert response.status == 200, await response.text()
        return decode(await response.read())

    left, right = await image("rs:fill:50:300/g:we"), await image("rs:fill:50:300/g:ea")
    assert left(0, 150)[0] < 20 and right(49, 150)[0] > 235
    flopped = await image("fl:1")  # flip's first argument is horizontal: left-right
    assert flopped(0, 150)[0] > 235
    padded = await image("pd:10/bg:0:0:255")
    assert padded(2, 2)[:3] == [0, 0, 255]
    # 400×300 filled into 500×200 unenlarged: a 400×200 crop, centred on a red canvas.
    extended = await image("rs:fill:500:200/ex:1/bg:255:0:0")
    assert (extended.width, extended.height) == (500, 200)
    assert extended(10, 100)[:3] == [255, 0, 0] and extended(490, 100)[:3] == [255, 0, 0]
    assert extended(51, 100)[0] < 20  # the gradient's left edge starts after the margin


async def test_attachment_and_metadata_headers(served) -> None:
    client, photo = served
    response = await client.get(f"/imgproxy/_/fn:holiday/att:1/plain/{photo}@png")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="holiday.png"'


async def test_expired_is_403_and_refusals_are_400_naming_the_option(served) -> None:
    client, photo = served
    past = int(time.time()) - 60
    await _problem(await client.get(f"/imgproxy/_/exp:{past}/plain/{photo}"), 403, "expired")
    await _problem(await client.get(f"/imgproxy/_/z:2/plain/{photo}"), 400, "z:2", "zooming")
    await _problem(
        await client.get(f"/imgproxy/_/g:so:10:0/rs:fill:9:9/plain/{photo}"), 400, "g:so:10:0"
    )
    await _problem(await client.get(f"/imgproxy/_/f:bmp/plain/{photo}"), 400, "f:bmp")
    await _problem(await client.get(f"/imgproxy/info/_/plain/{photo}"), 400, "'info'")


async def test_a_remote_source_from_a_local_origin(app_client, aiohttp_server) -> None:
    body = gradient(120, 90).pngsave_buffer()
    queries: list[str] = []

    async def image(request: web.Request) -> web.Response:
        queries.append(request.rel_url.raw_query_string)
        return web.Response(body=body, content_type="image/png")

    origin = web.Application()
    origin.router.add_get("/pics/{name}", image)
    server = await aiohttp_server(origin, host="127.0.0.1")
    client = await app_client(
        dialects={"imgproxy": {"enabled": True}}, sources={"allow_private_networks": True}
    )
    url = f"http://127.0.0.1:{server.port}/pics/a.png?v=1"
    plain = await client.get(f"/imgproxy/_/w:60/plain/{url.replace('?', '%3F')}@jpg")
    assert plain.status == 200, await plain.text()
    assert (decode(await plain.read()).width, plain.content_type) == (60, "image/jpeg")
    encoded = await client.get(f"/imgproxy/_/rs:fill:30:30/{b64(url)}.webp")
    assert encoded.status == 200, await encoded.text()
    assert decode(await encoded.read()).width == 30
    assert queries[0] == "v=1"  # the escaped query reached the origin as the source's own


# --- signatures over HTTP ---------------------------------------------------------------------


@pytest.fixture
async def signed(app_client):
    client = await app_client(dialects={"imgproxy": {"enabled": True, "key": KEY, "salt": SALT}})
    photo = await _store(client, gradient(400, 300).jpegsave_buffer(Q=90))
    return client, photo


async def test_a_signed_url_renders_and_a_wrong_one_is_403(signed) -> None:
    client, photo = signed
    path = f"/rs:fill:100:100/plain/{photo}@png"
    good = await client.get(f"/imgproxy/{imgproxy.signature(path, KEY, SALT)}{path}")
    assert good.status == 200, await good.text()
    assert decode(await good.read()).width == 100
    flipped = imgproxy.signature(path, KEY, SALT)[::-1]
    for sig in ("insecure", "_", flipped, "AAAA"):
        await _problem(await client.get(f"/imgproxy/{sig}{path}"), 403, "signature")
    # Missing: the options sit where the signature goes.
    await _problem(await client.get(f"/imgproxy{path}"), 403)
    # The signature covers the whole path: another size under the same signature is refused.
    other = path.replace("100:100", "101:100")
    reused = imgproxy.signature(path, KEY, SALT)
    await _problem(await client.get(f"/imgproxy/{reused}{other}"), 403)


async def test_without_a_key_any_signature_is_accepted_but_not_an_option(served) -> None:
    client, photo = served
    response = await client.get(f"/imgproxy/anything-at-all/w:50/plain/{photo}")
    assert response.status == 200
    await _problem(await client.get(f"/imgproxy/w:50/plain/{photo}"), 403, "signature")


def test_the_docs_signed_url_passes_with_the_docs_key_and_fails_with_another() -> None:
    origin, key, salt, path, sig = SIGNATURES[1]
    settings = ImgproxyDialect(enabled=True, key=key, salt=salt)
    assert imgproxy.verify(f"/{sig}{path}", settings) == path, origin
    other = ImgproxyDialect(enabled=True, key=key, salt=b"pepper".hex())
    with pytest.raises(Forbidden):
        imgproxy.verify(f"/{sig}{path}", other)


# --- at the root, beside the native URLs -------------------------------------------------------


async def test_served_at_the_root_beside_native_urls(app_client) -> None:
    client = await app_client(dialects={"imgproxy": {"enabled": True, "prefix": ""}})
    photo = await _store(client, gradient(400, 300).jpegsave_buffer(Q=90))
    dialect = await client.get(f"/insecure/rs:fit:100:100/plain/{photo}@png")
    assert dialect.status == 200, await dialect.text()
    assert decode(await dialect.read()).width == 100
    encoded = await client.get(f"/_/w:80/{b64(photo)}.webp")
    assert encoded.status == 200 and encoded.content_type == "image/webp"
    sig = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()  # any 43 characters
    assert (await client.get(f"/{sig}/w:70/plain/{photo}")).status == 200
    native = await client.get(f"/resize/50x/{photo}")
    assert native.status == 200 and decode(await native.read()).width == 50
    assert (await client.get(f"/{photo}")).status == 200
    assert (await client.get(f"/images/{photo}")).status == 200
    await _problem(await client.get("/nonsense/w:50/plain/x"), 400)  # native, not imgproxy
