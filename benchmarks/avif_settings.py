"""AVIF encoder settings against WebP: encode time, bytes and visual quality.

For each benchmark photograph, the 300-px thumbnail the service renders (W1/W7's box) is
made once from the full-resolution original and kept unencoded as the reference; each
setting encodes it, the result is decoded and scored against the reference with
SSIMULACRA2 (the `ssimulacra2` package, BSD-3; higher is better: ~90 visually lossless, ~70
high, ~50 medium quality). Time is the median of several encodes of the same pixels, so it
is the encoder's alone. Needs the `bench` extra:

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/avif_settings.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyvips
from ssimulacra2 import compute_ssimulacra2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import images  # noqa: E402

REPEATS = 7
BOX = (300, 200)
WEBP = ("webp", 80, 4)  # the service's WebP default: the bar AVIF is held to
SETTINGS = [WEBP] + [("avif", q, e) for e in (0, 1, 2, 4) for q in (50, 60, 67, 75)]


def encode(image: pyvips.Image, fmt: str, quality: int, effort: int) -> bytes:
    if fmt == "webp":
        return image.webpsave_buffer(Q=quality, effort=effort)
    return image.heifsave_buffer(Q=quality, effort=effort, compression="av1")


def timed(image: pyvips.Image, setting: tuple[str, int, int]) -> tuple[float, bytes]:
    times, body = [], b""
    for _ in range(REPEATS):
        started = time.perf_counter()
        body = encode(image, *setting)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, body


def score(reference: Path, body: bytes, folder: Path) -> float:
    distorted = folder / "distorted.png"
    pyvips.Image.new_from_buffer(body, "").pngsave(str(distorted))
    return float(compute_ssimulacra2(str(reference), str(distorted)))


def main() -> None:
    paths = images.ensure()
    print("| photo | format | q | effort | encode ms | bytes | × WebP bytes | SSIMULACRA2 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("large", "medium"):
            thumb = pyvips.Image.thumbnail(str(paths[name]), BOX[0], height=BOX[1])
            thumb = thumb.copy_memory()
            reference = folder / f"{name}.png"
            thumb.pngsave(str(reference))
            webp_bytes = None
            for setting in SETTINGS:
                ms, body = timed(thumb, setting)
                webp_bytes = webp_bytes or len(body)
                fmt, quality, effort = setting
                print(
                    f"| {name} {thumb.width}×{thumb.height} | {fmt} | {quality} | {effort} "
                    f"| {ms:.1f} | {len(body)} | {len(body) / webp_bytes:.2f} "
                    f"| {score(reference, body, folder):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
