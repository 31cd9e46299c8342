"""Placeholders for an image: a BlurHash, a ThumbHash and a dominant colour.

- BlurHash (https://blurha.sh), 4x3 components, encoded by `fast-blurhash` (MIT; PyO3
  bindings to the `fast-blurhash` crate), which gives the same strings as woltapp's C encoder.
- ThumbHash (https://evanw.github.io/thumbhash/), returned as the standard base64 of its
  bytes, encoded by `thumbhash-rs` (MIT; PyO3 bindings to Evan Wallace's own `thumbhash`
  crate, imported as `thumbhash`).
- The dominant colour, as lowercase `RRGGBB`, computed here with numpy: the mean colour of
  the densest patch of a coarse RGB histogram of the visible pixels (see `_dominant`); an
  image with no visible pixel gives "000000".

Neither library needs Pillow: both are fed the bytes of one small RGBA copy made with libvips.
Everything here is a pure function of the pixels, safe to call from worker threads.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

import fast_blurhash
import numpy as np
import pyvips
import thumbhash

EDGE = 100  # ThumbHash refuses larger inputs; both hashes keep only the lowest frequencies
BLURHASH_COMPONENTS = (4, 3)  # x, y
TRANSPARENT = "000000"  # the dominant colour of an image with no visible pixel
_THUMBHASH_MIN_SIDE = 4

# The colour histogram has _LEVELS steps per channel. A pixel counts towards its own cell and
# the 26 around it, so each cell scores a cube 3 steps wide: a flat colour that sits on a cell
# boundary is not split in two and beaten by a smaller area that happens to sit mid-cell.
_LEVELS = 16
_STEP = 256 // _LEVELS


@dataclass(frozen=True, slots=True)
class Placeholders:
    blurhash: str
    thumbhash: str
    dominant_color: str  # RRGGBB, lowercase

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def compute(image: pyvips.Image) -> Placeholders:
    """From an upright 8-bit sRGB image of any size (1-4 bands: grey, grey+alpha, RGB, RGBA)."""
    rgba = _small_rgba(image)
    return Placeholders(
        blurhash=_blurhash(rgba),
        thumbhash=_thumbhash(rgba),
        dominant_color=_dominant(rgba),
    )


def _small_rgba(image: pyvips.Image) -> np.ndarray:
    """At most EDGE x EDGE, aspect kept, as an (h, w, 4) uint8 array of unpremultiplied RGBA."""
    if image.format != "uchar":
        raise ValueError(f"placeholders need an 8-bit image, not {image.format}")
    # The band count is the contract, not the interpretation tag: images made from memory are
    # "multiband", and thumbnail_image premultiplies only what hasalpha() admits to, which
    # keeps the colour of invisible pixels from bleeding into the visible ones. (It rounds
    # the premultiplied values to 8 bits, so a faint pixel's colour comes back coarse; every
    # use below weighs colour by alpha, where that error stays within one level.)
    image = image.copy(interpretation="b-w" if image.bands < 3 else "srgb")
    small = image.thumbnail_image(EDGE, height=EDGE, size="down")
    pixels = np.ndarray(
        buffer=small.write_to_memory(),
        dtype=np.uint8,
        shape=(small.height, small.width, small.bands),
    )
    return _as_rgba(pixels)


def _as_rgba(pixels: np.ndarray) -> np.ndarray:
    """Grey to RGB and an opaque alpha where there is none, done on the small copy."""
    bands = pixels.shape[2]
    colour = pixels[..., :1].repeat(3, axis=2) if bands < 3 else pixels[..., :3]
    if bands in (2, 4):
        alpha = pixels[..., -1:]
    else:
        alpha = np.full((*pixels.shape[:2], 1), 255, dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([colour, alpha], axis=-1))


def _blurhash(rgba: np.ndarray) -> str:
    # BlurHash has no alpha: show what a page with a white background would show.
    alpha = rgba[..., 3:].astype(np.uint32)
    rgb = ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    # BlurHash samples its cosines at x/w with no half-pixel offset, so a flat image leaks
    # about 2/w of its colour into the AC terms: ripples of a few levels at 100 px, and of
    # the whole colour for a side of one pixel (a 1x1 image, a 4000x10 strip). Its
    # coordinates are relative and the decoder is told the size, so the copy can be
    # stretched to a square without changing what the hash describes.
    square = _stretched(rgb, EDGE, EDGE)
    return fast_blurhash.encode(square.tobytes(), *BLURHASH_COMPONENTS, width=EDGE, height=EDGE)


def _thumbhash(rgba: np.ndarray) -> str:
    height, width = rgba.shape[:2]
    # ThumbHash keeps 3 to 7 cosines per axis. On fewer than 4 samples the highest ones
    # alias onto the mean and decode as stripes, so a tiny image or a thin strip is stretched
    # to 4 px, keeping the aspect ratio (which the hash encodes) as far as EDGE allows.
    if min(height, width) < _THUMBHASH_MIN_SIDE:
        scale = _THUMBHASH_MIN_SIDE / min(height, width)
        height, width = (min(EDGE, round(side * scale)) for side in (height, width))
        rgba = _stretched(rgba, height, width)
    return base64.b64encode(thumbhash.rgba_to_thumb_hash(width, height, rgba.tobytes())).decode()


def _stretched(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling: enough for hashes that keep only the lowest frequencies."""
    rows = np.arange(height) * pixels.shape[0] // height
    columns = np.arange(width) * pixels.shape[1] // width
    return np.ascontiguousarray(pixels[rows][:, columns])


def _dominant(rgba: np.ndarray) -> str:
    """The alpha-weighted mean of the densest colour cube of a coarse RGB histogram.

    Each pixel weighs its alpha, so fully transparent pixels do not count and the
    half-covered edge pixels of a shrunk cut-out count half.
    """
    pixels = rgba.reshape(-1, 4)
    weight = pixels[:, 3].astype(np.float64)
    if not weight.any():
        return TRANSPARENT
    cell = (pixels[:, :3] // _STEP).astype(np.intp)
    best = _densest_cell(cell, weight)
    near = (np.abs(cell - best) <= 1).all(axis=1)
    mean = np.average(pixels[near, :3], axis=0, weights=weight[near])
    red, green, blue = (int(v) for v in np.rint(mean))
    return f"{red:02x}{green:02x}{blue:02x}"


def _densest_cell(cell: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The histogram cell whose 3x3x3 neighbourhood holds the most weight; the first on a tie."""
    index = (cell[:, 0] * _LEVELS + cell[:, 1]) * _LEVELS + cell[:, 2]
    counts = np.bincount(index, weights=weight, minlength=_LEVELS**3)
    padded = np.pad(counts.reshape((_LEVELS,) * 3), 1)
    score = sum(
        padded[r : r + _LEVELS, g : g + _LEVELS, b : b + _LEVELS]
        for r in range(3)
        for g in range(3)
        for b in range(3)
    )
    return np.array(np.unravel_index(int(np.argmax(score)), score.shape))
