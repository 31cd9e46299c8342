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


def decoded(body: bytes, fmt: str) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(body, "")


def score(reference: Path, distorted_image: pyvips.Image, folder: Path) -> float:
    distorted = folder / "distorted.png"
    distorted_image.pngsave(str(distorted))
    return float(compute_ssimulacra2(str(reference), str(distorted)))


def sweep(boxes, settings, timed=timed, decoded=decoded) -> None:
    """Print the table: every setting on each photograph's render of each box. The first
    setting is the bar the others' bytes are counted against."""
    paths = images.ensure()
    print("| photo | format | q | effort | encode ms | bytes | × WebP bytes | SSIMULACRA2 |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for width, height in boxes:
            for name in ("large", "medium"):
                thumb = pyvips.Image.thumbnail(str(paths[name]), width, height=height)
                thumb = thumb.copy_memory()
                reference = folder / f"{name}.png"
                thumb.pngsave(str(reference))
                first = None
                for setting in settings:
                    ms, body = timed(thumb, setting)
                    first = first or len(body)
                    fmt, quality, effort = setting
                    quality_score = score(reference, decoded(body, fmt), folder)
                    print(
                        f"| {name} {thumb.width}×{thumb.height} | {fmt} | {quality} | {effort} "
                        f"| {ms:.1f} | {len(body)} | {len(body) / first:.2f} "
                        f"| {quality_score:.1f} |",
                        flush=True,
                    )


def main() -> None:
    sweep([BOX], SETTINGS)


if __name__ == "__main__":
    main()
