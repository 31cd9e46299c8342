"""Previews: large originals keep a small working copy that small renders read instead."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import pyvips

from conftest import IMAGES, decode, with_alpha
from proxy import imaging, metadata, previews


def upscaled(name: str, width: int) -> pyvips.Image:
    """A real photograph at camera size (lanczos up), so decodes cost what phones' files do."""
    photo = pyvips.Image.new_from_file(str(IMAGES / name))
    return photo.resize(width / photo.width).copy_memory()


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    return upscaled("photo.jpg", 3000).jpegsave_buffer(Q=88)  # 3000x1998


@pytest.fixture(scope="module")
def large_png_alpha() -> bytes:
    return with_alpha(upscaled("photo.jpg", 2400)).pngsave_buffer(compression=1)


def preview_file(root: Path, image_id: str) -> Path:
    return root / "originals" / image_id[:2] / f"{image_id}.preview"


async def upload(client, body: bytes) -> str:
    response = await client.put("/images", data=io.BytesIO(body))
    assert response.status in (200, 201), await response.text()
    return (await response.json())["id"]


def red_like(path: Path) -> bytes:
    """A solid red image of the preview's size and kind: renders that read it turn red."""
    preview = pyvips.Image.new_from_file(str(path))
    red = (preview.new_from_image([255, 0, 0])).copy(interpretation="srgb")
    return red.jpegsave_buffer(Q=90)


def mean_rgb(image: pyvips.Image) -> list[float]:
    return [image[i].avg() for i in range(3)]


async def test_large_upload_keeps_a_small_upright_srgb_preview(client, config, large_jpeg) -> None:
    image_id = await upload(client, large_jpeg)
    path = preview_file(Path(config.storage.path), image_id)
    preview = pyvips.Image.new_from_file(str(path))
    # 3000 px wide: a 1/2 DCT decode would be 1500 > EDGE, so it is resampled to EDGE.
    assert (preview.width, preview.height) == (1024, 682)
    assert preview.get("vips-loader").startswith("jpegload") and preview.bands == 3
    assert path.stat().st_size < len(large_jpeg) / 4


async def test_small_renders_read_the_preview_and_large_ones_the_original(
    client, config, large_jpeg
) -> None:
    image_id = await upload(client, large_jpeg)
    path = preview_file(Path(config.storage.path), image_id)
    path.write_bytes(red_like(path))  # now any render that reads the preview comes out red

    small = decode(await (await client.get(f"/resize/300x300/{image_id}")).read())
    assert (small.width, small.height) == (300, 200)
    assert mean_rgb(small)[0] > 250 and mean_rgb(small)[1] < 5

    # Over half the preview's size (1024 / 2 = 512): from the original, the photo's colours.
    large = decode(await (await client.get(f"/resize/600x600/{image_id}")).read())
    assert (large.width, large.height) == (600, 400)
    assert mean_rgb(large)[1] > 40
    # A crop names pixels of the original: never from the preview, however small the output.
    response = await client.get(f"/crop/100,100,900,600/resize/90x60/{image_id}")
    cropped = decode(await response.read())
    assert (cropped.width, cropped.height) == (90, 60) and mean_rgb(cropped)[1] > 40
    # No resize at all: the original's own pixels.
    same = decode(await (await client.get(f"/{image_id}.webp")).read())
    assert (same.width, same.height) == (3000, 1998) and mean_rgb(same)[1] > 40


async def test_renders_from_the_preview_are_as_faithful_as_renders_from_the_original(
    app_client, tmp_path, large_jpeg, large_png_alpha
) -> None:
    """Against a reference made from the fully decoded original (no shrink-on-load at all),
    the render from the preview is no further off than the render from the original."""
    kept = await app_client()
    plain = await app_client(storage={"previews": False, "path": str(tmp_path / "plain")})
    for body, path, crop in (
        (large_jpeg, "/fill/200x200/{id}.jpg", "centre"),
        (large_jpeg, "/resize/400x400/fmt/webp/{id}", "none"),
        (large_png_alpha, "/resize/300x300/fmt/webp/{id}", "none"),
    ):
        outputs = []
        for client in (kept, plain):
            image_id = await upload(client, body)
            response = await client.get(path.format(id=image_id))
            assert response.status == 200
            outputs.append(decode(await response.read()))
        from_preview, from_original = outputs
        full = pyvips.Image.new_from_buffer(body, "")
        reference = full.thumbnail_image(
            from_original.width, height=from_original.height, crop=crop, size="force"
        )
        assert (from_preview.width, from_preview.height, from_preview.bands) == (
            reference.width, reference.height, reference.bands,
        )  # fmt: skip
        # What a viewer sees: the colour under fully transparent pixels is not part of it.
        seen = [x.premultiply() if x.hasalpha() else x for x in (from_preview, from_original)]
        reference = reference.premultiply() if reference.hasalpha() else reference
        off_preview = (seen[0] - reference).abs().avg()
        off_original = (seen[1] - reference).abs().avg()
        assert off_preview <= off_original + 0.5, (path, off_preview, off_original)
        assert (seen[0] - seen[1]).abs().avg() < 5.0, path


@pytest.mark.parametrize("kind", ["grey", "rgb16", "cmyk"])
async def test_other_colour_spaces_render_alike_from_preview_and_original(
    app_client, tmp_path, kind
) -> None:
    """The preview is 8-bit sRGB whatever the original: the output matches the original's
    render (which converts to 8-bit sRGB too) in size, bands and colour."""
    photo = upscaled("photo.jpg", 2400)
    body = {
        "grey": lambda: photo.colourspace("b-w").jpegsave_buffer(Q=85),
        "rgb16": lambda: photo.colourspace("rgb16").pngsave_buffer(compression=1),
        "cmyk": lambda: photo.icc_transform("cmyk").jpegsave_buffer(Q=85),
    }[kind]()
    kept = await app_client()
    plain = await app_client(storage={"previews": False, "path": str(tmp_path / "plain")})
    outputs = []
    for client in (kept, plain):
        image_id = await upload(client, body)
        response = await client.get(f"/resize/300x300/fmt/jpeg/{image_id}")
        assert response.status == 200
        outputs.append(decode(await response.read()))
    a, b = outputs
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands) == (300, 200, 3)
    assert (a - b).abs().avg() < 4.0


async def test_an_opaque_alpha_channel_survives_the_preview(app_client, tmp_path) -> None:
    """WebP drops an alpha channel that is 255 everywhere: renders from such a preview still
    have the original's four bands, and `pad` margins stay transparent."""
    photo = upscaled("photo.jpg", 2400)
    body = photo.bandjoin_const([255]).copy(interpretation="srgb").pngsave_buffer(compression=1)
    kept = await app_client()
    plain = await app_client(storage={"previews": False, "path": str(tmp_path / "plain")})
    for path in ("/pad/300x300/fmt/png/{id}", "/resize/300x300/fmt/png/{id}"):
        outputs = []
        for client in (kept, plain):
            response = await client.get(path.format(id=await upload(client, body)))
            assert response.status == 200
            outputs.append(decode(await response.read()))
        a, b = outputs
        assert a.bands == b.bands == 4, path
        assert (a.width, a.height) == (b.width, b.height)
        if path.startswith("/pad"):  # 300x200 photo in a 300x300 box: transparent bands
            assert a[3].crop(0, 0, 300, 40).max() == 0 and a[3].crop(0, 60, 300, 180).min() == 255


async def test_alpha_originals_keep_their_alpha_in_the_preview(
    client, config, large_png_alpha
) -> None:
    image_id = await upload(client, large_png_alpha)
    preview = pyvips.Image.new_from_file(str(preview_file(Path(config.storage.path), image_id)))
    assert preview.get("vips-loader").startswith("webpload") and preview.hasalpha()
    # The right half of the original is fully transparent: so is the preview's.
    assert preview[3].crop(preview.width * 3 // 4, 0, 10, preview.height).max() == 0
    assert preview[3].crop(preview.width // 4, 0, 10, preview.height).min() == 255


async def test_orientation_is_applied_in_the_preview(client, config) -> None:
    stored = upscaled("portrait-exif6.jpg", 2400)  # stored 2400x1800, displayed 1800x2400
    stored = stored.copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)
    image_id = await upload(client, stored.jpegsave_buffer(Q=85))
    preview = pyvips.Image.new_from_file(str(preview_file(Path(config.storage.path), image_id)))
    assert (preview.width, preview.height) == (768, 1024)  # upright
    assert not preview.get_typeof("orientation") or preview.get("orientation") == 1
    out = decode(await (await client.get(f"/resize/300x300/{image_id}")).read())
    assert (out.width, out.height) == (225, 300)


async def test_a_truncated_large_upload_is_refused_and_leaves_nothing(
    client, config, large_jpeg
) -> None:
    """The preview's decode is the upload's integrity check: cut short, it is a 422, and
    neither the original nor a preview or record is left behind."""
    response = await client.put("/images", data=io.BytesIO(large_jpeg[: len(large_jpeg) * 2 // 3]))
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    originals = Path(config.storage.path) / "originals"
    assert not originals.exists() or not any(originals.rglob("*"))
    tmp = Path(config.storage.path) / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())


async def test_small_originals_and_animations_get_no_preview(
    client, config, photo_bytes, gif_bytes
) -> None:
    for body in (photo_bytes, gif_bytes):
        image_id = await upload(client, body)
        assert not preview_file(Path(config.storage.path), image_id).exists()


async def test_previews_off_keeps_none(app_client, make_config, large_jpeg) -> None:
    client = await app_client(storage={"previews": False})
    image_id = await upload(client, large_jpeg)
    root = Path(make_config().storage.path)
    assert (root / "originals" / image_id[:2] / image_id).is_file()
    assert not preview_file(root, image_id).exists()


async def test_a_broken_preview_falls_back_to_the_original(client, config, large_jpeg) -> None:
    image_id = await upload(client, large_jpeg)
    path = preview_file(Path(config.storage.path), image_id)
    whole = path.read_bytes()
    # Garbage, then a preview cut short: its header reads, its pixels do not.
    for width, damaged in ((300, b"\xff\xd8\xff not a jpeg"), (270, whole[: len(whole) // 2])):
        path.write_bytes(damaged)
        response = await client.get(f"/resize/{width}x{width}/{image_id}")  # not a cache hit
        assert response.status == 200
        out = decode(await response.read())
        assert out.width == width and mean_rgb(out)[1] > 40


async def test_delete_removes_the_preview(client, config, large_jpeg) -> None:
    image_id = await upload(client, large_jpeg)
    path = preview_file(Path(config.storage.path), image_id)
    assert path.is_file()
    assert (await client.delete(f"/images/{image_id}")).status == 204
    assert not path.exists()
    assert (await client.get(f"/resize/100x100/{image_id}")).status == 404


def test_the_hash_taken_from_the_preview_is_the_hash_of_the_original(large_jpeg) -> None:
    facts, preview = metadata.examine(large_jpeg, allow_svg=False, max_pixels=10**8)
    assert preview is not None and decode(preview).width == previews.EDGE
    # The hash as taken before previews existed: straight from the original's own decode.
    direct = metadata.perceptual_hash(metadata._thumbnail(large_jpeg, "truncated"))
    assert metadata.hamming(facts.phash, direct) <= 2


def test_eligibility_follows_size_frames_and_format() -> None:
    def header(fmt: str, width: int, height: int, pages: int = 1) -> imaging.Header:
        return imaging.Header(fmt, width, height, pages, 3, False, 1)

    assert previews.eligible(header("jpeg", 2048, 1000))
    assert previews.eligible(header("png", 1000, 4000))
    assert not previews.eligible(header("jpeg", 2047, 2047))
    assert not previews.eligible(header("webp", 4000, 3000, pages=8))
    assert not previews.eligible(header("svg", 4000, 3000))
    assert not previews.eligible(header("gif", 4000, 3000))
