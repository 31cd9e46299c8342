"""proxy.overlays: an image watermark and a text overlay, on images made here with libvips."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import pyvips

from proxy import overlays
from proxy.overlays import POSITIONS, Text, Watermark, apply_text, apply_watermark

W, H = 400, 300
MARGIN = 6  # 2 % of the shorter side, 300
GREY = 128


def flat(value, width: int = W, height: int = H) -> pyvips.Image:
    """A solid image: `value` a number (grey, 1 band) or a list (one number a band)."""
    bands = value if isinstance(value, list) else [value]
    image = (pyvips.Image.black(width, height) + bands).cast("uchar")
    return image.copy(interpretation="b-w" if len(bands) <= 2 else "srgb")


def red_box(width: int = 100, height: int = 50) -> pyvips.Image:
    return flat([255, 0, 0, 255], width, height)


def pixels(image: pyvips.Image) -> np.ndarray:
    array = image.numpy()
    return array if array.ndim == 3 else array[:, :, None]


def is_red(image: pyvips.Image) -> np.ndarray:
    a = pixels(image).astype(int)
    return (a[:, :, 0] > 200) & (a[:, :, 1] < 50) & (a[:, :, 2] < 50)


def changed(before: pyvips.Image, after: pyvips.Image) -> np.ndarray:
    return (pixels(before) != pixels(after)).any(axis=2)


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """left, top, width, height of the True pixels."""
    ys, xs = np.nonzero(mask)
    assert len(xs), "no pixel found"
    return xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def quadrants(mask: np.ndarray) -> list[bool]:
    """Whether each quadrant has a True pixel: top left, top right, bottom left, bottom right."""
    h, w = mask.shape
    rows, cols = (slice(0, h // 2), slice(h // 2, h)), (slice(0, w // 2), slice(w // 2, w))
    return [bool(mask[r, c].any()) for r in rows for c in cols]


def check_shape(before: pyvips.Image, after: pyvips.Image) -> None:
    assert (after.width, after.height, after.bands) == (before.width, before.height, before.bands)
    assert after.format == "uchar"
    assert after.interpretation == before.interpretation


# --- watermark


def test_southeast_is_the_default_and_keeps_the_margin():
    img = flat([GREY] * 3)
    out = apply_watermark(img, red_box(), Watermark("logo"))
    check_shape(img, out)
    a = pixels(out)
    assert is_red(out)[H - MARGIN - 1, W - MARGIN - 1]  # just inside the margin
    assert (a[H - MARGIN :, :] == GREY).all()  # the margin itself is untouched
    assert (a[:, W - MARGIN :] == GREY).all()
    assert bbox(is_red(out)) == (W - MARGIN - 100, H - MARGIN - 50, 100, 50)


@pytest.mark.parametrize(
    ("position", "left", "top"),
    [
        ("northwest", MARGIN, MARGIN),
        ("north", (W - 100) // 2, MARGIN),
        ("northeast", W - MARGIN - 100, MARGIN),
        ("west", MARGIN, (H - 50) // 2),
        ("centre", (W - 100) // 2, (H - 50) // 2),
        ("east", W - MARGIN - 100, (H - 50) // 2),
        ("southwest", MARGIN, H - MARGIN - 50),
        ("south", (W - 100) // 2, H - MARGIN - 50),
        ("southeast", W - MARGIN - 100, H - MARGIN - 50),
    ],
)
def test_gravity_positions(position, left, top):
    out = apply_watermark(flat([GREY] * 3), red_box(), Watermark("logo", position))
    assert bbox(is_red(out)) == (left, top, 100, 50)
    assert not is_red(out)[:MARGIN, :].any() and not is_red(out)[:, :MARGIN].any()


@pytest.mark.parametrize(("size", "width"), [(0.01, 4), (0.1, 40), (0.4, 160), (1.0, 400)])
def test_scaled_to_the_fraction_of_the_width_asked(size, width):
    out = apply_watermark(flat([GREY] * 3), red_box(), Watermark("logo", "centre", size=size))
    _, _, w, h = bbox(is_red(out))
    assert w == width
    assert abs(h - width / 2) <= 1  # aspect kept


def test_a_tall_overlay_is_limited_by_the_outputs_height():
    out = apply_watermark(flat([GREY] * 3), red_box(50, 400), Watermark("logo", size=1.0))
    # 50 x 400 to 38 x 300; the margins give way above and below, not at the side
    assert bbox(is_red(out)) == (W - MARGIN - 38, 0, 38, 300)


def test_opacity_half_blends_half_way():
    out = apply_watermark(flat([0, 0, 0]), red_box(), Watermark("logo", "centre", opacity=0.5))
    r, g, b = pixels(out)[H // 2, W // 2]
    assert abs(int(r) - 128) <= 2 and g == 0 and b == 0


def test_the_overlays_transparent_parts_leave_the_image_untouched():
    half = red_box().crop(0, 0, 50, 50).join(flat([0, 255, 0, 0], 50, 50), "horizontal")
    img = flat([GREY] * 3)
    out = apply_watermark(img, half, Watermark("logo", "northwest"))
    assert bbox(is_red(out)) == (MARGIN, MARGIN, 50, 50)
    assert bbox(changed(img, out)) == (MARGIN, MARGIN, 50, 50)


def test_tile_covers_every_quadrant_with_gaps_between():
    img = flat([GREY] * 3)
    out = apply_watermark(img, red_box(), Watermark("logo", "tile", size=0.1))  # 40 x 20
    red = is_red(out)
    assert quadrants(red) == [True] * 4
    assert bbox(red[:30, :50]) == (MARGIN, MARGIN, 40, 20)  # the first tile, then the next
    assert red[MARGIN, MARGIN + 40 + MARGIN] and not red[MARGIN, MARGIN + 40]
    assert 0.5 < red.mean() < 0.8  # tiles with margins between: 40*20 / (46*26) ≈ 0.67


def test_rgba_output_keeps_its_alpha_where_nothing_is_drawn():
    img = flat([GREY, GREY, GREY, 0])
    out = apply_watermark(img, red_box(), Watermark("logo"))
    check_shape(img, out)
    a = pixels(out)
    assert (a[:100, :100] == [GREY, GREY, GREY, 0]).all()
    # "over": an opaque overlay stays opaque over transparent pixels
    assert (a[H - MARGIN - 1, W - MARGIN - 1] == [255, 0, 0, 255]).all()


def test_a_translucent_overlay_over_translucent_pixels_combines_alphas():
    out = apply_watermark(flat([0, 0, 0, 128]), red_box(), Watermark("logo", opacity=0.5))
    alpha = pixels(out)[H - MARGIN - 1, W - MARGIN - 1, 3]
    assert abs(int(alpha) - 192) <= 2  # 0.5 + 0.5 * (1 - 0.5)


@pytest.mark.parametrize("value", [GREY, [GREY, 255]])
def test_grey_output_stays_grey_and_the_overlay_turns_grey(value):
    img = flat(value)
    out = apply_watermark(img, red_box(), Watermark("logo", "centre"))
    check_shape(img, out)
    centre = pixels(out)[H // 2, W // 2]
    assert abs(int(centre[0]) - 127) <= 3  # sRGB red as grey (its luminance)
    assert (pixels(out)[:10, :10, 0] == GREY).all()


def test_an_rgb_overlay_without_alpha_is_opaque():
    out = apply_watermark(flat([GREY] * 3), red_box()[:3], Watermark("logo"))
    assert bbox(is_red(out)) == (W - MARGIN - 100, H - MARGIN - 50, 100, 50)


def test_unknown_position_is_refused():
    with pytest.raises(ValueError, match="position"):
        apply_watermark(flat([GREY] * 3), red_box(), Watermark("logo", "middle"))


# --- text


def test_text_changes_only_its_corner():
    img = flat([GREY] * 3)
    out = apply_text(img, Text("© ProgImage"))
    check_shape(img, out)
    left, top, width, height = bbox(changed(img, out))
    assert left > W // 2 and top > H * 0.8
    assert left + width <= W - MARGIN and top + height <= H - MARGIN
    # and everything outside that box is byte-identical
    before, after = pixels(img).copy(), pixels(out).copy()
    before[top : top + height, left : left + width] = after[top : top + height, left : left + width]
    assert before.tobytes() == after.tobytes()


@pytest.mark.parametrize(("size", "height"), [(0.05, 300), (0.1, 300), (0.2, 300), (0.05, 800)])
def test_cap_height_is_the_fraction_of_the_height_asked(size, height):
    # White on black: the dark outline leaves black untouched, the fill is what changes.
    out = apply_text(flat([0, 0, 0], 400, height), Text("H", "centre", size=size))
    # The stem: coverage summed down the brightest column gives the height to a fraction.
    stem = pixels(out)[:, :, 0].astype(int).sum(axis=0).max() / 255
    assert abs(stem - size * height) <= 1.0


def test_same_call_gives_identical_pixels():
    before = pyvips.cache_get_max()
    pyvips.cache_set_max(0)  # so the second call renders again rather than reusing the first
    try:
        img = flat([GREY] * 3)
        spec = Text("Déjà vu ΑΒΓ", "centre", 0.8, 0.1, "ffcc00")
        first = apply_text(img, spec).write_to_memory()
        overlays._font_px.cache_clear()
        assert apply_text(img, spec).write_to_memory() == first
    finally:
        pyvips.cache_set_max(before)


@pytest.mark.parametrize("text", ["Ωμέγα λόγος", "Привет мир", "Ça déjà été où", "ŁÓDŹ ĞÜŞ"])
def test_non_latin_text_renders(text):
    img = flat([GREY] * 3)
    out = apply_text(img, Text(text, "centre", size=0.1))
    assert changed(img, out).sum() > 1000


def test_markup_characters_are_drawn_not_parsed():
    img = flat([GREY] * 3)
    tags = changed(img, apply_text(img, Text("<b>x</b> & <i>", "centre", size=0.05))).sum()
    bare = changed(img, apply_text(img, Text("x", "centre", size=0.05))).sum()
    assert tags > 5 * bare


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u00a0", "\u200b"])
def test_blank_text_draws_nothing(text):
    img = flat([GREY] * 3)
    assert apply_text(img, Text(text)).write_to_memory() == img.write_to_memory()


def test_control_characters_do_not_raise():
    img = flat([GREY] * 3)
    assert changed(img, apply_text(img, Text("a\x00b\x1bc\nd\ud800e"))).any()


def test_a_text_too_wide_is_shrunk_to_fit_between_the_margins():
    img = flat([GREY] * 3)
    out = apply_text(img, Text("A rather long caption for a small picture " * 3, size=0.1))
    left, _, width, _ = bbox(changed(img, out))
    assert left >= MARGIN and left + width <= W - MARGIN
    assert width > W * 0.8  # shrunk to fit, not further


@pytest.mark.parametrize("text", ["a" * 5000, "\u0301" * 3000])
def test_a_text_of_thousands_of_characters_is_drawn_tiny_rather_than_failing(text):
    img = flat([GREY] * 3)
    assert changed(img, apply_text(img, Text(text, size=0.5))).any()


def test_tile_text_touches_every_quadrant():
    img = flat([GREY] * 3)
    mask = changed(img, apply_text(img, Text("tiled", "tile", 0.5)))
    assert quadrants(mask) == [True] * 4
    assert 0.05 < mask.mean() < 0.6  # a pattern, not a flood


def test_colour_is_honoured():
    img = flat([GREY] * 3)
    white = pixels(apply_text(img, Text("W", "centre", size=0.3)))
    assert (white == 255).all(axis=2).sum() > 500
    assert is_red(apply_text(img, Text("W", "centre", size=0.3, colour="ff0000"))).sum() > 500


def test_outline_is_dark_around_the_glyphs_on_white():
    img = flat([255, 255, 255])
    out = pixels(apply_text(img, Text("Outline", "centre", size=0.1)))
    assert (out.max(axis=2) < 64).sum() > 200


def test_text_opacity_blends():
    img = flat([0, 0, 0])
    out = pixels(apply_text(img, Text("W", "centre", 0.5, 0.3)))
    assert abs(int(out.max()) - 128) <= 2


@pytest.mark.parametrize("value", [GREY, [GREY, 200], [GREY] * 3, [GREY, GREY, GREY, 200]])
def test_text_keeps_the_outputs_bands(value):
    img = flat(value)
    out = apply_text(img, Text("Bands", "centre", size=0.1, colour="ff0000"))
    check_shape(img, out)
    assert changed(img, out).any()
    assert (pixels(out)[:10, :10] == pixels(img)[:10, :10]).all()


# Grey outputs are light: red turned grey is about 127, too close to GREY to tell apart.
@pytest.mark.parametrize("value", [230, [230, 200], [GREY] * 3, [GREY, GREY, GREY, 200]])
def test_tiles_keep_the_outputs_bands(value):
    img = flat(value)
    for out in (
        apply_text(img, Text("Tiles", "tile", 0.5, 0.1)),
        apply_watermark(img, red_box(), Watermark("logo", "tile", 0.5, 0.1)),
    ):
        check_shape(img, out)
        assert quadrants(changed(img, out)) == [True] * 4


def test_text_from_worker_threads_is_identical():
    img = flat([GREY] * 3)
    specs = [Text(f"thread {i % 3}", "tile", size=0.05 + 0.01 * (i % 3)) for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: apply_text(img, s).write_to_memory(), specs))
    for spec, result in zip(specs, results, strict=True):
        assert result == apply_text(img, spec).write_to_memory()


def test_the_font_ships_with_the_project():
    path = overlays.font_file()
    assert os.path.isfile(path) and path.endswith("NotoSans[wdth,wght].ttf")
    assert "fontpkg_noto_sans" in path


def test_every_position_draws_text():
    img = flat([GREY] * 3)
    for position in POSITIONS:
        assert changed(img, apply_text(img, Text("P", position))).any(), position


def test_missing_glyphs_are_named_once_and_format_characters_pass():
    assert overlays.missing("Ça va, Ωμέγα, Привет") == []
    assert overlays.missing("東京東 ok 😀\ufe0f") == ["東", "京", "😀"]
    assert overlays.missing("a\u200db\u2060") == []


def test_fontconfig_sees_only_the_shipped_font():
    # conftest ran setup_fonts(), as the service does at start: the host's fonts (this machine
    # may have DejaVu) are not in fontconfig's configuration.
    config = Path(os.environ["FONTCONFIG_FILE"]).read_text(encoding="utf-8")
    assert config.count("<dir>") == 1 and "<include" not in config
    assert f"<dir>{os.path.dirname(overlays.font_file())}</dir>" in config
