"""JPEG XL output (SPEC §10): `fmt/jxl`, `{id}.jxl`, its encoder settings, `fmt/auto`, config.

Bodies are decoded with imagecodecs' own libjxl decoder, not with the service's code path.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import pyvips

from conftest import gradient, with_alpha
from proxy.config import ConfigError, from_mapping

PROBLEM = "application/problem+json"
SAFARI_ACCEPT = "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8"
CHROME_ACCEPT = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


async def upload(client, data: bytes) -> str:
    response = await client.put("/images", data=data)
    assert response.status in (200, 201), await response.text()
    return (await response.json())["id"]


async def jxl(response) -> np.ndarray:
    """The pixels of a JPEG XL response, checked to be one."""
    assert response.status == 200, await response.text()
    assert response.content_type == "image/jxl"
    body = await response.read()
    assert imagecodecs.jpegxl_check(body)
    return imagecodecs.jpegxl_decode(body)


async def problem(response, *words: str) -> dict:
    assert response.status == 400, await response.text()
    assert response.content_type == PROBLEM
    detail = (await response.json())["detail"]
    for word in words:
        assert word in detail
    return detail


def red_and_white(width: int = 200, height: int = 100) -> bytes:
    """Left half red, right half white: where each lands is easy to check after a resize."""
    left = (pyvips.Image.xyz(width, height)[0] < width // 2).ifthenelse([255, 0, 0], [255] * 3)
    return left.cast("uchar").copy(interpretation="srgb").pngsave_buffer()


def noisy(width: int, height: int) -> pyvips.Image:
    noise = pyvips.Image.gaussnoise(width, height, sigma=20, mean=0)
    return (gradient(width, height) + noise).cast("uchar").copy(interpretation="srgb")


def pixels_of(image: pyvips.Image) -> np.ndarray:
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype=np.uint8,
        shape=(image.height, image.width, image.bands),
    )


# --- the format itself


async def test_fmt_jxl_is_a_jpeg_xl_of_the_requested_size_and_pixels(client) -> None:
    image_id = await upload(client, red_and_white())
    pixels = await jxl(await client.get(f"/resize/100x/fmt/jxl/{image_id}"))
    assert pixels.shape == (50, 100, 3)
    left, right = pixels[10:40, 5:40].reshape(-1, 3), pixels[10:40, 60:95].reshape(-1, 3)
    assert np.abs(left.astype(int) - [255, 0, 0]).max() < 24
    assert np.abs(right.astype(int) - [255, 255, 255]).max() < 24


async def test_jxl_suffix_on_derived_urls_and_on_the_storage_api(client) -> None:
    image_id = await upload(client, red_and_white())
    for path in (f"/images/{image_id}.jxl", f"/{image_id}.jxl", f"/resize/50x/{image_id}.jxl"):
        response = await client.get(path)
        pixels = await jxl(response)
        assert pixels.shape[:2] == ((25, 50) if "resize" in path else (100, 200)), path
    download = await client.get(f"/download/poster/fmt/jxl/{image_id}")
    await jxl(download)
    assert download.headers["Content-Disposition"] == 'attachment; filename="poster.jxl"'
    await problem(await client.get(f"/fmt/webp/{image_id}.jxl"))


async def test_quality_changes_the_bytes(client) -> None:
    image_id = await upload(client, noisy(320, 240).pngsave_buffer())
    sizes = []
    for quality in (30, 90):
        response = await client.get(f"/q/{quality}/fmt/jxl/{image_id}")
        assert (await jxl(response)).shape == (240, 320, 3)
        sizes.append(int(response.headers["Content-Length"]))
    assert sizes[0] * 2 < sizes[1]


async def test_configured_quality_and_effort_change_the_bytes_and_the_etag(app_client) -> None:
    data = noisy(320, 240).pngsave_buffer()
    answers = set()
    for output in ({}, {"quality": {"jxl": 40}}, {"effort": {"jxl": 7}}):
        client = await app_client(output=output)
        image_id = await upload(client, data)
        response = await client.get(f"/fmt/jxl/{image_id}")
        await jxl(response)
        answers.add((await response.read(), response.headers["ETag"]))
    assert len({body for body, _ in answers}) == 3
    assert len({etag for _, etag in answers}) == 3


async def test_lossless_round_trips_exactly(client) -> None:
    image = noisy(160, 120)
    image_id = await upload(client, image.pngsave_buffer())
    pixels = await jxl(await client.get(f"/lossless/fmt/jxl/{image_id}"))
    assert np.array_equal(pixels, pixels_of(image))
    lossy = await jxl(await client.get(f"/fmt/jxl/{image_id}"))
    assert not np.array_equal(lossy, pixels_of(image))


async def test_alpha_is_kept(client) -> None:
    image_id = await upload(client, with_alpha(gradient(120, 80)).pngsave_buffer())
    pixels = await jxl(await client.get(f"/fmt/jxl/{image_id}"))
    assert pixels.shape == (80, 120, 4)
    assert pixels[:, :50, 3].min() > 240  # the opaque half
    assert pixels[:, 70:, 3].max() < 16  # the transparent half
    # Margins of a transparent image stay transparent, as in PNG, WebP and AVIF.
    padded = await jxl(await client.get(f"/pad/160x80/fmt/jxl/{image_id}"))
    assert padded.shape == (80, 160, 4) and padded[:, :15, 3].max() < 16


async def test_grey_stays_one_channel(client) -> None:
    image_id = await upload(client, red_and_white())
    pixels = await jxl(await client.get(f"/grayscale/fmt/jxl/{image_id}"))
    assert pixels.shape == (100, 200)
    assert abs(int(pixels[50, 150]) - 255) < 16 and int(pixels[50, 50]) < 128


async def test_an_animation_becomes_its_first_frame(client, gif_bytes) -> None:
    image_id = await upload(client, gif_bytes)
    first = pyvips.Image.new_from_buffer(gif_bytes, "")
    pixels = await jxl(await client.get(f"/fmt/jxl/{image_id}"))
    assert pixels.shape[:2] == (first.height, first.width)


async def test_maxbytes_searches_the_jxl_quality(client) -> None:
    image_id = await upload(client, noisy(320, 240).pngsave_buffer())
    full = await client.get(f"/fmt/jxl/{image_id}")
    budget = int(full.headers["Content-Length"]) // 2
    fitted = await client.get(f"/maxbytes/{budget}/fmt/jxl/{image_id}")
    assert (await jxl(fitted)).shape == (240, 320, 3)
    assert int(fitted.headers["Content-Length"]) <= budget
    assert "ProgImage-Over-Budget" not in fitted.headers
    # Even quality 10 of this much noise is over the smallest budget: said, not hidden.
    big = await upload(client, noisy(640, 480).pngsave_buffer())
    over = await client.get(f"/maxbytes/1024/fmt/jxl/{big}")
    await jxl(over)
    assert int(over.headers["ProgImage-Over-Budget"]) > 1024


async def test_info_names_the_format(client) -> None:
    image_id = await upload(client, red_and_white())
    response = await client.get(f"/resize/100x/info/fmt/jxl/{image_id}")
    assert response.status == 200
    body = await response.json()
    assert (body["format"], body["width"], body["height"]) == ("jxl", 100, 50)


# --- what cannot be honoured: 400, never silently dropped


@pytest.mark.parametrize(
    ("path", "segment"),
    [("meta/keep/fmt/jxl", "meta/keep"), ("meta/copyright/fmt/jxl", "meta/copyright"),
     ("palette/16/fmt/jxl", "palette/16")],
)  # fmt: skip
async def test_settings_jxl_cannot_honour_are_refused(client, path, segment) -> None:
    image_id = await upload(client, red_and_white())
    detail = await problem(await client.get(f"/{path}/{image_id}"), segment, "jxl")
    assert detail.startswith(f"'{segment}'")


async def test_a_server_that_keeps_metadata_refuses_jxl_unless_the_url_strips(app_client) -> None:
    client = await app_client(output={"metadata": "copyright"})
    image_id = await upload(client, red_and_white())
    await problem(await client.get(f"/fmt/jxl/{image_id}"), "fmt/jxl", "meta/strip")
    await problem(await client.get(f"/images/{image_id}.jxl"), "meta/strip")
    await jxl(await client.get(f"/meta/strip/fmt/jxl/{image_id}"))


# --- fmt/auto


@pytest.mark.parametrize(
    ("auto_formats", "accept", "mime"),
    [
        # The default list never answers JPEG XL, whatever the client takes.
        (None, SAFARI_ACCEPT, "image/avif"),
        (None, "image/jxl", "image/png"),
        (["jxl", "avif", "webp"], SAFARI_ACCEPT, "image/jxl"),
        (["jxl", "avif", "webp"], "image/jxl", "image/jxl"),
        (["jxl", "avif", "webp"], CHROME_ACCEPT, "image/avif"),
        (["jxl", "avif", "webp"], "image/jxl;q=0, image/webp", "image/webp"),
        (["avif", "jxl", "webp"], SAFARI_ACCEPT, "image/avif"),
        (["avif", "jxl", "webp"], "image/jxl, image/webp", "image/jxl"),
    ],
)
async def test_fmt_auto_offers_jxl_only_when_configured(
    app_client, auto_formats, accept, mime
) -> None:
    client = await app_client(output={"auto_formats": auto_formats} if auto_formats else {})
    image_id = await upload(client, red_and_white())
    response = await client.get(f"/resize/100x/fmt/auto/{image_id}", headers={"Accept": accept})
    assert response.status == 200, await response.text()
    assert response.content_type == mime
    assert response.headers["Vary"] == "Accept"
    if mime == "image/jxl":
        assert (await jxl(response)).shape == (50, 100, 3)


async def test_negotiated_jxl_and_avif_are_separate_variants(app_client) -> None:
    client = await app_client(output={"auto_formats": ["jxl", "avif", "webp"]})
    image_id = await upload(client, red_and_white())
    url = f"/resize/100x/fmt/auto/{image_id}"
    jxl_reply = await client.get(url, headers={"Accept": SAFARI_ACCEPT})
    avif_reply = await client.get(url, headers={"Accept": CHROME_ACCEPT})
    assert jxl_reply.headers["ETag"] != avif_reply.headers["ETag"]
    explicit = await client.get(f"/resize/100x/fmt/jxl/{image_id}")
    assert await explicit.read() == await jxl_reply.read()


# --- configuration


def test_config_defaults_and_accepted_values() -> None:
    output = from_mapping({}).output
    assert output.auto_formats == ("avif", "webp")
    assert (output.quality.jxl, output.effort.jxl) == (75, 3)
    output = from_mapping(
        {"output": {"format": "jxl", "auto_formats": ["jxl", "webp"], "effort": {"jxl": 7}}}
    ).output
    assert (output.format, output.auto_formats, output.effort.jxl) == ("jxl", ("jxl", "webp"), 7)


@pytest.mark.parametrize(
    ("output", "key"),
    [({"auto_formats": ["jxl", "heic"]}, "output.auto_formats"),
     ({"auto_formats": ["jpeg"]}, "output.auto_formats"),
     ({"auto_formats": ["JXL"]}, "output.auto_formats"),
     ({"quality": {"jxl": 0}}, "output.quality.jxl"),
     ({"quality": {"jxl": 101}}, "output.quality.jxl"),
     ({"effort": {"jxl": 0}}, "output.effort.jxl"),
     ({"effort": {"jxl": 11}}, "output.effort.jxl"),
     ({"format": "jxll"}, "output.format")],
)  # fmt: skip
def test_config_refuses_bad_jxl_settings(output: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        from_mapping({"output": output})


def test_unknown_auto_format_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="avif, webp, jxl") as raised:
        from_mapping({"output": {"auto_formats": ["avif", "png"]}})
    assert "'png'" in str(raised.value)


@pytest.mark.parametrize(
    "output",
    [{"metadata": "copyright", "auto_formats": ["jxl", "avif"]},
     {"metadata": "keep", "format": "jxl"}],
)  # fmt: skip
def test_config_refuses_jxl_by_default_where_metadata_is_kept(output: dict) -> None:
    with pytest.raises(ConfigError, match="jxl carries no metadata"):
        from_mapping({"output": output})


def test_auto_formats_from_the_environment() -> None:
    cfg = from_mapping({}, {"PROGIMAGE_OUTPUT__AUTO_FORMATS": "[jxl, avif, webp]"})
    assert cfg.output.auto_formats == ("jxl", "avif", "webp")
