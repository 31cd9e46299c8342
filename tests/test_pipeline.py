"""The libvips pipeline: geometry, orientation, colour, alpha, animation, formats, limits."""

from __future__ import annotations

import pytest
import pyvips

from conftest import IMAGES, animated_gif, decode, gradient, with_alpha
from proxy import imaging, metadata, pipeline
from proxy.errors import BadRequest, Unprocessable, UnsupportedMediaType
from proxy.urls import parse

ID = "0" * 32
QUALITY = {"jpeg": 80, "webp": 80, "avif": 60}
MAGIC = {
    "jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "png": lambda b: b[:8] == b"\x89PNG\r\n\x1a\n",
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "avif": lambda b: b[4:12] == b"ftypavif",
    "gif": lambda b: b[:6] == b"GIF89a",
    "tiff": lambda b: b[:4] in (b"II*\x00", b"MM\x00*"),
}


@pytest.fixture(autouse=True, scope="module")
def _libvips() -> None:
    imaging.configure()


def render(data: bytes, ops_path: str, fmt: str | None = None, **kwargs) -> pipeline.Result:
    options, _ = parse(f"{ops_path}/{ID}")
    return pipeline.render(
        data,
        options,
        requested_format=fmt or options.format,
        quality=QUALITY,
        max_pixels=kwargs.pop("max_pixels", 10**8),
        **kwargs,
    )


def check(result: pipeline.Result) -> pyvips.Image:
    """The body decodes, in the format and size the result claims."""
    assert MAGIC[result.format](result.body), result.body[:16]
    image = decode(result.body)
    assert (image.width, image.height) == (result.width, result.height * result.pages)
    return image


GEOMETRY = [
    ("/resize/300x200", (267, 200)),
    ("/resize/100x", (100, 75)),
    ("/resize/x60", (80, 60)),
    ("/resize/4000x4000", (400, 300)),  # never upscaled by default
    ("/resize/800x600/enlarge", (800, 600)),
    ("/resize/100x/dpr/2", (200, 150)),
    ("/fill/100x100", (100, 100)),
    ("/fill/100x30/gravity/north", (100, 30)),
    ("/thumbnail/64x64", (64, 64)),
    ("/fill/800x400", (400, 200)),  # too small to cover: the box's aspect at source resolution
    ("/fill/800x400/enlarge", (800, 400)),
    ("/pad/300x300", (300, 300)),
    ("/stretch/50x70", (50, 70)),
    ("/stretch/800x100", (400, 100)),
    ("/crop/10,20,100,50", (100, 50)),
    ("/crop/350,250,100,100", (50, 50)),  # clipped to the image
    ("/rotate/90", (300, 400)),
    ("/rotate/90/resize/150x", (150, 200)),  # the box applies to the rotated image
    ("/crop/0,0,200,100/rotate/270/resize/x100", (50, 100)),
    ("/flip/flop", (400, 300)),
]


@pytest.mark.parametrize(("ops_path", "size"), GEOMETRY)
def test_geometry(jpeg_bytes: bytes, ops_path: str, size: tuple[int, int]) -> None:
    image = check(render(jpeg_bytes, ops_path))
    assert (image.width, image.height) == size


def _pixel(image: pyvips.Image, x: int, y: int) -> list[float]:
    return image.getpoint(x, y)


def test_crop_takes_the_named_region(jpeg_bytes: bytes) -> None:
    # In the gradient red grows with x and green with y: the crop's corner tells where it is.
    image = check(render(jpeg_bytes, "/crop/300,200,50,50", "png"))
    red, green, _ = _pixel(image, 0, 0)
    assert red == pytest.approx(300 * 255 / 399, abs=6)
    assert green == pytest.approx(200 * 255 / 299, abs=6)


def test_gravity_picks_the_side(jpeg_bytes: bytes) -> None:
    north = check(render(jpeg_bytes, "/fill/400x50/gravity/north", "png"))
    south = check(render(jpeg_bytes, "/fill/400x50/gravity/south", "png"))
    assert _pixel(north, 200, 0)[1] < 20
    assert _pixel(south, 200, 49)[1] > 235


def test_flip_and_flop_mirror(jpeg_bytes: bytes) -> None:
    flopped = check(render(jpeg_bytes, "/flop", "png"))
    flipped = check(render(jpeg_bytes, "/flip", "png"))
    assert _pixel(flopped, 0, 0)[0] > 240  # the red right edge is now on the left
    assert _pixel(flipped, 0, 0)[1] > 240  # the green bottom edge is now on top


def test_rotate_is_clockwise(jpeg_bytes: bytes) -> None:
    rotated = check(render(jpeg_bytes, "/rotate/90", "png"))
    # Clockwise: the source's bottom-left corner (green, no red) comes to the top-left.
    red, green, _ = _pixel(rotated, 0, 0)
    assert red < 15 and green > 240


def test_exif_orientation_is_applied_to_a_real_photo() -> None:
    data = (IMAGES / "portrait-exif6.jpg").read_bytes()
    image = check(render(data, "", "png"))
    assert image.width < image.height
    grey = image.colourspace("b-w")[0]
    third = image.height // 3
    top = grey.crop(0, 0, image.width, third).avg()
    bottom = grey.crop(0, image.height - third, image.width, third).avg()
    assert top - bottom > 40  # the face (light) is on top, the suit (dark) below


def test_metadata_is_stripped_and_gps_never_leaks() -> None:
    data = (IMAGES / "photo-gps.jpg").read_bytes()
    assert decode(data).get_typeof("exif-ifd3-GPSLatitude")
    for fmt in ("jpeg", "webp", "png", "avif", "tiff"):
        result = render(data, "/resize/100x", fmt)
        image = check(result)
        assert not image.get_typeof("exif-data"), fmt
        assert not image.get_typeof("exif-ifd3-GPSLatitude"), fmt
        assert b"GPS" not in result.body


def test_alpha_is_flattened_onto_bg_for_jpeg(png_alpha_bytes: bytes) -> None:
    image = check(render(png_alpha_bytes, "/bg/ff0000", "jpeg"))
    assert image.bands == 3
    assert _pixel(image, 190, 50) == pytest.approx([254, 0, 0], abs=3)  # transparent half -> red


def test_alpha_is_kept_where_the_format_has_it(png_alpha_bytes: bytes) -> None:
    for fmt in ("png", "webp", "avif"):
        result = render(png_alpha_bytes, "/resize/100x", fmt)
        image = check(result)
        assert result.has_alpha and image.hasalpha(), fmt
        assert _pixel(image, 90, 25)[-1] < 10, fmt


def test_real_alpha_photo_keeps_transparent_corners() -> None:
    image = check(render((IMAGES / "alpha.png").read_bytes(), "/resize/128x", "webp"))
    assert image.bands == 4
    assert _pixel(image, 0, 0)[3] == 0
    assert _pixel(image, 64, 64)[3] == 255


def test_pad_fills_with_bg_and_centres(jpeg_bytes: bytes) -> None:
    image = check(render(jpeg_bytes, "/pad/400x400/bg/0000ff", "png"))
    assert (image.width, image.height) == (400, 400)
    assert _pixel(image, 200, 5) == pytest.approx([0, 0, 255], abs=2)  # margin
    assert _pixel(image, 200, 200)[2] == pytest.approx(128, abs=4)  # the picture


def test_grayscale_blur_sharpen(jpeg_bytes: bytes) -> None:
    grey = check(render(jpeg_bytes, "/grayscale", "png"))
    assert grey.bands == 1
    blurred = check(render(jpeg_bytes, "/blur/5", "png"))
    sharp = check(render(jpeg_bytes, "/sharpen/2", "png"))
    assert (blurred.width, sharp.width) == (400, 400)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "gif", "tiff"])
def test_every_output_format(jpeg_bytes: bytes, fmt: str) -> None:
    result = render(jpeg_bytes, "/resize/64x", fmt)
    image = check(result)
    assert result.format == fmt
    assert image.width == 64


def test_quality_changes_the_size(photo_bytes: bytes) -> None:
    low = render(photo_bytes, "/q/20", "jpeg")
    high = render(photo_bytes, "/q/95", "jpeg")
    assert len(low.body) < len(high.body) / 2


def test_default_format_is_the_sources_own(png_alpha_bytes: bytes, jpeg_bytes: bytes) -> None:
    assert render(png_alpha_bytes, "/resize/50x").format == "png"
    assert render(jpeg_bytes, "/resize/50x").format == "jpeg"


def test_tiff_becomes_jpeg_or_png_by_default(jpeg_bytes: bytes) -> None:
    tiff = gradient(40, 30).tiffsave_buffer()
    assert render(tiff, "").format == "jpeg"
    tiff_alpha = with_alpha(gradient(40, 30)).tiffsave_buffer()
    assert render(tiff_alpha, "").format == "png"


def test_output_is_8bit_srgb_from_16bit_and_cmyk() -> None:
    sixteen = (gradient(40, 30).cast("ushort") * 256).copy(interpretation="rgb16").pngsave_buffer()
    image = check(render(sixteen, "", "png"))
    assert image.format == "uchar" and image.bands == 3
    cmyk = gradient(40, 30).bandjoin(0).copy(interpretation="cmyk").jpegsave_buffer()
    image = check(render(cmyk, "", "jpeg"))
    assert image.bands == 3 and image.interpretation == "srgb"


def test_animated_gif_stays_animated() -> None:
    data = animated_gif(frames=5, width=40, height=30)
    for fmt in ("gif", "webp"):
        result = render(data, "/resize/20x", fmt)
        assert result.pages == 5
        image = pyvips.Image.new_from_buffer(result.body, "", n=-1)
        assert image.get("n-pages") == 5
        assert image.get("page-height") == 15
        assert image.width == 20


def test_animated_gif_to_jpeg_takes_the_first_frame() -> None:
    result = render(animated_gif(frames=3), "/resize/20x", "jpeg")
    assert result.pages == 1
    assert check(result).width == 20


def test_animated_crop_and_rotate_apply_per_frame() -> None:
    result = render(animated_gif(frames=3, width=40, height=30), "/crop/0,0,20,10/rotate/90", "gif")
    image = pyvips.Image.new_from_buffer(result.body, "", n=-1)
    assert (image.width, image.get("page-height"), image.get("n-pages")) == (10, 20, 3)


def test_crop_outside_the_image_is_400(jpeg_bytes: bytes) -> None:
    with pytest.raises(BadRequest, match="outside"):
        render(jpeg_bytes, "/crop/500,500,10,10")


def test_image_bomb_is_refused_from_the_header() -> None:
    big = pyvips.Image.black(3000, 3000).jpegsave_buffer()
    with pytest.raises(Unprocessable, match="over the limit"):
        render(big, "/resize/10x", max_pixels=1_000_000)


def test_frames_count_towards_the_pixel_limit() -> None:
    data = animated_gif(frames=10, width=100, height=100)
    with pytest.raises(Unprocessable, match="10 frames"):
        render(data, "/resize/10x", "gif", max_pixels=50_000)


def test_truncated_jpeg_is_422(photo_bytes: bytes) -> None:
    with pytest.raises(Unprocessable):
        render(photo_bytes[: len(photo_bytes) // 2], "/resize/100x")


def test_random_bytes_behind_valid_magic_is_422() -> None:
    with pytest.raises(Unprocessable):
        render(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "")


@pytest.mark.parametrize(
    "data", [b"", b"hello world", b"PK\x03\x04" + bytes(100), b"BM" + bytes(100)]
)
def test_not_an_image_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        render(data, "")


def test_svg_is_refused_unless_allowed() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    with pytest.raises(UnsupportedMediaType, match="SVG"):
        render(svg, "")


def test_perceptual_hash_tells_similar_from_different(photo_bytes: bytes) -> None:
    photo = metadata.describe(photo_bytes, allow_svg=False, max_pixels=10**8)
    smaller = render(photo_bytes, "/resize/200x/q/60", "jpeg").body
    similar = metadata.describe(smaller, allow_svg=False, max_pixels=10**8)
    other = metadata.describe(
        (IMAGES / "alpha.png").read_bytes(), allow_svg=False, max_pixels=10**8
    )
    assert metadata.hamming(photo.phash, similar.phash) <= metadata.SIMILAR_DISTANCE
    assert metadata.hamming(photo.phash, other.phash) > metadata.SIMILAR_DISTANCE


def test_exif_orientation_survives_the_scaled_jpeg_decode() -> None:
    data = (IMAGES / "portrait-exif6.jpg").read_bytes()
    image = check(render(data, "/resize/100x", "png"))  # decoded at 1/2 scale, then rotated
    assert (image.width, image.height) == (100, 133)
    grey = image.colourspace("b-w")[0]
    assert grey.crop(0, 0, 100, 40).avg() - grey.crop(0, 93, 100, 40).avg() > 40


def test_scaled_jpeg_decode_stays_close_to_the_full_decode(photo_bytes: bytes) -> None:
    fast = decode(render(photo_bytes, "/resize/64x", "png").body)
    full = pyvips.Image.thumbnail_buffer(photo_bytes, 64, height=43, size="force")
    assert (fast.width, fast.height) == (full.width, full.height)
    assert (fast - full).abs().avg() < 6
