"""The operations of part two, on decoded output: geometry, colour, output settings."""

from __future__ import annotations

import numpy as np
import pytest
import pyvips

from conftest import IMAGES, animated_gif, decode, gradient, with_alpha
from proxy import imaging, pipeline
from proxy.errors import BadRequest
from proxy.urls import parse_operations

QUALITY = {"jpeg": 80, "webp": 80, "avif": 60}


@pytest.fixture(autouse=True, scope="module")
def _libvips() -> None:
    imaging.configure()


def render(data: bytes, path: str, fmt: str | None = None) -> tuple[pipeline.Result, pyvips.Image]:
    options = parse_operations(path)
    result = pipeline.render(
        data, options, requested_format=fmt or options.format, quality=QUALITY, max_pixels=10**8
    )
    return result, decode(result.body)


def pixels(img: pyvips.Image) -> np.ndarray:
    return np.ndarray(
        buffer=img.write_to_memory(), dtype=np.uint8, shape=(img.height, img.width, img.bands)
    )


def solid(width: int, height: int, colour: list[int]) -> pyvips.Image:
    return (pyvips.Image.black(width, height) + colour).cast("uchar").copy(interpretation="srgb")


def png(img: pyvips.Image) -> bytes:
    return img.pngsave_buffer()


# --- geometry


def test_fractional_crop_is_resolved_against_the_upright_source() -> None:
    _, img = render(png(gradient(400, 300)), "/crop/0.25,0,0.5,1.0")
    assert (img.width, img.height) == (200, 300)
    # The left edge of the output is a quarter of the way across the source's red ramp.
    assert abs(img(0, 150)[0] - 255 * 100 / 399) <= 2


def test_fractions_and_pixels_mix() -> None:
    _, img = render(png(gradient(400, 300)), "/crop/10,0.5,100,0.25")
    assert (img.width, img.height) == (100, 75)
    assert abs(img(0, 0)[1] - 255 * 150 / 299) <= 2


def test_a_focal_point_lands_in_the_centre() -> None:
    # 400x300 scaled to cover 50x150 is 200x150: room to move sideways. The point x = 0.8
    # (red 204 on the gradient's ramp) comes to the middle of the output.
    _, img = render(png(gradient(400, 300)), "/fill/50x150/gravity/0.8,0.5/fmt/png")
    assert (img.width, img.height) == (50, 150)
    assert abs(int(pixels(img)[75, 25, 0]) - 204) <= 4
    _, centre = render(png(gradient(400, 300)), "/fill/50x150/fmt/png")
    assert abs(int(pixels(centre)[75, 25, 0]) - 128) <= 4


def test_a_focal_point_at_the_edge_crops_as_near_as_the_image_allows() -> None:
    _, img = render(png(gradient(400, 300)), "/fill/300x300/gravity/1.0,0.5")
    assert (img.width, img.height) == (300, 300)
    assert pixels(img)[150, -1, 0] > 250  # the right edge of the source is the right edge


def test_trim_removes_a_one_colour_border() -> None:
    inner = gradient(100, 50)
    bordered = inner.embed(20, 10, 140, 70, extend="background", background=[255, 255, 255])
    _, img = render(bordered.jpegsave_buffer(Q=95), "/trim/30")
    assert (img.width, img.height) == (100, 50)
    assert pixels(img)[0, 0, :3].max() < 140  # the border's white is gone from the corner


def test_trim_happens_before_the_resize() -> None:
    bordered = gradient(100, 50).embed(50, 50, 200, 150, extend="white")
    _, img = render(png(bordered), "/trim/10/resize/50x")
    assert (img.width, img.height) == (50, 25)


def test_an_image_that_is_all_border_is_left_as_it_is() -> None:
    _, img = render(png(solid(60, 40, [255, 255, 255])), "/trim/10")
    assert (img.width, img.height) == (60, 40)


def test_trim_of_an_animation_is_refused() -> None:
    with pytest.raises(BadRequest, match="'trim/10'"):
        render(animated_gif(), "/trim/10")


def test_padding_adds_margins_in_bg() -> None:
    result, img = render(png(solid(40, 30, [0, 0, 255])), "/padding/1,2,3,4/bg/ff0000/fmt/png")
    assert (img.width, img.height) == (46, 34) and img.bands == 3
    p = pixels(img)
    assert list(p[0, 20]) == [255, 0, 0]  # top margin, 1 px
    assert list(p[1, 20]) == [0, 0, 255]  # the image starts right below it
    assert list(p[15, 45]) == list(p[15, 44]) == [255, 0, 0]  # right margin, 2 px
    assert list(p[15, 43]) == [0, 0, 255]
    assert list(p[33, 20]) == [255, 0, 0] and list(p[30, 20]) == [0, 0, 255]  # bottom, 3 px
    assert list(p[15, 3]) == [255, 0, 0] and list(p[15, 4]) == [0, 0, 255]  # left, 4 px


def test_padding_is_transparent_for_alpha_formats_without_bg() -> None:
    _, img = render(png(solid(40, 30, [0, 0, 255])), "/padding/5/fmt/png")
    assert (img.width, img.height) == (50, 40) and img.bands == 4
    p = pixels(img)
    assert p[0, 0, 3] == 0 and p[20, 25, 3] == 255


def test_padding_follows_the_resize() -> None:
    _, img = render(png(gradient(400, 300)), "/resize/100x/padding/10")
    assert (img.width, img.height) == (120, 95)


def test_free_rotation_grows_the_canvas_and_fills_it() -> None:
    _, img = render(png(solid(100, 50, [0, 0, 255])), "/rotate/45/fmt/png")
    side = round((100 + 50) / 2**0.5)
    assert abs(img.width - side) <= 2 and abs(img.height - side) <= 2
    p = pixels(img)
    assert p[0, 0, 3] == 0  # a corner of the canvas: transparent
    assert (
        p[img.height // 2, img.width // 2, 2] > 200 and p[img.height // 2, img.width // 2, 3] == 255
    )
    _, jpeg = render(png(solid(100, 50, [0, 0, 255])), "/rotate/45/bg/00ff00/fmt/jpeg")
    assert pixels(jpeg)[1, 1, 1] > 200  # bg fills the canvas of formats without alpha


def test_rotation_is_clockwise() -> None:
    # A red mark at the top left ends up top right after a right angle, and on the top edge
    # right of centre after 45 degrees.
    marked = solid(100, 100, [0, 0, 0]).draw_rect([255, 0, 0], 0, 0, 20, 20, fill=True)
    _, img = render(png(marked), "/rotate/90")
    assert pixels(img)[5, 95, 0] > 200
    _, img = render(png(marked), "/rotate/45/fmt/png")
    p = pixels(img)
    reds = np.argwhere((p[:, :, 0] > 200) & (p[:, :, 3] > 200))
    assert reds[:, 0].mean() < img.height * 0.25  # near the top
    assert abs(reds[:, 1].mean() - img.width / 2) < img.width * 0.15


def test_the_box_applies_to_the_rotated_image() -> None:
    _, img = render(png(gradient(400, 200)), "/rotate/30/resize/100x100")
    assert max(img.width, img.height) == 100


def test_page_picks_one_frame_of_an_animation() -> None:
    result, img = render(animated_gif(frames=4), "/page/3")
    assert result.pages == 1 and img.get_n_pages() == 1
    assert pixels(img)[5, 5, 0] == 120  # frame i is filled with red 60 * i


def test_page_of_a_multipage_tiff() -> None:
    pages = [solid(50, 40, [255, 0, 0]), solid(50, 40, [0, 255, 0]), solid(50, 40, [0, 0, 255])]
    tiff = pyvips.Image.arrayjoin(pages, across=1).copy()
    tiff.set_type(pyvips.GValue.gint_type, "page-height", 40)
    data = tiff.tiffsave_buffer()
    _, img = render(data, "/page/2/fmt/png")
    assert (img.width, img.height) == (50, 40)
    assert list(pixels(img)[5, 5, :3]) == [0, 255, 0]
    _, first = render(data, "/fmt/png")
    assert list(pixels(first)[5, 5, :3]) == [255, 0, 0]


def test_page_past_the_last_is_400() -> None:
    with pytest.raises(BadRequest, match="'page/5': the image has 4 pages"):
        render(animated_gif(frames=4), "/page/5")
    with pytest.raises(BadRequest, match="'page/2': the image has 1 page$"):
        render(png(gradient(10, 10)), "/page/2")


# --- colour and effects


def test_hue_180_turns_red_to_cyan() -> None:
    _, img = render(png(solid(10, 10, [255, 0, 0])), "/hue/180/fmt/png")
    red, green, blue = pixels(img)[5, 5, :3]
    assert red < 40 and green > 120 and blue > 120


def test_saturation_minus_100_is_grey() -> None:
    _, img = render(png(gradient(50, 50)), "/saturation/-100/fmt/png")
    p = pixels(img).astype(int)
    assert np.abs(p[:, :, 0] - p[:, :, 1]).max() <= 2
    assert np.abs(p[:, :, 1] - p[:, :, 2]).max() <= 2


def test_brightness_and_contrast_move_lightness() -> None:
    source = png(gradient(64, 64))
    base = pixels(render(source, "/fmt/png")[1]).astype(float)
    brighter = pixels(render(source, "/brightness/40/fmt/png")[1]).astype(float)
    darker = pixels(render(source, "/brightness/-40/fmt/png")[1]).astype(float)
    assert brighter.mean() > base.mean() + 20 > darker.mean() + 40
    grey = pixels(render(source, "/grayscale/fmt/png")[1]).astype(float)
    flatter = pixels(render(source, "/contrast/-60/grayscale/fmt/png")[1]).astype(float)
    sharper = pixels(render(source, "/contrast/50/grayscale/fmt/png")[1]).astype(float)
    assert flatter.std() < grey.std() * 0.6 and sharper.std() > grey.std() * 1.3
    assert abs(flatter.mean() - grey.mean()) < 15  # around mid-grey, not darker or lighter


def test_alpha_survives_colour_operations() -> None:
    _, img = render(png(with_alpha(gradient(40, 20))), "/hue/90/brightness/10/fmt/png")
    p = pixels(img)
    assert img.bands == 4 and p[10, 5, 3] == 255 and p[10, 35, 3] == 0


def test_pixelate_makes_uniform_blocks() -> None:
    _, img = render(png(gradient(64, 48)), "/pixelate/8/fmt/png")
    p = pixels(img).astype(int)
    assert (img.width, img.height) == (64, 48)
    block = p[8:16, 16:24, :3]
    assert (block.max(axis=(0, 1)) - block.min(axis=(0, 1))).max() == 0
    assert p[0, 0, 0] != p[0, 63, 0]  # and the blocks differ from one another


def test_pixelate_handles_partial_blocks() -> None:
    _, img = render(png(gradient(50, 30)), "/pixelate/16/fmt/png")
    assert (img.width, img.height) == (50, 30)


def test_round_max_makes_the_corners_transparent() -> None:
    _, img = render(png(solid(100, 60, [0, 0, 255])), "/round/max/fmt/png")
    p = pixels(img)
    assert img.bands == 4
    for y, x in ((0, 0), (0, 99), (59, 0), (59, 99), (5, 10)):
        assert p[y, x, 3] == 0
    for y, x in ((30, 50), (30, 2), (1, 50)):
        assert p[y, x, 3] == 255


def test_round_radius_keeps_the_edges_and_fills_corners_with_bg_in_jpeg() -> None:
    _, img = render(png(solid(100, 60, [0, 0, 255])), "/round/20/bg/ff0000/fmt/jpeg")
    p = pixels(img)
    assert p[1, 1, 0] > 200 and p[1, 1, 2] < 60  # the corner: bg
    assert p[1, 50, 2] > 200  # the middle of an edge: the image
    assert p[30, 1, 2] > 200


# --- output


def test_maxbytes_picks_the_highest_quality_that_fits() -> None:
    source = png(gradient(400, 300))
    unbounded, _ = render(source, "/fmt/jpeg/q/90")
    budget = len(unbounded.body) // 2
    result, img = render(source, f"/fmt/jpeg/q/90/maxbytes/{max(1024, budget)}")
    assert len(result.body) <= max(1024, budget) and result.over_budget is None
    assert (img.width, img.height) == (400, 300)
    # One quality step more would not fit: the search found the highest.
    q = next(
        q
        for q in range(90, 9, -1)
        if len(imaging.encode(decode(source), "jpeg", q)) <= max(1024, budget)
    )
    assert len(result.body) == len(imaging.encode(decode(source), "jpeg", q))


def test_maxbytes_out_of_reach_says_so() -> None:
    photo = png(pyvips.Image.gaussnoise(800, 600).cast("uchar").bandjoin([128, 128]))
    result, _ = render(photo, "/fmt/webp/maxbytes/1024")
    assert result.over_budget == len(result.body) > 1024


def test_lossless_webp_keeps_every_pixel() -> None:
    source = png(gradient(64, 48))
    _, img = render(source, "/lossless/fmt/webp")
    assert np.array_equal(pixels(img)[:, :, :3], pixels(decode(source))[:, :, :3])
    _, lossy = render(source, "/fmt/webp/q/50")
    assert not np.array_equal(pixels(lossy)[:, :, :3], pixels(decode(source))[:, :, :3])


@pytest.mark.parametrize(("colours", "fmt"), [(16, "png"), (5, "png"), (2, "png"), (7, "gif")])
def test_palette_caps_the_colours(colours: int, fmt: str) -> None:
    _, img = render(png(gradient(120, 90)), f"/palette/{colours}/fmt/{fmt}")
    p = pixels(img)
    found = len(np.unique(p.reshape(-1, img.bands), axis=0))
    assert 2 <= found <= colours
    assert (img.width, img.height) == (120, 90)


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/lossless/fmt/jpeg", "'lossless'"),
        ("/lossless/fmt/png", "'lossless'"),
        ("/palette/16/fmt/webp", "'palette/16'"),
        ("/maxbytes/4096/fmt/png", "'maxbytes/4096'"),
    ],
)
def test_encoder_settings_the_format_cannot_honour_are_400(path: str, named: str) -> None:
    with pytest.raises(BadRequest, match=named):
        render(png(gradient(20, 20)), path)


def test_info_carries_placeholders_of_the_result() -> None:
    result, _ = render(png(solid(40, 20, [255, 0, 0])), "/info/fmt/png")
    assert result.placeholders is not None
    assert result.placeholders["dominant_color"] == "ff0000"
    assert result.placeholders["blurhash"] and result.placeholders["thumbhash"]


# --- metadata of the output


def _tagged_photo() -> bytes:
    """The GPS-tagged test photograph with an Artist, a Copyright and a camera Make too."""
    img = pyvips.Image.new_from_file(str(IMAGES / "photo-gps.jpg")).copy()
    for name, value in (
        ("exif-ifd0-Artist", "Rachel Michetti"),
        ("exif-ifd0-Copyright", "CC0 Rachel Michetti"),
        ("exif-ifd0-Make", "PhoneCo"),
    ):
        img.set_type(pyvips.GValue.gstr_type, name, value)
    return img.jpegsave_buffer(Q=90, keep=pyvips.enums.ForeignKeep.EXIF)


def _exif(img: pyvips.Image) -> dict[str, str]:
    return {name: img.get(name) for name in img.get_fields() if name.startswith("exif-ifd")}


def test_meta_copyright_keeps_copyright_and_drops_gps() -> None:
    source = _tagged_photo()
    assert any("GPS" in name for name in _exif(decode(source)))  # the fixture has GPS
    for fmt in ("jpeg", "webp", "png"):
        _, img = render(source, f"/resize/100x/meta/copyright/fmt/{fmt}")
        exif = _exif(img)
        assert exif["exif-ifd0-Copyright"].startswith("CC0 Rachel Michetti"), fmt
        assert exif["exif-ifd0-Artist"].startswith("Rachel Michetti"), fmt
        assert "exif-ifd0-Make" not in exif, fmt
        assert not any("GPS" in name for name in exif), fmt


def test_meta_keep_keeps_exif_but_never_gps() -> None:
    _, img = render(_tagged_photo(), "/resize/100x/meta/keep")
    exif = _exif(img)
    assert exif["exif-ifd0-Make"].startswith("PhoneCo")
    assert exif["exif-ifd0-Copyright"].startswith("CC0")
    assert not any("GPS" in name for name in exif)


def test_meta_strip_and_the_default_leave_nothing() -> None:
    for path in ("/resize/100x/meta/strip", "/resize/100x"):
        _, img = render(_tagged_photo(), path)
        assert not _exif(img) and not img.get_typeof("exif-data")


def test_meta_keep_keeps_the_profile_and_its_pixels() -> None:
    # A P3-tagged image: with `keep` the pixels stay in P3 under its profile; by default they
    # are converted to sRGB and the profile dropped.
    p3 = gradient(64, 48).icc_transform("p3", input_profile="srgb").jpegsave_buffer(Q=95)
    assert decode(p3).get_typeof("icc-profile-data")
    _, kept = render(p3, "/meta/keep/fmt/png")
    _, stripped = render(p3, "/fmt/png")
    assert kept.get_typeof("icc-profile-data") and not stripped.get_typeof("icc-profile-data")
    source_pixels = pixels(decode(p3)).astype(int)
    assert np.abs(pixels(kept)[:, :, :3].astype(int) - source_pixels).max() <= 1
    assert np.abs(pixels(stripped)[:, :, :3].astype(int) - source_pixels).max() > 5


def test_output_metadata_is_the_default_mode() -> None:
    options = parse_operations("/resize/100x")
    result = pipeline.render(
        _tagged_photo(), options, requested_format=None, quality=QUALITY, max_pixels=10**8,
        metadata="copyright",
    )  # fmt: skip
    exif = _exif(decode(result.body))
    assert exif["exif-ifd0-Copyright"].startswith("CC0") and "exif-ifd0-Make" not in exif


def test_meta_keep_of_a_cmyk_source_converts_it_to_srgb() -> None:
    cmyk = gradient(32, 24).icc_transform("cmyk", input_profile="srgb")
    assert cmyk.interpretation == "cmyk" and cmyk.bands == 4
    # The steps see sRGB: the margin is the red asked for, not red read as C, M, Y values.
    result, img = render(cmyk.jpegsave_buffer(Q=95), "/padding/2/bg/ff0000/meta/keep/fmt/png")
    assert img.bands == 3 and img.interpretation == "srgb"
    red, green, blue = pixels(img)[0, 0]
    assert red > 200 and green < 60 and blue < 60
    assert not img.get_typeof("icc-profile-data")  # the CMYK profile would mislabel it
