"""Pipeline steps: one function per step name of the operation registry (ops.REGISTRY).

A step takes the image and the plan and returns the image, untouched when its operation is
not asked for. `ORDER` runs them in the registry's order (SPEC §9.6), after the conversion to
8-bit sRGB that every later step relies on. Geometry that shrink-on-load can do (crop, the
resize itself) happens at load (pipeline.py); the steps here see the loaded pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyvips

from . import faces, imaging, ops, overlays

if TYPE_CHECKING:
    from .pipeline import Plan

Step = Callable[[pyvips.Image, "Plan"], pyvips.Image]
STEPS: dict[str, Step] = {}


def step(name: str) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        STEPS[name] = fn
        return fn

    return register


GRAVITY_XY = {
    "centre": (0.5, 0.5), "north": (0.5, 0.0), "south": (0.5, 1.0), "east": (1.0, 0.5),
    "west": (0.0, 0.5), "northeast": (1.0, 0.0), "northwest": (0.0, 0.0),
    "southeast": (1.0, 1.0), "southwest": (0.0, 1.0),
}  # fmt: skip


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i : i + 2], 16) for i in (0, 2, 4)]


def fill_colour(img: pyvips.Image, p: Plan) -> tuple[pyvips.Image, list[float]]:
    """The image (given an alpha band when the margin is to be transparent) and the colour
    of new pixels: transparent when the output can have alpha and no `bg` was given."""
    if not p.options.bg and p.output_format in ops.ALPHA_FORMATS:
        if not img.hasalpha():
            img = img.bandjoin_const([255])
        return img, [0] * img.bands
    colour: list[float] = rgb(p.options.background)
    if img.bands - int(img.hasalpha()) == 1:
        colour = [sum(colour) / 3]
    return img, [*colour, 255] if img.hasalpha() else colour


def srgb(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if (
        p.keep_profile
        and img.get_typeof("icc-profile-data")
        and img.format == "uchar"
        and img.interpretation in ("srgb", "b-w")
    ):
        return img  # `meta/keep`: RGB or grey pixels stay in the source's own (wide) gamut
    # Everything else (CMYK, 16-bit, Lab…) becomes 8-bit sRGB: the steps and encoders need it.
    return imaging.to_srgb(img)


@step("trim")
def trim(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if p.options.trim is None:
        return img
    flat = img.flatten(background=[255] * (img.bands - 1)) if img.hasalpha() else img
    background = flat(0, 0)
    left, top, width, height = flat.find_trim(threshold=p.options.trim, background=background)
    if width == 0 or height == 0:  # all border: nothing would be left
        return img
    if p.faces:
        p.faces.shift(-left, -top, width, height)
    return img.extract_area(left, top, width, height)


@step("rotate")
def rotate(img: pyvips.Image, p: Plan) -> pyvips.Image:
    angle = p.options.rotate
    if not angle:
        return img
    if angle in (90, 180, 270):
        if p.faces:
            p.faces.quarter(angle, img.width, img.height)
        return img.rot(f"d{angle}")
    img, colour = fill_colour(img, p)
    # libvips turns clockwise for positive angles; the canvas grows to hold every corner.
    turned = img.rotate(angle, background=colour)
    if p.faces:
        p.faces.rotate(angle, (img.width, img.height), (turned.width, turned.height))
    return turned


@step("flip")
def flip(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if not p.options.flip:
        return img
    if p.faces:
        p.faces.mirror(False, img.width, img.height)
    return img.flipver()


@step("flop")
def flop(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if not p.options.flop:
        return img
    if p.faces:
        p.faces.mirror(True, img.width, img.height)
    return img.fliphor()


@step("fit")
def fit(img: pyvips.Image, p: Plan) -> pyvips.Image:
    """The resize family's crop (fill, thumbnail) or canvas (pad). When the plan could not
    size the image before loading (trim, free rotation), the scaling happens here too."""
    o = p.options
    if o.fit is None:
        return img
    if p.late:
        from .pipeline import geometry, resize_exact

        scaled, final = geometry(o, img.width, img.height)
        if scaled and scaled != (img.width, img.height):
            if p.faces:
                p.faces.scale(scaled[0] / img.width, scaled[1] / img.height, *scaled)
            img = resize_exact(img, *scaled)
    else:
        final = p.final
    if final is None:
        return img
    if o.mode == "pad":
        return _pad(img, p, final)
    return _fill_crop(img, p, final)


def _fill_crop(img: pyvips.Image, p: Plan, final: tuple[int, int]) -> pyvips.Image:
    w, h = min(final[0], img.width), min(final[1], img.height)
    if (w, h) == (img.width, img.height):
        return img
    gravity = p.options.effective_gravity
    if gravity == "face":
        if p.faces and p.faces.boxes:  # the box of every face, as near the centre as can be
            fx, fy, fw, fh = faces.union(p.faces.boxes)
            gravity = ((fx + fw / 2) / img.width, (fy + fh / 2) / img.height)
        else:
            gravity = "smart"
    if gravity in ("smart", "entropy"):
        interesting = "attention" if gravity == "smart" else "entropy"
        out, found = img.smartcrop(
            w, h, interesting=interesting, attention_x=True, attention_y=True
        )
        if p.faces and p.faces.boxes:  # faces/… needs to know where the crop was taken
            x, y = _smartcrop_origin(img, out, interesting, found)
            p.faces.shift(-x, -y, w, h)
        return out
    if isinstance(gravity, tuple):  # a focal point: as near the centre as the image allows
        fx, fy = gravity
        x = min(max(0, round(fx * img.width - w / 2)), img.width - w)
        y = min(max(0, round(fy * img.height - h / 2)), img.height - h)
    else:
        gx, gy = GRAVITY_XY[gravity]
        x, y = round((img.width - w) * gx), round((img.height - h) * gy)
    if p.faces:
        p.faces.shift(-x, -y, w, h)
    return img.extract_area(x, y, w, h)


def _smartcrop_origin(
    img: pyvips.Image, out: pyvips.Image, interesting: str, found: dict
) -> tuple[int, int]:
    """Where libvips took its smart crop. `attention` centres the crop on the point it
    reports; `entropy` reports none, so the crop is found among the positions it could take
    (a fill crop is cut along one axis only) by comparing pixels."""
    w, h = out.width, out.height
    if interesting == "attention":
        x = min(max(0, found["attention_x"] - w // 2), img.width - w)
        y = min(max(0, found["attention_y"] - h // 2), img.height - h)
        return x, y
    best, origin = None, (0, 0)
    candidates = [(x, 0) for x in range(img.width - w + 1)] if h == img.height else []
    candidates += [(0, y) for y in range(img.height - h + 1)] if w == img.width else []
    for x, y in candidates:
        difference = (img.extract_area(x, y, w, h) - out).abs().max()
        if best is None or difference < best:
            best, origin = difference, (x, y)
            if difference == 0:
                break
    return origin


def _pad(img: pyvips.Image, p: Plan, final: tuple[int, int]) -> pyvips.Image:
    w, h = final
    if (w, h) == (img.width, img.height):
        return img
    gx, gy = GRAVITY_XY[p.options.gravity or "centre"]
    if img.hasalpha() and not p.options.bg and p.output_format in ops.ALPHA_FORMATS:
        background = [0] * img.bands  # transparent margins for transparent images
    else:
        background = rgb(p.options.background)[: img.bands - int(img.hasalpha())]
        if img.hasalpha():
            background = [*background, 255]
    x, y = round((w - img.width) * gx), round((h - img.height) * gy)
    if p.faces:
        p.faces.shift(x, y, w, h)
    return img.embed(x, y, w, h, extend="background", background=background)


@step("padding")
def padding(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if not p.options.padding:
        return img
    top, right, bottom, left = p.options.padding
    img, colour = fill_colour(img, p)
    width, height = img.width + left + right, img.height + top + bottom
    if p.faces:
        p.faces.shift(left, top, width, height)
    return img.embed(left, top, width, height, extend="background", background=colour)


@step("tone")
def tone(img: pyvips.Image, p: Plan) -> pyvips.Image:
    """brightness, contrast, saturation and hue in one trip through LCh, where lightness,
    chroma and hue are separate bands (as sharp's modulate does)."""
    o = p.options
    if not (o.brightness or o.contrast or o.saturation or o.hue):
        return img
    alpha = img[img.bands - 1] if img.hasalpha() else None
    colour = img.extract_band(0, n=img.bands - 1) if alpha is not None else img
    grey = colour.bands == 1
    lch = colour.colourspace("lch")
    lightness, chroma, hue = lch[0], lch[1], lch[2]
    if o.brightness:
        lightness = lightness * (1 + o.brightness / 100)
    if o.contrast:
        lightness = (lightness - 50) * (1 + o.contrast / 100) + 50
    if o.saturation:
        chroma = chroma * (1 + o.saturation / 100)
    if o.hue:
        hue = (hue + o.hue) % 360
    out = lightness.bandjoin([chroma, hue]).copy(interpretation="lch")
    out = out.colourspace("b-w" if grey else "srgb").cast("uchar")
    return out.bandjoin(alpha) if alpha is not None else out


@step("blur")
def blur(img: pyvips.Image, p: Plan) -> pyvips.Image:
    return img.gaussblur(p.options.blur) if p.options.blur else img


@step("sharpen")
def sharpen(img: pyvips.Image, p: Plan) -> pyvips.Image:
    return img.sharpen(sigma=p.options.sharpen) if p.options.sharpen else img


@step("pixelate")
def pixelate(img: pyvips.Image, p: Plan) -> pyvips.Image:
    size = p.options.pixelate
    if not size:
        return img
    return _blocks(img, size)


def _blocks(img: pyvips.Image, size: int) -> pyvips.Image:
    # Each block is the mean of its pixels; the last row and column of blocks may be partial.
    width, height = img.width, img.height
    across, down = math.ceil(width / size), math.ceil(height / size)
    padded = img.embed(0, 0, across * size, down * size, extend="copy")
    blocks = padded.shrink(size, size).zoom(size, size)
    return blocks.extract_area(0, 0, width, height).cast(img.format)


@step("faces")
def hide_faces(img: pyvips.Image, p: Plan) -> pyvips.Image:
    """Every face found, grown by faces.MARGIN, blurred or pixelated beyond recognition."""
    mode = p.options.faces
    if not mode or not p.faces:
        return img
    for box in p.faces.boxes:
        x, y, w, h = faces.grown(box, img.width, img.height)
        if w < 1 or h < 1:
            continue
        region = img.extract_area(x, y, w, h)
        if mode == "blur":
            # Strong enough that no feature survives: a sigma of a sixth of the face.
            hidden = region.gaussblur(max(2.0, max(w, h) / 6)).cast(img.format)
        else:  # about eight blocks across the face, however large it is
            size = max(2, math.ceil(max(w, h) / 8))
            hidden = _blocks(region, size)
        img = img.insert(hidden, x, y)
    return img


@step("grayscale")
def grayscale(img: pyvips.Image, p: Plan) -> pyvips.Image:
    return img.colourspace("b-w") if p.options.grayscale else img


@step("round")
def round_corners(img: pyvips.Image, p: Plan) -> pyvips.Image:
    radius = p.options.round
    if radius is None:
        return img
    w, h = img.width, img.height
    xy = pyvips.Image.xyz(w, h)
    # Distances from the centre of each pixel; coverage gets a one-pixel soft edge.
    dx = ((xy[0] + 0.5) - w / 2).abs()
    dy = ((xy[1] + 0.5) - h / 2).abs()
    if radius == "max":
        rx, ry = w / 2, h / 2
        distance = ((dx / rx) ** 2 + (dy / ry) ** 2) ** 0.5
        coverage = ((1 - distance) * min(rx, ry) + 0.5).clamp(min=0, max=1)
    else:
        r = min(radius, w / 2, h / 2)
        # How far past the straight edges a pixel is, towards its corner (0 elsewhere).
        ox, oy = dx - (w / 2 - r), dy - (h / 2 - r)
        ox, oy = (ox > 0).ifthenelse(ox, 0), (oy > 0).ifthenelse(oy, 0)
        coverage = (r - (ox**2 + oy**2) ** 0.5 + 0.5).clamp(min=0, max=1)
    if not img.hasalpha():
        img = img.bandjoin_const([255])
    alpha = (img[img.bands - 1] * coverage).cast("uchar")
    colour = img.extract_band(0, n=img.bands - 1)
    return colour.bandjoin(alpha).copy(interpretation=img.interpretation)


@step("watermark")
def watermark(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if p.options.watermark is None or p.overlay is None:
        return img
    spec = overlays.Watermark(*p.options.watermark)
    return overlays.apply_watermark(img, p.overlay, spec, content_addressed=True)


@step("text")
def text(img: pyvips.Image, p: Plan) -> pyvips.Image:
    if p.options.text is None:
        return img
    return overlays.apply_text(img, overlays.Text(*p.options.text))


@step("bg")
def flatten(img: pyvips.Image, p: Plan) -> pyvips.Image:
    """Alpha into formats without it (JPEG): composed over `bg`."""
    if not img.hasalpha() or p.output_format in ops.ALPHA_FORMATS:
        return img
    background = rgb(p.options.background)
    if img.bands <= 2:
        background = [sum(background) / 3]
    return img.flatten(background=background)


def _order() -> list[Step]:
    names = dict.fromkeys(op.step for op in ops.REGISTRY if op.step)
    return [srgb, *(STEPS[name] for name in names)]


ORDER: list[Step] = _order()
