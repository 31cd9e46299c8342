"""The raw ceiling: one workload's libvips work in-process, no HTTP, N threads for a while.

Each call of `op` does what one service request does between "original available" and
"bytes encoded" (see proxy/pipeline.py, proxy/imaging.py encode(), proxy/metadata.py), with
the original already in memory. libvips' operation cache is off, as in the service, so every
iteration is real work. cffi releases the GIL inside libvips calls, so Python threads scale.

    python benchmarks/rawloop.py W1 --threads 2 --concurrency 1 --seconds 5

Prints one JSON object. Run once per configuration: VIPS_CONCURRENCY is process-wide.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# The service's encoders, mirrored from proxy/imaging.py encode() (quality from the URL, or
# the configured defaults: avif 60, output.effort jpeg 0, webp 4 and avif 0).
JPEG = {"Q": 80, "optimize_coding": True}  # baseline: output.effort.jpeg 0
WEBP = {"Q": 80, "effort": 4}
AVIF = {"Q": 60, "compression": "av1", "effort": 0, "subsample_mode": "off"}  # 4:4:4
HASH_SIZE = 32  # proxy/metadata.py: pHash of a 32x32 grey thumbnail

# workload -> (image key, box width, box height, encoder); W6 is the upload's describe step.
RAW = {
    "W1": ("large", 300, 200, "jpeg"),
    "W2": ("large", 300, 200, "webp"),
    "W3": ("medium", 800, 600, "jpeg"),
    "W4": ("alpha", 300, 300, "webp"),
    "W6": ("upload", HASH_SIZE, HASH_SIZE, "phash"),
    "W7": ("large", 300, 200, "avif"),
}


def percentile(ordered: list[float], p: float) -> float | None:
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


# What the last make_op renders from: "original" or "preview" (reported in the JSON).
render_source = ["original"]


def make_op(workload: str, data: bytes, *, previews: bool = True) -> Callable[[], bytes]:
    import pyvips

    from proxy import metadata

    key, width, height, encoder = RAW[workload]
    keep = pyvips.enums.ForeignKeep.NONE

    if encoder == "phash":
        # The files stay until the run ends, as a store's do: unlinking each right after its
        # fsync made ext4's work per upload lighter than a store's (35 against 32 ops/s, 55
        # against 61 ms CPU, 4 threads, same machine), so the raw loop was not like for like.
        folder = Path(tempfile.mkdtemp(prefix="progimage-rawloop-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)

        def describe() -> bytes:
            # PUT /images: SHA-256 of the body, the service's own check of it (header, one
            # shrink-on-load decode of the whole image, pHash, the preview of a large
            # original), then the same durable writes as the local store's commit: body,
            # record and preview each fsynced, the rename, the directory fsynced.
            digest = hashlib.sha256(data).digest()
            facts, preview = metadata.examine(
                data, allow_svg=False, max_pixels=10**9, preview=previews
            )
            name = uuid.uuid4().hex
            record = json.dumps({"id": digest.hex()[:32], "phash": facts.phash}).encode()
            files = [folder / f"{name}.json", folder / f"{name}.preview", folder / name]
            for path, body in zip(files, (record, preview, data), strict=True):
                if body is None:
                    continue
                with open(path.with_suffix(".tmp"), "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(path.with_suffix(".tmp"), path)
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return digest + facts.phash.encode() + (preview or b"")

        return describe

    def save(image) -> bytes:
        if encoder == "jpeg":
            return image.jpegsave_buffer(keep=keep, **JPEG)
        if encoder == "webp":
            return image.webpsave_buffer(keep=keep, **WEBP)
        return image.heifsave_buffer(keep=keep, **AVIF)

    # Like the service, render from the stored preview when the output is at most half its
    # size (proxy/previews.py); it was made once, at upload.
    first = pyvips.Image.new_from_buffer(data, "", access="sequential")
    scale = min(width / first.width, height / first.height, 1.0)
    fit = (round(first.width * scale), round(first.height * scale))
    if previews:
        _, preview = metadata.examine(data, allow_svg=False, max_pixels=10**9)
        if preview is not None:
            small = pyvips.Image.new_from_buffer(preview, "")
            if fit[0] * 2 <= small.width and fit[1] * 2 <= small.height:
                data = preview
                render_source[0] = "preview"

    # Loaders by name, as the service calls them (no probe of every loader per open).
    loader = "jpegload_buffer" if data[:3] == b"\xff\xd8\xff" else None

    def render() -> bytes:
        # The service also opens the header first (sniff + limits) before the thumbnail.
        header = (
            pyvips.Operation.call(loader, data, access="sequential")
            if loader
            else pyvips.Image.new_from_buffer(data, "", access="sequential")
        )
        shrink = jpeg_shrink(header, *fit)
        if loader and shrink > 1:  # the service's DCT-scaled decode (pipeline._jpeg_shrink)
            image = pyvips.Operation.call(
                loader, data, access="sequential", shrink=shrink, fail_on="truncated"
            )
            if (image.width, image.height) != fit:
                image = image.thumbnail_image(fit[0], height=fit[1], size="force")
        else:
            image = pyvips.Image.thumbnail_buffer(data, width, height=height, fail_on="truncated")
        return save(image)

    return render


def jpeg_shrink(header, width: int, height: int) -> int:
    if not header.get("vips-loader").startswith("jpegload"):
        return 1
    for shrink in (8, 4, 2):
        if header.width // shrink >= width and header.height // shrink >= height:
            return shrink
    return 1


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def system_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=sorted(RAW))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1, help="VIPS_CONCURRENCY")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--images", default=None, help="folder with the benchmark images")
    parser.add_argument(
        "--no-previews", action="store_true", help="render from the original (storage.previews off)"
    )
    args = parser.parse_args()

    os.environ["VIPS_CONCURRENCY"] = str(args.concurrency)
    import images
    import pyvips

    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(args.concurrency)

    paths = images.ensure(Path(args.images)) if args.images else images.ensure()
    data = paths[RAW[args.workload][0]].read_bytes()
    op = make_op(args.workload, data, previews=not args.no_previews)
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    errors: list[str] = []
    last: list[bytes | None] = [None]
    state = {"deadline": 0.0, "record": False}

    def worker(slot: int) -> None:
        while (started := time.perf_counter()) < state["deadline"]:
            try:
                out = op()
            except Exception as exc:  # counted, the loop goes on
                errors.append(repr(exc)[:200])
                continue
            if state["record"]:
                latencies[slot].append(time.perf_counter() - started)
                last[0] = out

    def run(seconds: float, record: bool) -> float:
        state["record"] = record
        state["deadline"] = time.perf_counter() + seconds
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
        begun = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - begun

    if args.warmup > 0:
        run(args.warmup, False)
        errors.clear()
    cpu0, busy0 = cpu_seconds(), system_busy()
    elapsed = run(args.seconds, True)
    cpu1, busy1 = cpu_seconds(), system_busy()
    ordered = sorted(x for per in latencies for x in per)
    ncpu = os.cpu_count() or 1
    busy_pct = 100.0 * ncpu * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    own_pct = 100.0 * (cpu1 - cpu0) / elapsed
    result = {
        "workload": args.workload,
        "threads": args.threads,
        "vips_concurrency": args.concurrency,
        "previews": not args.no_previews,
        "rendered_from": render_source[0],
        "ops": len(ordered),
        "seconds": round(elapsed, 3),
        "ops_per_s": round(len(ordered) / elapsed, 2),
        "p50_ms": round(percentile(ordered, 50) * 1000, 2) if ordered else None,
        "p99_ms": round(percentile(ordered, 99) * 1000, 2) if ordered else None,
        "errors": len(errors),
        "error_samples": errors[:3],
        "cpu_pct": round(own_pct, 1),
        "cpu_ms_per_op": round(1000 * (cpu1 - cpu0) / len(ordered), 1) if ordered else None,
        "other_cpu_pct": round(max(0.0, busy_pct - own_pct), 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if last[0] is not None and RAW[args.workload][3] != "phash":
        out = pyvips.Image.new_from_buffer(last[0], "")
        loader = out.get("vips-loader")
        result["output"] = f"{out.width}x{out.height}x{out.bands} {loader} {len(last[0])}B"
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
