"""BlurHash, ThumbHash and dominant colour of an image (proxy/placeholders.py).

Hashes are checked by decoding them with the libraries' own decoders, and against known
vectors from the reference encoders (woltapp's C BlurHash, Evan Wallace's JS ThumbHash).
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fast_blurhash
import numpy as np
import pytest
import pyvips
import thumbhash

from proxy import placeholders
from proxy.placeholders import Placeholders

PHOTO = Path(__file__).parent / "images" / "photo.jpg"

RED = (255, 0, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)
GREEN = (0, 200, 0)
MAGENTA = (255, 0, 255)

# BlurHash's cosines leak about 2% of a flat colour into its AC terms at 100 px, which
# decode as ripples of a few levels; ThumbHash quantises its colours to 4-6 bits.
BLURHASH_LEVELS = 10
THUMBHASH_LEVELS = 8


def image(pixels: np.ndarray) -> pyvips.Image:
    """A pyvips image of an (h, w) or (h, w, bands) uint8 array, tagged "multiband" as
    images made from memory are: compute must go by the band count alone."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    height, width, bands = pixels.shape
    return pyvips.Image.new_from_memory(pixels.tobytes(), width, height, bands, "uchar")


def solid(width: int, height: int, colour: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8), (height, width, len(colour)))


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)])


def near(hex_colour: str, colour: tuple[int, int, int], levels: int = 1) -> bool:
    return bool(np.abs(rgb(hex_colour) - colour).max() <= levels)


def blurhash_pixels(value: str, width: int = 16, height: int = 12) -> np.ndarray:
    return np.frombuffer(fast_blurhash.decode(value, width, height), np.uint8).reshape(
        height, width, 3
    )


def thumbhash_pixels(value: str) -> np.ndarray:
    width, height, data = thumbhash.thumb_hash_to_rgba(base64.b64decode(value, validate=True))
    return np.frombuffer(data, np.uint8).reshape(height, width, 4)


def pattern(width: int, height: int, *, alpha: bool) -> np.ndarray:
    """Gradients with a fine diagonal ripple; `alpha` keeps only an opaque central disc."""
    y, x = np.mgrid[0:height, 0:width]
    bands = [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 7 * 36]
    if alpha:
        disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 2) ** 2
        bands = [np.where(disc, band, 0) for band in bands] + [np.where(disc, 255, 0)]
    return np.dstack(bands).astype(np.uint8)


@pytest.fixture(scope="module")
def red_landscape() -> pyvips.Image:
    return image(solid(160, 80, RED))


@pytest.fixture(scope="module")
def cut_out() -> pyvips.Image:
    """A green square on a larger transparent field whose hidden colour is magenta."""
    pixels = np.array(solid(200, 200, (*MAGENTA, 0)))
    pixels[60:140, 60:140] = (*GREEN, 255)
    return image(pixels)


@pytest.fixture(scope="module")
def photo() -> pyvips.Image:
    return pyvips.Image.new_from_file(str(PHOTO))


def test_the_answer_has_the_three_fields(red_landscape: pyvips.Image) -> None:
    found = placeholders.compute(red_landscape)
    assert isinstance(found, Placeholders)
    assert set(found.as_dict()) == {"blurhash", "thumbhash", "dominant_color"}
    assert found.as_dict()["dominant_color"] == found.dominant_color


def test_solid_red_is_red_in_all_three(red_landscape: pyvips.Image) -> None:
    found = placeholders.compute(red_landscape)
    assert near(found.dominant_color, RED)
    assert len(found.blurhash) == 4 + 2 * 4 * 3  # 4x3 components
    assert np.abs(blurhash_pixels(found.blurhash).astype(int) - RED).max() <= BLURHASH_LEVELS
    decoded = thumbhash_pixels(found.thumbhash)
    assert np.abs(decoded[..., :3].astype(int) - RED).max() <= THUMBHASH_LEVELS
    assert (decoded[..., 3] == 255).all()


@pytest.mark.parametrize(("width", "height"), [(160, 80), (80, 160), (300, 100)])
def test_thumbhash_keeps_the_aspect_ratio(width: int, height: int) -> None:
    found = placeholders.compute(image(solid(width, height, RED)))
    hashed = base64.b64decode(found.thumbhash)
    # ThumbHash stores the ratio as whole numbers of components, up to 7: 3:1 comes back 7:2.
    ratio = thumbhash.thumb_hash_to_approximate_aspect_ratio(hashed)
    assert ratio == pytest.approx(width / height, rel=0.2)
    decoded_height, decoded_width = thumbhash_pixels(found.thumbhash).shape[:2]
    assert decoded_width / decoded_height == pytest.approx(width / height, rel=0.2)


@pytest.mark.parametrize(("top", "bottom"), [(BLUE, YELLOW), (YELLOW, BLUE)])
def test_the_larger_area_gives_the_dominant_colour(top: tuple, bottom: tuple) -> None:
    pixels = np.array(solid(120, 100, bottom))
    pixels[:55] = top  # 55% of the rows
    assert near(placeholders.compute(image(pixels)).dominant_color, top)


def test_a_colour_on_a_cell_boundary_is_not_split() -> None:
    """A slightly noisy grey of 127/128, straddling a histogram cell edge, still beats a
    smaller flat area."""
    rng = np.random.default_rng(7)
    pixels = np.array(solid(100, 100, (40, 160, 220)))
    pixels[:60] = rng.choice([126, 127, 128, 129], size=(60, 100, 1)).repeat(3, axis=2)
    assert near(placeholders.compute(image(pixels)).dominant_color, (128, 128, 128), levels=2)


def test_transparent_pixels_are_ignored(cut_out: pyvips.Image) -> None:
    found = placeholders.compute(cut_out)
    assert near(found.dominant_color, GREEN)
    # BlurHash has no alpha: the field is flattened on white, and its hidden magenta
    # must not show through (magenta has no green in it).
    corners = blurhash_pixels(found.blurhash)[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners[:, 1] > 200).all()
    decoded = thumbhash_pixels(found.thumbhash)
    height, width = decoded.shape[:2]
    assert decoded[0, 0, 3] < 64 and decoded[-1, -1, 3] < 64
    centre = decoded[height // 2, width // 2]
    assert centre[3] > 200 and centre[1] > 2 * max(centre[0], centre[2])


def test_a_fully_transparent_image_has_black_as_its_colour() -> None:
    found = placeholders.compute(image(solid(50, 40, (*MAGENTA, 0))))
    assert found.dominant_color == placeholders.TRANSPARENT == "000000"
    assert (thumbhash_pixels(found.thumbhash)[..., 3] < 16).all()
    # White, the background BlurHash's copy is flattened on.
    assert (blurhash_pixels(found.blurhash) >= 255 - BLURHASH_LEVELS).all()


def test_grey_input() -> None:
    found = placeholders.compute(image(solid(300, 200, (128,))[..., 0]))
    assert found.dominant_color == "808080"
    decoded = thumbhash_pixels(found.thumbhash)[..., :3].astype(int)
    assert np.abs(decoded - 128).max() <= THUMBHASH_LEVELS
    assert np.abs(blurhash_pixels(found.blurhash).astype(int) - 128).max() <= BLURHASH_LEVELS


def test_grey_with_alpha_input() -> None:
    pixels = np.array(solid(300, 200, (200, 255)))
    pixels[:, :200] = (0, 0)  # two thirds invisible, black underneath
    found = placeholders.compute(image(pixels))
    assert near(found.dominant_color, (200, 200, 200))
    hashed = base64.b64decode(found.thumbhash)
    assert thumbhash.thumb_hash_to_average_rgba(hashed)[3] < 0.5


@pytest.mark.parametrize(("width", "height"), [(1, 1), (4000, 10), (10, 4000)])
def test_extreme_sizes(width: int, height: int) -> None:
    colour = (10, 20, 30)
    found = placeholders.compute(image(solid(width, height, colour)))
    assert found.dominant_color == "0a141e"
    # A side of one pixel would leak all of its colour into BlurHash's AC terms.
    decoded = blurhash_pixels(found.blurhash).astype(int)
    assert np.abs(decoded - colour).max() <= BLURHASH_LEVELS
    decoded = thumbhash_pixels(found.thumbhash)[..., :3].astype(int)
    assert np.abs(decoded - colour).max() <= THUMBHASH_LEVELS
    small = placeholders._small_rgba(image(solid(width, height, colour)))
    assert max(small.shape[:2]) == min(100, max(width, height)) and min(small.shape[:2]) >= 1
    ratio = thumbhash.thumb_hash_to_approximate_aspect_ratio(base64.b64decode(found.thumbhash))
    if width != height:
        assert (ratio > 1) == (width > height)


def test_the_same_image_gives_the_same_answer(cut_out: pyvips.Image) -> None:
    again = image(np.ndarray(buffer=cut_out.write_to_memory(), dtype=np.uint8, shape=(200, 200, 4)))
    assert placeholders.compute(cut_out) == placeholders.compute(again)


def test_threads_get_what_a_single_thread_gets(photo: pyvips.Image, cut_out: pyvips.Image) -> None:
    images = [photo, cut_out, image(pattern(90, 60, alpha=False))] * 4
    alone = [placeholders.compute(one) for one in images]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(placeholders.compute, images)) == alone


def test_the_coffee_photo_is_brown(photo: pyvips.Image) -> None:
    found = placeholders.compute(photo)
    red, green, blue = rgb(found.dominant_color)
    assert red > green > blue  # the photo's mean is R 158, G 86, B 52
    assert red - blue > 60
    average = thumbhash.thumb_hash_to_average_rgba(base64.b64decode(found.thumbhash))
    assert average[0] > average[1] > average[2]


def test_blurhash_matches_the_c_reference() -> None:
    """A 100x100 image is neither shrunk nor stretched, so the string is the encoder's own.
    Vector from woltapp's C encoder (PyPI blurhash-python 1.2.2). Their TypeScript one gives
    another string: it takes the largest AC value without dropping its sign."""
    found = placeholders.compute(image(pattern(100, 100, alpha=False)))
    assert found.blurhash == "L%HV9e2Y$5SghpazfQf7gcfQfQfQ"


def test_thumbhash_matches_the_js_reference() -> None:
    """Vector from Evan Wallace's JS encoder (npm thumbhash 0.1.1). His Rust port works in
    f32, so a coefficient that falls on a rounding edge may differ by one step from the
    JS; this image has none."""
    found = placeholders.compute(image(pattern(32, 24, alpha=True)))
    assert found.thumbhash == "3viFHIxJg3yAfJinNwiYg393gHaIR3iHBg=="


def test_non_8_bit_input_is_refused() -> None:
    with pytest.raises(ValueError, match="8-bit"):
        placeholders.compute(image(solid(10, 10, RED)).cast("ushort"))
