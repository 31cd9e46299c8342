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

import itertools
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
QUALITIES = (50, 55, 60, 67, 75)
SETTINGS = [
    WEBP,
    *(("avif", q, e, c) for c in ("4:2:0", "4:4:4") for e in (0, 1, 2) for q in QUALITIES),
    *(("avif", 60, 4, c) for c in ("4:2:0", "4:4:4")),
]
SUBSAMPLE = {"4:2:0": "on", "4:4:4": "off"}  # output.chroma -> libvips' subsample_mode


def encode(image: pyvips.Image, fmt: str, quality: int, effort: int, chroma="4:2:0") -> bytes:
    if fmt == "webp":
        return image.webpsave_buffer(Q=quality, effort=effort)
    return image.heifsave_buffer(
        Q=quality, effort=effort, compression="av1", subsample_mode=SUBSAMPLE[chroma]
    )


def timed(image: pyvips.Image, setting: tuple) -> tuple[float, bytes]:
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


def at_equal_score(points: list[tuple[int, int, float]], bar: float) -> float | None:
    """Bytes at score `bar`, linear between the two qualities that bracket it; None when no
    measured quality reaches it. `points`: (quality, bytes, score) in quality order."""
    for (_, b1, s1), (_, b2, s2) in itertools.pairwise(points):
        if s1 <= bar <= s2 and s2 > s1:
            return b1 + (bar - s1) / (s2 - s1) * (b2 - b1)
    return None


def sweep(boxes, settings, timed=timed, decoded=decoded) -> None:
    """Print the table: every setting on each photograph's render of each box. The first
    setting is the bar the others' bytes are counted against. Then, per encoder setting
    over its qualities, the bytes it needs to score as high as the bar."""
    paths = images.ensure()
    print(
        "| photo | format | q | effort | chroma | encode ms | bytes | × WebP bytes | SSIMULACRA2 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    curves: dict[tuple[str, tuple], list[tuple[int, int, float]]] = {}
    bars: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for width, height in boxes:
            for name in ("large", "medium"):
                thumb = pyvips.Image.thumbnail(str(paths[name]), width, height=height)
                thumb = thumb.copy_memory()
                photo = f"{name} {thumb.width}×{thumb.height}"
                reference = folder / f"{name}.png"
                thumb.pngsave(str(reference))
                first = None
                for setting in settings:
                    ms, body = timed(thumb, setting)
                    first = first or len(body)
                    fmt, quality, effort, *rest = setting
                    chroma = rest[0] if rest else "–"
                    quality_score = score(reference, decoded(body, fmt), folder)
                    bars.setdefault(photo, quality_score)
                    group = (fmt, effort, *rest)
                    curves.setdefault((photo, group), []).append(
                        (quality, len(body), quality_score)
                    )
                    print(
                        f"| {photo} | {fmt} | {quality} | {effort} | {chroma} "
                        f"| {ms:.1f} | {len(body)} | {len(body) / first:.2f} "
                        f"| {quality_score:.1f} |",
                        flush=True,
                    )
    print()
    print("| photo | format | effort | chroma | × WebP bytes at WebP's score |")
    print("|---|---|---|---|---|")
    for (photo, group), points in curves.items():
        if len(points) < 2:
            continue
        webp_bytes = curves[next(k for k in curves if k[0] == photo)][0][1]
        points = sorted(points)
        found = at_equal_score(points, bars[photo])
        fmt, effort, *rest = group
        if found is not None:
            shown = f"{found / webp_bytes:.2f}"
        elif points[0][2] > bars[photo]:  # even the lowest quality measured scores higher
            shown = f"< {points[0][1] / webp_bytes:.2f}"
        else:
            shown = "not reached"
        print(f"| {photo} | {fmt} | {effort} | {rest[0] if rest else '–'} | {shown} |")


def main() -> None:
    sweep([BOX], SETTINGS)


if __name__ == "__main__":
    main()
