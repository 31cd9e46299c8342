"""Every original the upload accepts converts to every output format, upright.

`/images/{id}.{ext}` converts the original at full size: no shrink-on-load, so the decoder
itself must serve the reads that EXIF orientation's rotation makes. The originals are tall
enough (600 rows) that a sequential decode could not.
"""

from __future__ import annotations

import pytest
import pyvips
from test_app import upload

from conftest import decode
from proxy import ops

STORED = (900, 600)  # width, height as the pixels are stored, before orientation
OUTPUTS = {
    "jpg": "jpeg", "png": "png", "webp": "webp", "avif": "avif", "jxl": "jxl", "gif": "gif",
    "tif": "tiff",
}  # fmt: skip
# What libvips names the loader of each (JPEG XL is decoded by imagecodecs: no loader).
LOADERS = {"avif": "heif", "jxl": None}

# Where the stored top-left corner appears once the image is upright (EXIF's definitions).
CORNER = {1: "tl", 3: "br", 5: "tl", 6: "tr", 7: "br", 8: "bl"}


def _pattern(bands: int = 3) -> pyvips.Image:
    """Dark grey with a white block in the stored top-left corner."""
    width, height = STORED
    image = pyvips.Image.black(width, height, bands=bands) + 60
    image = image.draw_rect([255] * bands, 0, 0, width // 3, height // 3, fill=True)
    return image.cast("uchar").copy(interpretation="srgb" if bands == 3 else "b-w")


def _oriented(image: pyvips.Image, orientation: int) -> pyvips.Image:
    image = image.copy()
    if orientation != 1:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image


def original(kind: str, orientation: int) -> bytes:
    img = _oriented(_pattern(), orientation)
    if kind == "jpeg":
        return img.jpegsave_buffer(keep="exif")
    if kind == "jpeg-cmyk":
        return _oriented(_pattern().icc_transform("cmyk", intent="relative"), orientation) \
            .jpegsave_buffer(keep="all")  # fmt: skip
    if kind == "png":
        return img.pngsave_buffer(keep="exif")
    if kind == "webp":
        return img.webpsave_buffer(keep="exif")
    if kind == "avif":  # libheif writes the orientation as the container's rotation
        return img.heifsave_buffer(compression="av1", effort=0, keep="exif")
    if kind == "gif":
        return img.gifsave_buffer()
    if kind == "tiff":
        return img.tiffsave_buffer(compression="lzw")
    if kind == "tiff-fax":  # 1 bit, CCITT group 4: what a fax or a scanned page is
        bw = _oriented(_pattern(bands=1) > 128, orientation)
        return bw.tiffsave_buffer(compression="ccittfax4", bitdepth=1)
    if kind == "tiff-16":
        wide = (_pattern() * 257).cast("ushort").copy(interpretation="rgb16")
        return _oriented(wide, orientation).tiffsave_buffer(compression="deflate")
    if kind == "tiff-cmyk":
        cmyk = _pattern().icc_transform("cmyk", intent="relative")
        return _oriented(cmyk, orientation).tiffsave_buffer(keep="all", compression="lzw")
    raise AssertionError(kind)


ORIGINALS = [
    ("jpeg", 1), ("jpeg", 3), ("jpeg", 6), ("jpeg", 7), ("jpeg", 8), ("jpeg-cmyk", 6),
    ("png", 1), ("png", 6), ("webp", 1), ("webp", 6), ("avif", 1), ("avif", 6), ("gif", 1),
    ("tiff", 1), ("tiff", 5), ("tiff", 6), ("tiff-fax", 1), ("tiff-fax", 6), ("tiff-fax", 7),
    ("tiff-16", 6), ("tiff-cmyk", 6),
]  # fmt: skip


def brightest_corner(image: pyvips.Image) -> str:
    grey = image.flatten(background=[0]) if image.hasalpha() else image
    grey = grey.colourspace("b-w")[0] if grey.bands >= 3 else grey[0]
    w, h = grey.width // 3, grey.height // 3
    corners = {
        "tl": (0, 0), "tr": (grey.width - w, 0),
        "bl": (0, grey.height - h), "br": (grey.width - w, grey.height - h),
    }  # fmt: skip
    means = {name: grey.crop(x, y, w, h).avg() for name, (x, y) in corners.items()}
    return max(means, key=means.get)


@pytest.mark.parametrize(
    ("kind", "orientation"), ORIGINALS, ids=[f"{k}-o{o}" for k, o in ORIGINALS]
)
async def test_every_original_converts_to_every_format_upright(
    client, kind: str, orientation: int
) -> None:
    stored = await upload(client, original(kind, orientation))
    quarter = orientation in (5, 6, 7, 8)
    upright = (STORED[1], STORED[0]) if quarter else STORED
    assert (stored["width"], stored["height"]) == upright
    for ext, fmt in OUTPUTS.items():
        response = await client.get(f"/images/{stored['id']}.{ext}")
        assert response.status == 200, f"{ext}: {await response.text()}"
        assert response.content_type == ops.MIME_TYPES[fmt]
        image = decode(await response.read())
        loader = LOADERS.get(fmt, fmt)
        assert loader is None or image.get("vips-loader").startswith(loader), ext
        assert (image.width, image.height) == upright, ext
        assert brightest_corner(image) == CORNER[orientation], ext
