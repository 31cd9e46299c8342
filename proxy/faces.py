"""Faces: where they are in an original (for `gravity/face`, `faces/*` and `info`), and how the
boxes follow the pixels through the steps.

The detector is dlib's HOG frontal-face detector, compiled into the `dlib-bin` wheel (nothing
is downloaded at run time). It was chosen by measurement against OpenCV's Haar cascades and
MediaPipe's BlazeFace on the labelled set in tests/images (tests/test_faces.py; numbers in the
README): the same recall as BlazeFace with no extra dependencies (BlazeFace's wheel brings a
gigabyte of jax and a second OpenCV), and far fewer false positives than the cascades.

It runs on a working copy of at most EDGE pixels a side (the preview where there is one), in
the render pool; the caller caches the findings per original, so this runs once per original.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import pyvips

from . import imaging, inputs, previews
from .imaging import Header, Source

Box = tuple[int, int, int, int]  # x, y, w, h
# Enters the ETag of every render that depends on the findings: a new detector, new renders.
DETECTOR = "dlib-hog-20.0/1024/up1"
EDGE = 1024
# Detection at twice the working copy's size finds faces from about 40 px of it (80 px without):
# a face of 5 % of a group photograph's width.
UPSAMPLE = 1
# Hidden faces: the box grown by this fraction of its size on each side, so hair, ears and
# chin (outside the detector's tight box) are hidden too.
MARGIN = 0.25

_local = threading.local()  # dlib's detector object is not documented as thread-safe


def _detector():
    detector = getattr(_local, "detector", None)
    if detector is None:
        import dlib  # loaded on first use: renders without faces never pay for it

        detector = _local.detector = dlib.get_frontal_face_detector()
    return detector


def detect(img: pyvips.Image) -> list[Box]:
    """Faces in `img` (any size; reduced to at most EDGE first), in `img`'s own pixels."""
    scale = min(1.0, EDGE / max(img.width, img.height))
    work = img.resize(scale) if scale < 1.0 else img
    if work.hasalpha():
        work = work.flatten(background=[255] * (work.bands - 1))
    grey = work.colourspace("b-w")[0].cast("uchar")
    pixels = np.ndarray(
        buffer=grey.write_to_memory(), dtype=np.uint8, shape=(grey.height, grey.width)
    )
    found = _detector()(pixels, UPSAMPLE)
    boxes = []
    for rect in found:
        left, top = max(0, rect.left()), max(0, rect.top())
        right, bottom = min(grey.width, rect.right() + 1), min(grey.height, rect.bottom() + 1)
        if right > left and bottom > top:
            boxes.append(_scale((left, top, right - left, bottom - top), 1 / scale))
    return _clip(sorted(boxes), img.width, img.height)


def find(
    source: Source | inputs.Pending, header: Header, preview: Source | None = None
) -> list[Box]:
    """Faces of an original, in upright source pixels: detected on its preview when it has
    one, else on a shrink-on-load working copy."""
    copy = None
    if preview is not None:
        fmt = "webp" if header.has_alpha else "jpeg"  # as previews.encode wrote it
        try:
            copy = imaging.open_image(preview, fmt).copy_memory()
        except Exception:  # a damaged preview: the original is still there
            copy = None
    if copy is None:
        copy = previews.working_copy(source, header)
    scale_x, scale_y = header.width / copy.width, header.height / copy.height
    boxes = [
        (round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y))
        for x, y, w, h in detect(copy)
    ]
    return _clip(boxes, header.width, header.height)


def union(boxes: list[Box]) -> Box:
    """The box holding every face."""
    left = min(x for x, _, _, _ in boxes)
    top = min(y for _, y, _, _ in boxes)
    right = max(x + w for x, _, w, _ in boxes)
    bottom = max(y + h for _, y, _, h in boxes)
    return left, top, right - left, bottom - top


def grown(box: Box, width: int, height: int, margin: float = MARGIN) -> Box:
    """`box` with `margin` of its size added on every side, clipped to the image."""
    x, y, w, h = box
    dx, dy = math.ceil(w * margin), math.ceil(h * margin)
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(width, x + w + dx), min(height, y + h + dy)
    return left, top, max(0, right - left), max(0, bottom - top)


def _scale(box: Box, s: float) -> Box:
    x, y, w, h = box
    return round(x * s), round(y * s), max(1, round(w * s)), max(1, round(h * s))


def _clip(boxes: list[Box], width: int, height: int) -> list[Box]:
    out = []
    for x, y, w, h in boxes:
        left, top = min(max(0, x), width), min(max(0, y), height)
        right, bottom = min(width, x + w), min(height, y + h)
        if right > left and bottom > top:
            out.append((left, top, right - left, bottom - top))
    return out


@dataclass(slots=True)
class Track:
    """The faces of one render, moved along with the pixels by every step that moves them
    (crop, trim, rotate, flip, flop, the resize family, padding), in the current image's
    pixels. Reset for each frame of an animation."""

    source: tuple[Box, ...]  # in upright source pixels
    size: tuple[int, int]  # the upright source's width and height
    boxes: list[Box] = field(default_factory=list)

    def start(self, crop: tuple[int, int, int, int] | None, loaded: tuple[int, int]) -> None:
        """The boxes in the loaded image: `crop` taken from the upright source, then scaled to
        the `loaded` size (the loader's output, before any rotation step)."""
        boxes, base = list(self.source), self.size
        if crop:
            cx, cy, cw, ch = crop
            boxes, base = _clip([(x - cx, y - cy, w, h) for x, y, w, h in boxes], cw, ch), (cw, ch)
        self.boxes = boxes
        if loaded != base:
            self.scale(loaded[0] / base[0], loaded[1] / base[1], *loaded)

    def scale(self, sx: float, sy: float, width: int, height: int) -> None:
        self.boxes = _clip(
            [(round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy)))
             for x, y, w, h in self.boxes],
            width, height,
        )  # fmt: skip

    def shift(self, dx: int, dy: int, width: int, height: int) -> None:
        """The image moved by (dx, dy) inside a new canvas (negative: cropped away)."""
        self.boxes = _clip([(x + dx, y + dy, w, h) for x, y, w, h in self.boxes], width, height)

    def quarter(self, angle: int, width: int, height: int) -> None:
        """Turned clockwise by 90, 180 or 270 degrees; width and height before the turn."""
        out = []
        for x, y, w, h in self.boxes:
            if angle == 90:
                out.append((height - y - h, x, h, w))
            elif angle == 180:
                out.append((width - x - w, height - y - h, w, h))
            else:
                out.append((y, width - x - w, h, w))
        self.boxes = out

    def rotate(self, angle: int, before: tuple[int, int], after: tuple[int, int]) -> None:
        """Turned clockwise by any angle about the centre onto a larger canvas: each box
        becomes the box holding its turned corners."""
        theta = math.radians(angle)
        cos, sin = math.cos(theta), math.sin(theta)
        (bw, bh), (aw, ah) = before, after
        out = []
        for x, y, w, h in self.boxes:
            corners = [(x, y), (x + w, y), (x, y + h), (x + w, y + h)]
            xs, ys = [], []
            for px, py in corners:
                dx, dy = px - bw / 2, py - bh / 2
                xs.append(dx * cos - dy * sin + aw / 2)
                ys.append(dx * sin + dy * cos + ah / 2)
            left, top = math.floor(min(xs)), math.floor(min(ys))
            out.append((left, top, math.ceil(max(xs)) - left, math.ceil(max(ys)) - top))
        self.boxes = _clip(out, aw, ah)

    def mirror(self, horizontal: bool, width: int, height: int) -> None:
        if horizontal:
            self.boxes = [(width - x - w, y, w, h) for x, y, w, h in self.boxes]
        else:
            self.boxes = [(x, height - y - h, w, h) for x, y, w, h in self.boxes]
