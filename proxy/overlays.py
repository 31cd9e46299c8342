"""Overlays drawn over a rendered image: an image watermark and a line of text (SPEC §9.3).

- `apply_watermark` composites a stored image (alpha respected) at a gravity position, or tiled
  over the whole output.
- `apply_text` draws UTF-8 text, filled with a colour and ringed with a dark outline so that it
  reads on light and dark pictures alike, at a gravity position or as a diagonal pattern.

The font is Noto Sans (variable, drawn at its Bold instance), © The Noto Project Authors,
licensed under the SIL Open Font License 1.1. It ships with the project as the PyPI package
`fontpkg-noto-sans` and is found through importlib.resources, so no host font is ever used.

An overlay is composited with Porter-Duff "over" in the output's own space: sRGB, or grey
after a grayscale step, when the overlay is turned grey too. The output keeps its size, band
count and uchar format. An output with an alpha band keeps it unchanged wherever the overlay is
transparent; where the overlay covers transparent or translucent pixels the result's alpha is
a + b·(1 − a) (a the overlay's, b the output's), so a watermark stays visible over the
transparent parts of a cut-out instead of vanishing with them.

Everything is built from lazy libvips operations, pure functions of their arguments; the only
shared state is two caches (the font's path, and the font size measured for each cap height)
behind `functools.lru_cache`, which is safe to call from worker threads.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from importlib.resources import files
from xml.sax.saxutils import escape

import cachetools
import pyvips

POSITIONS = (
    "centre",
    "north",
    "south",
    "east",
    "west",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
    "tile",
)

MARGIN = 0.02  # of the output's shorter side: the gap to the edges, and between tiles

# Pango picks the Bold instance of the variable font by name; bold strokes survive small sizes
# and carry an outline better than the regular weight.
_FONT_NAME = "Noto Sans Bold"
_CAP_EM = 0.714  # Noto Sans' capHeight, 714/1000 em: only the first guess, the render decides
# The outline is the glyphs blurred and amplified: opaque up to ~1.2 sigma from the strokes, then
# fading out by ~2.2 sigma. A true dilation (libvips rank) looks no better and costs 10-50x
# more at large sizes.
_OUTLINE_SIGMA = 0.05  # of the cap height
_OUTLINE_GAIN = 8.0
_TILE_ANGLE = -30.0  # degrees, clockwise in libvips: the text climbs left to right
# A lower bound on the average advance of a character, in em: an estimate of a long text's
# width before rendering it, so that its first render is never many times wider than needed.
_MIN_ADVANCE_EM = 0.25
_MAX_GROWTH = 2.0  # per correction of a text drawn too small
_MIN_PX = 1.0  # below a pixel, pango draws nothing at all, which measures nothing


@dataclass(frozen=True, slots=True)
class Watermark:
    id: str
    position: str = "southeast"
    opacity: float = 1.0
    size: float = 0.25  # the overlay's width, as a fraction of the output's


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    position: str = "southeast"
    opacity: float = 1.0
    size: float = 0.05  # the cap height, as a fraction of the output's height
    colour: str = "ffffff"


def apply_watermark(
    img: pyvips.Image, overlay: pyvips.Image, spec: Watermark, *, content_addressed: bool = False
) -> pyvips.Image:
    """`img` with `overlay` scaled to `spec.size` of its width and composited at `spec.position`.

    `content_addressed`: `spec.id` names the overlay's bytes, so the layer made for one output
    size can be kept and reused (see `_layers`)."""
    _check_position(spec.position)

    def layer() -> pyvips.Image:
        return _scaled(_normalised(overlay), spec.size, img.width, img.height)

    key = ("watermark", spec.id, spec.size) if content_addressed else None
    return _composite(img, layer, spec.position, spec.opacity, _tile_grid, key)


def apply_text(img: pyvips.Image, spec: Text) -> pyvips.Image:
    """`img` with `spec.text` drawn at `spec.position`, its cap height `spec.size` of the height.

    A text wider than the output (less its margins) is drawn smaller, to fit on one line.
    """
    _check_position(spec.position)
    text = _clean(spec.text)
    if not text.strip():
        return img
    cap = max(1, round(spec.size * img.height))
    room = max(1, img.width - 2 * _margin(img))
    # The text layer is a function of these arguments alone (the font is fixed): always kept.
    key = ("text", text, cap, spec.colour, room)

    def layer() -> pyvips.Image | None:
        return _text_layer(text, cap, spec.colour, room)

    return _composite(img, layer, spec.position, spec.opacity, _diagonal_grid, key)


# --- compositing, shared by both overlays


def _composite(img, make_layer, position, opacity, tiler, key=None) -> pyvips.Image:
    grey = img.bands <= 2
    full = None if key is None else (*key, img.width, img.height, grey, position, opacity)
    with _layers_lock:
        placed = None if full is None else _layers.get(full)
    if placed is None:
        layer = make_layer()
        if layer is None:  # a text without ink
            return img
        placed = _placed(img, layer, position, opacity, tiler, grey)
        if full is not None:
            with _layers_lock:
                _layers[full] = placed
    layer, x, y = placed
    width, height = min(layer.width, img.width - x), min(layer.height, img.height - y)
    if (width, height) != (layer.width, layer.height):
        layer = layer.crop(0, 0, width, height)
    # Only the region under the layer is composited (in float, the costly part), then put back.
    whole = (x, y, width, height) == (0, 0, img.width, img.height)
    under = img if whole else img.crop(x, y, width, height)
    if under.bands in (1, 3):
        # An opaque output: "over" is a blend by the layer's alpha, done in integers (about a
        # third of composite2's float cost per request, the same pixels to within rounding).
        alpha = layer.extract_band(layer.bands - 1)
        patch = alpha.ifthenelse(layer.extract_band(0, n=layer.bands - 1), under, blend=True)
    else:
        space = "b-w" if grey else "srgb"
        patch = under.composite2(layer, "over", compositing_space=space)
    if patch.bands > img.bands:  # an opaque output gains an (all opaque) alpha band: drop it
        patch = patch.extract_band(0, n=img.bands)
    if patch.format != "uchar":
        patch = patch.cast("uchar")
    out = patch if whole else img.insert(patch.copy(interpretation=img.interpretation), x, y)
    return out.copy(interpretation=img.interpretation)


def _placed(img, layer, position, opacity, tiler, grey) -> tuple[pyvips.Image, int, int]:
    """The layer ready to composite (in the output's space, at its opacity, tiled if asked),
    rendered to memory, and where it goes."""
    layer = _with_opacity(_in_space(layer, grey), opacity)
    margin = _margin(img)
    if position == "tile":
        layer, x, y = tiler(layer, img.width, img.height, margin), 0, 0
    else:
        x, y = _place(position, img.width, img.height, layer.width, layer.height, margin)
    return layer.copy_memory(), x, y


# Layers made for one output size, reused by the next request of that size: scaling the logo,
# drawing the text and tiling cost several times the composite. Bounded by their pixels'
# bytes (a tiled layer is as large as the output).
_LAYER_BYTES = 64 * 2**20
_layers: cachetools.LRUCache = cachetools.LRUCache(
    maxsize=_LAYER_BYTES, getsizeof=lambda v: v[0].width * v[0].height * v[0].bands + 1
)
_layers_lock = threading.Lock()


def _margin(img: pyvips.Image) -> int:
    return round(MARGIN * min(img.width, img.height))


def _place(position, width, height, w, h, margin) -> tuple[int, int]:
    """The top-left corner of a w x h overlay at a gravity position, kept inside the output."""
    low_x, mid_x, high_x = margin, (width - w) // 2, width - w - margin
    low_y, mid_y, high_y = margin, (height - h) // 2, height - h - margin
    x = high_x if "east" in position else low_x if "west" in position else mid_x
    y = low_y if "north" in position else high_y if "south" in position else mid_y
    # An overlay too big for its margins loses them rather than its own edge.
    return max(0, min(x, width - w)), max(0, min(y, height - h))


def _tile_grid(layer: pyvips.Image, width: int, height: int, gap: int) -> pyvips.Image:
    """Copies of `layer` `gap` apart, the first `gap` from the top-left, cut to width x height."""
    cell = layer.embed(gap, gap, layer.width + gap, layer.height + gap)
    return _repeat(cell, width, height)


def _diagonal_grid(layer: pyvips.Image, width: int, height: int, gap: int) -> pyvips.Image:
    """The text climbing at 30°, in rows whose every other one is shifted by half a step."""
    slanted = _rotated(layer, _TILE_ANGLE)
    gap = max(gap, layer.height)  # at least a line of text between the rows
    cell = slanted.embed(0, 0, slanted.width + gap, slanted.height + gap)
    shifted = cell.embed(cell.width // 2, 0, cell.width, cell.height, extend="repeat")
    return _repeat(cell.join(shifted, "vertical"), width, height)


def _repeat(cell: pyvips.Image, width: int, height: int) -> pyvips.Image:
    across, down = math.ceil(width / cell.width), math.ceil(height / cell.height)
    # Rendered once: left lazy, every copy would recompute the resize or the rotation behind it.
    cell = cell.copy_memory()
    return cell.replicate(across, down).crop(0, 0, width, height)


def _rotated(layer: pyvips.Image, angle: float) -> pyvips.Image:
    # Premultiplied, so that the edges blend towards transparency rather than towards black.
    rotated = layer.premultiply().rotate(angle, background=[0] * layer.bands)
    return rotated.unpremultiply().cast("uchar").copy(interpretation=layer.interpretation)


# --- the overlay's colour space and alpha


def _normalised(overlay: pyvips.Image) -> pyvips.Image:
    """Grey or sRGB with an alpha band, whatever interpretation the loader gave it."""
    space = "b-w" if overlay.bands <= 2 else "srgb"
    overlay = overlay.copy(interpretation=space)
    return overlay if overlay.bands in (2, 4) else overlay.bandjoin(255)


def _in_space(layer: pyvips.Image, grey: bool) -> pyvips.Image:
    space = "b-w" if grey else "srgb"
    return layer if layer.interpretation == space else layer.colourspace(space)


def _with_opacity(layer: pyvips.Image, opacity: float) -> pyvips.Image:
    if opacity >= 1:
        return layer
    alpha = layer.extract_band(layer.bands - 1).linear(opacity, 0.5, uchar=True)
    return layer.extract_band(0, n=layer.bands - 1).bandjoin(alpha)


def _scaled(overlay: pyvips.Image, size: float, width: int, height: int) -> pyvips.Image:
    """`size` of the output's width wide (aspect kept), and never taller than the output."""
    target = max(1, min(width, round(size * width)))
    if overlay.width == target and overlay.height <= height:
        return overlay
    # thumbnail_image premultiplies around the resize, so transparent pixels don't darken edges.
    return overlay.thumbnail_image(target, height=height, size="both")


# --- text


def _clean(text: str) -> str:
    """One line of valid UTF-8: control characters (newlines too) become spaces."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)


def _rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (0, 2, 4)]


def _text_layer(text: str, cap: int, colour: str, room: int) -> pyvips.Image | None:
    """The text as an sRGB + alpha image: glyphs of `colour` (RRGGBB) in a dark outline, cut
    to their extent."""
    sigma = max(0.6, _OUTLINE_SIGMA * cap)
    pad = math.ceil(3 * sigma) + 1  # where the outline has faded to nothing
    mask = _fitted_mask(text, cap, max(1, room - 2 * pad))
    if mask is None:
        return None
    mask = mask.embed(pad, pad, mask.width + 2 * pad, mask.height + 2 * pad)
    outline = (mask.gaussblur(sigma, precision="integer") * _OUTLINE_GAIN).cast("uchar")
    ring = (outline * 0).bandjoin([outline * 0, outline * 0, outline]).cast("uchar")
    fill = (mask * 0 + _rgb(colour)).cast("uchar").bandjoin(mask)
    ring, fill = ring.copy(interpretation="srgb"), fill.copy(interpretation="srgb")
    return ring.composite2(fill, "over", compositing_space="srgb").cast("uchar")


def _fitted_mask(text: str, cap: int, room: int) -> pyvips.Image | None:
    """The text's coverage mask with the cap height asked, or smaller to be `room` wide at most.

    None when the text has no ink (only zero-width or blank characters).
    """
    full = _font_px(cap)
    # A long text is first drawn at a size guessed to fit, then corrected from what it measured.
    px = max(_MIN_PX, min(full, room / (len(text) * _MIN_ADVANCE_EM)))
    mask = _render(text, px)
    for _ in range(3):
        if mask is None or (mask.width <= room and (px >= full or mask.width >= 0.97 * room)):
            break
        # Widths are not quite proportional to the size (hinting): aim a little short. Growing
        # is bounded, in case a text of narrow glyphs measured unreliably small.
        factor = min(_MAX_GROWTH, 0.99 * room / mask.width)
        scaled = max(_MIN_PX, min(full, px * factor))
        if scaled == px:
            break
        px, mask = scaled, _render(text, scaled)
    return mask


@functools.lru_cache(maxsize=1024)
def _font_px(cap: int) -> float:
    """The font size, in pixels, whose rendered "H" is `cap` pixels tall.

    Hinting snaps the cap height to whole pixels, so a size computed from the font's metrics
    alone can be a pixel off: measure, and correct once or twice.
    """
    px = cap / _CAP_EM
    best = (math.inf, px)
    for _ in range(4):
        got = _cap_height(px)
        best = min(best, (abs(got - cap), px))
        if got == cap or got == 0:
            break
        px *= cap / got
    return best[1]


def _cap_height(px: float) -> int:
    """The rendered height of "H": the coverage summed down its stem."""
    column_sums = _render("H", px).cast("uint").project()[0]
    return round(column_sums.max() / 255)


def _render(text: str, px: float) -> pyvips.Image | None:
    """The text's coverage (one uchar band), cut by libvips to the extent of its ink."""
    font = f"{_FONT_NAME} {px:.3f}px"
    try:
        return pyvips.Image.text(escape(text), font=font, fontfile=font_file())
    except pyvips.Error as error:
        if "no text to render" in str(error):
            return None
        raise


@functools.lru_cache(maxsize=1)
def font_file() -> str:
    """The path of the Noto Sans TTF inside the installed `fontpkg-noto-sans` package."""
    path = files("fontpkg_noto_sans").joinpath("files", "NotoSans[wdth,wght].ttf")
    return os.fspath(path)


@functools.lru_cache(maxsize=1)
def _coverage() -> frozenset[int]:
    """The code points the font draws (its cmap), read once."""
    from fontTools.ttLib import TTFont

    with TTFont(font_file(), lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing(text: str) -> list[str]:
    """The characters of `text` the font has no glyph for, in order, each once.

    Without this check pango would draw them from whatever font the host has, or as boxes of
    hex digits: other pixels on another machine, or none a reader can use. Format characters
    (zero-width joiners, variation selectors) draw nothing themselves and are let through.
    """
    covered = _coverage()
    seen: dict[str, None] = {}
    for c in text:
        if ord(c) not in covered and not _draws_nothing(c):
            seen.setdefault(c)
    return list(seen)


def _draws_nothing(c: str) -> bool:
    point = ord(c)
    return (
        unicodedata.category(c) in ("Cf", "Cc")
        or 0xFE00 <= point <= 0xFE0F  # variation selectors
        or 0xE0100 <= point <= 0xE01EF
    )


def setup_fonts(directory: str | None = None) -> None:
    """Point fontconfig at the shipped font alone (unless the operator set FONTCONFIG_FILE):
    the host's fonts then never change a text overlay, or the text of an SVG original. And
    read the font's coverage now rather than in the first request that needs it.

    Must run before libvips first draws text (fontconfig reads its configuration once)."""
    _coverage()
    if "FONTCONFIG_FILE" in os.environ:
        return
    if directory is None:
        directory = tempfile.mkdtemp(prefix="progimage-fonts-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.makedirs(os.path.join(directory, "cache"), exist_ok=True)
    config = os.path.join(directory, "fonts.conf")
    fonts = os.path.dirname(font_file())
    body = (
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><dir>{escape(fonts)}</dir>"
        f"<cachedir>{escape(os.path.join(directory, 'cache'))}</cachedir></fontconfig>\n"
    )
    temporary = f"{config}.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(body)
    os.replace(temporary, config)  # atomic: processes starting together never read half a file
    os.environ["FONTCONFIG_FILE"] = config


def _check_position(position: str) -> None:
    if position not in POSITIONS:
        raise ValueError(f"unknown position {position!r}: expected one of {', '.join(POSITIONS)}")
