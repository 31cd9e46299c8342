"""JPEG XL encoder settings against WebP and AVIF: encode time, bytes and visual quality.

As benchmarks/avif_settings.py, at two render sizes: for each benchmark photograph the
300×200 and 1200×800 boxes are rendered once from the full-resolution original and kept
unencoded as the reference; each setting encodes them through the service's own encoder
(proxy.imaging.encode: for JPEG XL that includes handing the pixels to imagecodecs), the
result is decoded and scored against the reference with SSIMULACRA2 (higher is better: ~90
visually lossless, ~70 high, ~50 medium quality). Time is the median of several encodes of
the same pixels. Needs the `bench` extra:

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/jxl_settings.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pyvips

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import avif_settings  # noqa: E402

from proxy import imaging  # noqa: E402

REPEATS = 5
BOXES = ((300, 200), (1200, 800))
WEBP = ("webp", 80, 4)  # the service's WebP default: the bar the others are held to
SETTINGS = [
    WEBP,
    ("avif", 60, 0),  # the AVIF default
    *(("jxl", q, e) for e in (1, 3, 5) for q in (60, 70, 75, 80)),
    ("jxl", 75, 7),
]


def timed(image: pyvips.Image, setting: tuple[str, int, int]) -> tuple[float, bytes]:
    fmt, quality, effort = setting
    times, body = [], b""
    for _ in range(REPEATS):
        started = time.perf_counter()
        body = imaging.encode(image, fmt, quality, effort=effort)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, body


def decoded(body: bytes, fmt: str) -> pyvips.Image:
    if fmt != "jxl":
        return pyvips.Image.new_from_buffer(body, "")
    pixels = np.ascontiguousarray(imagecodecs.jpegxl_decode(body))
    height, width, bands = pixels.shape
    return pyvips.Image.new_from_memory(pixels.tobytes(), width, height, bands, "uchar")


def main() -> None:
    avif_settings.sweep(BOXES, SETTINGS, timed=timed, decoded=decoded)


if __name__ == "__main__":
    main()
