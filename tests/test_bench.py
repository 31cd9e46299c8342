"""`make bench` keeps working: benchmarks/bench.py on a tiny workload against the real service
and thumbor (installed on first use, under a minute).

No timing is asserted (speed is what `make bench` reports, on a quiet machine): only that the
script starts the service, loads it with wrk, checks the outputs, runs the raw loop and writes
its table, with no request errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyvips

from conftest import IMAGES, REPO, ensure_tool, with_alpha


def photo(width: int, height: int) -> pyvips.Image:
    image = pyvips.Image.new_from_file(str(IMAGES / "photo.jpg"))
    return image.resize(width / image.width, vscale=height / image.height).copy_memory()


def test_bench_runs_a_tiny_workload_end_to_end(tmp_path: Path) -> None:
    ensure_tool("wrk", "wrk")
    images = tmp_path / "bench" / "images"
    images.mkdir(parents=True)
    # The benchmark's file names, made here from a test photograph instead of the wallpapers.
    large = photo(2400, 1800)
    large.jpegsave(str(images / "large.jpg"), Q=90)
    photo(800, 600).jpegsave(str(images / "medium.jpg"), Q=90)
    with_alpha(photo(600, 600)).pngsave(str(images / "alpha.png"))
    large.jpegsave(str(images / "upload.jpg"), Q=80)
    large.jpegsave(str(images / "huge.jpg"), Q=80)
    out = tmp_path / "out"
    env = {
        **os.environ,
        "BENCH_DIR": str(tmp_path / "bench"),
        "BENCH_OUT": str(out),
        "BENCH_WORKLOADS": "W1,W1o,W5,W9",
        "BENCH_DURATION": "1",
        "BENCH_WARMUP": "0",
        "BENCH_RAW_DURATION": "1",
        "BENCH_RAW_THREADS": "1",
        "BENCH_RAW_CONCURRENCY": "1",
        "BENCH_MEMCHECK": "0",
        "BENCH_QUIET_WAIT": "0",
        "BENCH_RETRIES": "0",
        # A peer on W1 too (thumbor: pip only; ipx would need Node from apt on a bare machine),
        # installed once per machine and shared with `make bench`.
        "BENCH_PEERS": "thumbor",
        "BENCH_PEERS_DIR": os.environ.get("BENCH_PEERS_DIR", "/tmp/progimage-bench"),
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench.py")],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "service ÷ raw" in done.stdout and "W1o" in done.stdout
    report = json.loads((out / "latest.json").read_text())
    for key in ("W1", "W1o", "W5", "W9"):
        entry = report["workloads"][key]
        assert entry["check"]["ok"], entry["check"]
        assert entry["service"]["ok"] > 0 and entry["service"]["errors"] == 0
    # 2400x1800 -> 267x200 renders from the preview; the raw loop does the same work.
    assert report["workloads"]["W1"]["raw"]["best"]["rendered_from"] == "preview"
    assert report["workloads"]["W1o"]["raw"]["best"]["rendered_from"] == "original"
    assert report["workloads"]["W1"]["ratio"] > 0
    # The overlays' workload is measured against W1 of the same run, not against raw libvips.
    assert "raw" not in report["workloads"]["W9"] and report["workloads"]["W9"]["relative"] > 0
    run = report["workloads"]["W1"]["peers"]["thumbor"]  # same transform, checked the same way
    assert run["check"]["ok"], run["check"]
    assert run["ok"] > 0 and run["errors"] == 0
    assert report["workloads"]["W1o"]["vs_best_peer"] > 0
    assert (out / "latest.md").read_text().startswith("# `make bench` results")
