"""The thumbor dialect: its grammar parsed into native operations (the table says which native
URL each thumbor path means), its signatures, its refusals, and its routes beside the native
ones. tests/test_thumbor_peer.py compares the images with a real thumbor."""

from __future__ import annotations

import pytest

from conftest import decode
from proxy import urls
from proxy.dialects import thumbor
from proxy.errors import BadRequest, Forbidden
from proxy.urls import SourceRef

KEY = "my-security-key"

# thumbor path (after unsafe/ or the signature) -> the native URL it means, before the source.
GRAMMAR = [
    ("300x200/a.com/x.jpg", "/fill/300x200/enlarge/"),
    ("fit-in/300x200/a.com/x.jpg", "/resize/300x200/"),
    ("fit-in/300x0/a.com/x.jpg", "/resize/300x/"),
    ("300x0/a.com/x.jpg", "/resize/300x/enlarge/"),
    ("0x0/a.com/x.jpg", "/"),
    ("a.com/x.jpg", "/"),
    ("-300x-200/a.com/x.jpg", "/flip/flop/fill/300x200/enlarge/"),
    ("-0x-0/a.com/x.jpg", "/flip/flop/"),
    ("300x200/left/top/a.com/x.jpg", "/fill/300x200/gravity/northwest/enlarge/"),
    ("-300x200/left/a.com/x.jpg", "/flop/fill/300x200/gravity/east/enlarge/"),
    ("300x200/right/bottom/a.com/x.jpg", "/fill/300x200/gravity/southeast/enlarge/"),
    ("300x200/smart/a.com/x.jpg", "/fill/300x200/gravity/smart/enlarge/"),
    ("10x20:110x220/a.com/x.jpg", "/crop/10,20,100,200/"),
    ("0x0:0x0/300x200/a.com/x.jpg", "/fill/300x200/enlarge/"),  # libthumbor's "no crop"
    ("trim/a.com/x.jpg", "/trim/1/"),
    ("trim:top-left:30/a.com/x.jpg", "/trim/30/"),
    ("300x200/filters:stretch()/a.com/x.jpg", "/stretch/300x200/enlarge/"),
    ("stretch/300x200/a.com/x.jpg", "/stretch/300x200/enlarge/"),  # imagor's path segment
    ("fit-in/300x200/filters:upscale()/a.com/x.jpg", "/resize/300x200/enlarge/"),
    ("fit-in/300x200/filters:fill(red)/a.com/x.jpg", "/pad/300x200/bg/ff0000/"),
    ("fit-in/300x200/filters:fill(transparent)/a.com/x.jpg", "/pad/300x200/"),
    # rotate is a filter in thumbor (after the resize, counter-clockwise): natively it comes
    # first and turns clockwise, so the box, the flips and the anchor turn with it.
    ("300x200/filters:rotate(90)/a.com/x.jpg", "/rotate/270/fill/200x300/enlarge/"),
    ("300x200/right/filters:rotate(90)/a.com/x.jpg",
     "/rotate/270/fill/200x300/gravity/north/enlarge/"),
    ("-300x200/filters:rotate(270)/a.com/x.jpg", "/rotate/90/flip/fill/200x300/enlarge/"),
    ("300x200/filters:rotate(180)/a.com/x.jpg", "/rotate/180/fill/300x200/enlarge/"),
    ("filters:format(webp):quality(40)/a.com/x.jpg", "/q/40/fmt/webp/"),
    ("filters:format(jpg)/a.com/x.jpg", "/fmt/jpeg/"),
    ("filters:format(jxl)/a.com/x.jpg", "/fmt/jxl/"),  # imagor's
    ("filters:blur(4)/a.com/x.jpg", "/blur/4/"),
    ("filters:blur(4,2)/a.com/x.jpg", "/blur/2/"),
    ("filters:sharpen(2,1.5,true)/a.com/x.jpg", "/sharpen/1.5/"),
    ("filters:grayscale()/a.com/x.jpg", "/grayscale/"),
    ("filters:brightness(30):contrast(-20)/a.com/x.jpg", "/brightness/30/contrast/-20/"),
    ("filters:saturation(0.5)/a.com/x.jpg", "/saturation/-50/"),
    ("filters:hue(400)/a.com/x.jpg", "/hue/40/"),
    ("filters:round_corner(20,255,0,0)/a.com/x.jpg", "/round/20/bg/ff0000/"),
    ("filters:round_corner(20|20,0,0,0,1)/a.com/x.jpg", "/round/20/"),
    ("filters:background_color(00ff00)/a.com/x.jpg", "/bg/00ff00/"),
    ("filters:max_bytes(20000)/a.com/x.jpg", "/maxbytes/20000/"),
    ("filters:strip_exif():strip_icc()/a.com/x.jpg", "/meta/strip/"),
    ("filters:max_age(60)/a.com/x.jpg", "/"),
    (f"filters:watermark({'a' * 32},-10,-10,50)/a.com/x.jpg",
     f"/watermark/{'a' * 32},southeast,0.5/"),
    (f"filters:watermark({'a' * 32},repeat,repeat,0,20)/a.com/x.jpg",
     f"/watermark/{'a' * 32},tile,1,0.2/"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "native"), GRAMMAR)
def test_thumbor_paths_mean_these_native_operations(path: str, native: str) -> None:
    parsed = thumbor.parse(path)
    options = urls.finish(thumbor.fields(parsed, 8192), urls.DEFAULT)
    assert urls.build(options, SourceRef("url", "SRC")) == native + "SRC"
    assert parsed.image == "a.com/x.jpg"


# What depends on the source's own size (here 512x341, landscape): computed as thumbor does.
SIZED = [
    ("adaptive-fit-in/200x300/a.com/x.jpg", "/resize/300x200/"),  # turned to the landscape
    ("adaptive-fit-in/300x200/a.com/x.jpg", "/resize/300x200/"),
    ("full-fit-in/300x300/a.com/x.jpg", "/stretch/450x300/enlarge/"),  # covers the box
    ("adaptive-full-fit-in/200x300/a.com/x.jpg", "/stretch/300x200/enlarge/"),
    ("origx100/a.com/x.jpg", "/fill/512x100/enlarge/"),
    ("10x10:110x60/origx0/a.com/x.jpg", "/crop/10,10,100,50/resize/100x/enlarge/"),
    ("1000x100/filters:no_upscale()/a.com/x.jpg", "/fill/512x100/enlarge/"),
    ("300x200/filters:focal(100x100:200x200)/a.com/x.jpg",
     "/fill/300x200/gravity/0.293,0.4399/enlarge/"),
    ("-300x200/filters:focal(100x100:200x200)/a.com/x.jpg",
     "/flop/fill/300x200/gravity/0.707,0.4399/enlarge/"),
    ("filters:proportion(0.5)/a.com/x.jpg", "/stretch/256x170/enlarge/"),
    ("fit-in/300x300/filters:proportion(0.5)/a.com/x.jpg", "/stretch/150x100/enlarge/"),
    ("300x200/filters:proportion(0.5)/a.com/x.jpg", "/fill/150x100/enlarge/"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "native"), SIZED)
def test_what_depends_on_the_source_size_is_computed_from_it(path: str, native: str) -> None:
    with pytest.raises(thumbor.NeedsSize):
        thumbor.parse(path)
    options = urls.finish(thumbor.fields(thumbor.parse(path, (512, 341)), 8192), urls.DEFAULT)
    assert urls.build(options, SourceRef("url", "SRC")) == native + "SRC"


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("debug/300x200/a.com/x.jpg", "debug"),
        ("trim:bottom-right/a.com/x.jpg", "trim:bottom-right"),
        ("trim/10x10:50x50/a.com/x.jpg", "trim with a manual crop"),
        ("filters:noise(10)/a.com/x.jpg", "filters:noise"),
        ("filters:rotate(45)/a.com/x.jpg", "rotate(45)"),
        ("filters:format(heic)/a.com/x.jpg", "format(heic)"),
        ("filters:format(bmp)/a.com/x.jpg", "format(bmp)"),
        ("filters:fill(blur)/a.com/x.jpg", "fill(blur)"),
        ("filters:saturation(-1)/a.com/x.jpg", "saturation(-1)"),
        ("filters:round_corner(10|20,0,0,0)/a.com/x.jpg", "round_corner(10|20)"),
        ("filters:watermark(https://a.com/w.png,0,0,0)/a.com/x.jpg", "watermark("),
        ("filters:blur(x)/a.com/x.jpg", "blur(x)"),
        ("trim/adaptive-fit-in/300x200/a.com/x.jpg", "trim with adaptive-fit-in"),
        ("10x10:50x50/300x200/filters:focal(1x1:20x20)/a.com/x.jpg", "focal with a manual crop"),
        ("filters:proportion(2)/a.com/x.jpg", "proportion(2)"),
        ("fit-in/300x200/filters:fill(red):proportion(0.5)/a.com/x.jpg", "proportion with fill"),
        ("fit-in/30x20/filters:fill(red)/a.com/x.jpg".replace("30x20", "30x0"), "fill"),
    ],
)
def test_what_thumbor_names_and_progimage_cannot_do_is_refused_by_name(path, named) -> None:
    with pytest.raises(BadRequest) as caught:
        thumbor.fields(thumbor.parse(path, (512, 341)), 8192)
    assert named in caught.value.detail


def test_native_ranges_hold_and_name_the_thumbor_filter() -> None:
    with pytest.raises(BadRequest, match="maxbytes/100"):
        thumbor.fields(thumbor.parse("filters:max_bytes(100)/a.com/x.jpg"), 8192)
    with pytest.raises(BadRequest, match="q/400"):
        thumbor.fields(thumbor.parse("filters:quality(400)/a.com/x.jpg"), 8192)


def test_signature_matches_thumbors_documented_vector() -> None:
    # thumbor/thumbor docs/libraries.rst, "Scenario 1 - Signing of a known url results"
    # (commit f686b582): key 'my-security-key', 300x200 of my.server.com/some/path/to/image.jpg
    rest = "300x200/my.server.com/some/path/to/image.jpg"
    assert thumbor.sign(KEY, rest) == "8ammJH8D-7tXy6kU3lTvoXlhu4o="
    # The same document's Scenario 3 (meta) and Scenario 6 (filters).
    assert thumbor.sign(KEY, "meta/my.server.com/some/path/to/image.jpg") == (
        "Ps3ORJDqxlSQ8y00T29GdNAh2CY="
    )
    assert (
        thumbor.sign(
            KEY, "filters:brightness(10):contrast(20)/my.server.com/some/path/to/image.jpg"
        )
        == "ZZtPCw-BLYN1g42Kh8xTcRs0Qls="
    )


def test_signature_rules() -> None:
    keyed = thumbor.ThumborDialect(enabled=True, key=KEY)
    rest = "300x200/my.server.com/some/path/to/image.jpg"
    assert thumbor.check(f"/8ammJH8D-7tXy6kU3lTvoXlhu4o=/{rest}", keyed) == rest
    assert thumbor.check(f"/8ammJH8D-7tXy6kU3lTvoXlhu4o%3D/{rest}", keyed) == rest
    for bad in (
        f"/8ammJH8D-7tXy6kU3lTvoXlhu4p=/{rest}",
        f"/unsafe/{rest}",
        "/8ammJH8D-7tXy6kU3lTvoXlhu4o=/300x201/my.server.com/some/path/to/image.jpg",
    ):
        with pytest.raises(Forbidden):
            thumbor.check(bad, keyed)
    open_door = thumbor.ThumborDialect(enabled=True, key=KEY, allow_unsafe=True)
    assert thumbor.check(f"/unsafe/{rest}", open_door) == rest
    keyless = thumbor.ThumborDialect(enabled=True)
    assert thumbor.check(f"/unsafe/{rest}", keyless) == rest
    with pytest.raises(Forbidden):
        thumbor.check(f"/8ammJH8D-7tXy6kU3lTvoXlhu4o=/{rest}", keyless)


# --- over HTTP, in the app


def _dialect(**settings) -> dict:
    return {"dialects": {"thumbor": {"enabled": True, **settings}}}


async def _upload(client, body: bytes) -> str:
    response = await client.put("/images", data=body)
    assert response.status == 201
    return (await response.json())["id"]


async def test_stored_ids_under_the_prefix_beside_native_urls(app_client, photo_bytes) -> None:
    client = await app_client(**_dialect())
    image_id = await _upload(client, photo_bytes)
    response = await client.get(f"/thumbor/unsafe/-120x80/filters:format(png)/{image_id}")
    assert response.status == 200
    assert response.content_type == "image/png"
    image = decode(await response.read())
    assert (image.width, image.height) == (120, 80)
    # The same image as the native URL it means, under the native ETag.
    native = await client.get(f"/flop/fill/120x80/enlarge/fmt/png/{image_id}")
    assert native.status == 200
    assert native.headers["ETag"] == response.headers["ETag"]
    assert (await client.get(f"/resize/50x50/{image_id}")).status == 200


async def test_served_at_the_root_the_native_urls_still_work(app_client, photo_bytes) -> None:
    client = await app_client(**_dialect(prefix=""))
    image_id = await _upload(client, photo_bytes)
    thumbor_url = await client.get(f"/unsafe/fit-in/100x100/{image_id}")
    native_url = await client.get(f"/resize/100x100/{image_id}")
    assert thumbor_url.status == native_url.status == 200
    assert thumbor_url.headers["ETag"] == native_url.headers["ETag"]
    assert (await client.get(f"/images/{image_id}")).status == 200


async def test_signed_and_refused_over_http(app_client, photo_bytes) -> None:
    client = await app_client(signing={"key": "native-key"}, **_dialect(key=KEY))
    image_id = await _upload(client, photo_bytes)
    rest = f"60x40/{image_id}"
    ok = await client.get(f"/thumbor/{thumbor.sign(KEY, rest)}/{rest}")
    assert ok.status == 200
    assert decode(await ok.read()).width == 60
    for path in (
        f"/thumbor/unsafe/{rest}",
        f"/thumbor/{thumbor.sign('other', rest)}/{rest}",
        f"/thumbor/{thumbor.sign(KEY, rest)}/61x40/{image_id}",
    ):
        refused = await client.get(path)
        assert refused.status == 403, path
        assert refused.content_type == "application/problem+json"


async def test_unsupported_over_http_is_a_problem_naming_it(app_client, photo_bytes) -> None:
    client = await app_client(**_dialect())
    image_id = await _upload(client, photo_bytes)
    response = await client.get(f"/thumbor/unsafe/filters:noise(10)/{image_id}")
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert "filters:noise" in (await response.json())["detail"]


async def test_max_age_sets_cache_control(app_client, photo_bytes) -> None:
    client = await app_client(**_dialect())
    image_id = await _upload(client, photo_bytes)
    response = await client.get(f"/thumbor/unsafe/filters:max_age(90)/{image_id}")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=90"


async def test_meta_is_thumbors_json(app_client, photo_bytes) -> None:
    client = await app_client(**_dialect())
    image_id = await _upload(client, photo_bytes)
    response = await client.get(f"/thumbor/unsafe/meta/10x10:210x110/-100x0/{image_id}")
    assert response.status == 200
    body = (await response.json())["thumbor"]
    assert body["target"] == {"width": 100, "height": 50}
    assert body["operations"] == [
        {"type": "crop", "left": 10, "top": 10, "right": 210, "bottom": 110},
        {"type": "resize", "width": 100, "height": 50},
        {"type": "flip_horizontally"},
    ]
