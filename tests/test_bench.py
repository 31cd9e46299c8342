"""`make bench` keeps working: benchmarks/bench.py on a tiny workload against the real service
and thumbor (installed on first use, under a minute), and W8's pure parts (the site's URLs,
the Zipf picks, the Accept mix, reading nginx's log and the service's metrics).

No timing is asserted (speed is what `make bench` reports, on a quiet machine): only that the
script starts the service, loads it with wrk, checks the outputs, runs the raw loop and writes
its table, with no request errors.
"""

from __future__ import annotations

import http.server
import json
import math
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import pyvips

from conftest import IMAGES, REPO, ensure_tool, with_alpha
from proxy.renderer import negotiate

sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402
import site_workload as site  # noqa: E402

SIZES = {"large": (4000, 3000), "medium": (1600, 1200), "alpha": (1000, 1000)}


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
        "BENCH_WORKLOADS": "W1,W1o,W5,W8,W9",
        "BENCH_SITE_ORIGINALS": "8",
        "BENCH_SITE_URLS": "80",
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
    # W8: the service and thumbor behind nginx.conf, cold, every share accounted for.
    w8 = report["workloads"]["W8"]
    assert w8["check"]["ok"], w8["check"]
    assert w8["relative"] > 0 and "W8 behind nginx.conf" in done.stdout
    for run in (w8["service"], w8["peers"]["thumbor"]):
        assert run["check"]["ok"], run["check"]
        assert run["ok"] > 0 and run["errors"] == 0
        assert run["logged"]["requests"] >= run["ok"] and run["logged"]["urls"] <= 80
        assert sum(run["shares"].values()) == pytest.approx(1.0, abs=0.02)
        assert run["shares"]["renders"] > 0
    assert w8["service"]["service_counts"]["renders"] > 0


# --- W8's pure parts: no server


def site_urls(count: int = 3000) -> tuple[list[site.Original], list[site.Derived]]:
    origs = site.originals(160, SIZES)
    return origs, site.derived(origs, count)


def test_site_urls_are_deterministic_distinct_and_a_mix() -> None:
    origs, urls = site_urls()
    assert (origs, urls) == site_urls()  # same seed, same site
    assert site.originals(160, SIZES, seed=9) != origs
    assert len(urls) == 3000 and len(set(urls)) == 3000
    ids = [f"{i:032x}" for i in range(len(origs))]
    assert len({d.service_path(ids[d.original]) for d in urls}) == 3000
    # thumbor has no fmt/auto: asked as WebP, those URLs are the fmt/webp ones where both exist.
    thumbor = {d.thumbor_path(origs[d.original].name) for d in urls}
    same = {(d.original, d.op, d.width, d.height, "webp" if d.fmt == "auto" else d.fmt)
            for d in urls}  # fmt: skip
    assert len(thumbor) == len(same) < 3000
    assert len({d.original for d in urls}) > 0.9 * len(origs)  # many originals, not a few
    kinds = Counter((d.op, d.fmt) for d in urls)
    assert set(kinds) == {("resize", "auto"), ("fill", "auto"), ("resize", "webp"),
                          ("resize", None), ("fill", "jpeg")}  # fmt: skip
    assert kinds["resize", "auto"] == max(kinds.values())  # srcset with fmt/auto leads
    assert {o.fmt for o in origs} == {"jpeg", "png"}
    for o in origs:
        assert max(o.width, o.height) <= 3000 and 0 < o.crop[2] <= SIZES[o.source][0]
        assert o.crop[0] + o.crop[2] <= SIZES[o.source][0]
        assert o.crop[1] + o.crop[3] <= SIZES[o.source][1]
    for d in urls:  # never more pixels than the original has: no upscaling to compare
        o = origs[d.original]
        assert d.width <= o.width and (d.height or 0) <= o.height
    with pytest.raises(ValueError, match="renditions"):
        site.derived(origs[:2], 3000)


def test_site_url_languages_say_the_same_transform() -> None:
    jpeg = site.Original(0, "large", (0, 0, 4000, 3000), 2400, 1600, "jpeg")
    png = site.Original(1, "alpha", (0, 0, 1000, 1000), 1000, 800, "png")
    auto = site.Derived(0, "resize", 640, None, "auto")
    assert auto.service_path("ID") == "/resize/640x/fmt/auto/ID"
    assert auto.thumbor_path("a.jpg") == "/unsafe/fit-in/640x0/filters:format(webp)/a.jpg"
    assert auto.expect(jpeg, "avif") == (640, 427, 3, "heif")
    assert auto.expect(jpeg, "other") == (640, 427, 3, "jpeg")
    assert auto.expect(jpeg, "avif", thumbor=True) == (640, 427, 3, "webp")
    legacy = site.Derived(1, "resize", 1600, None, None)
    assert legacy.service_path("ID") == "/resize/1600x/ID"
    assert legacy.thumbor_path("b.png") == "/unsafe/fit-in/1600x0/b.png"
    assert legacy.expect(png, "avif") == (1000, 800, 4, "png")  # no enlarge
    og = site.Derived(0, "fill", 1200, 630, "jpeg")
    assert og.service_path("ID") == "/fill/1200x630/fmt/jpeg/ID"
    assert og.thumbor_path("a.jpg") == "/unsafe/1200x630/filters:format(jpeg)/a.jpg"
    assert og.expect(jpeg, "avif") == (1200, 630, 3, "jpeg")


def test_site_picks_follow_zipf() -> None:
    picks = site.picks(3000, 200_000)
    assert picks == site.picks(3000, 200_000) and picks != site.picks(3000, 200_000, seed=9)
    ranks = Counter(u for u, _ in picks)
    harmonic = sum(1 / k for k in range(1, 3001))
    for k in (1, 2, 10):  # P(rank k) = 1/(k H), s = 1
        assert ranks[k - 1] / len(picks) == pytest.approx(1 / (k * harmonic), rel=0.1)
    top = sum(ranks[i] for i in range(30)) / len(picks)  # the top 1 % of the URLs
    assert top == pytest.approx(sum(1 / k for k in range(1, 31)) / harmonic, rel=0.03)
    # Each decade of ranks draws less than the one before, and the tail is still asked for.
    decades = [sum(ranks[i] for i in range(a, a + 300)) for a in range(0, 3000, 300)]
    assert decades == sorted(decades, reverse=True) and decades[-1] > 0
    assert len(ranks) > 0.9 * 3000
    flat = Counter(u for u, _ in site.picks(100, 100_000, s=0.0))
    assert max(flat.values()) / min(flat.values()) < 1.3  # s is the skew and nothing else


def test_site_accept_mix_and_what_nginx_and_the_service_make_of_it() -> None:
    picks = site.picks(3000, 200_000)
    shares = Counter(a for _, a in picks)
    weights = [w for *_, w in site.ACCEPTS]
    for index, weight in enumerate(weights):
        assert shares[index] / len(picks) == pytest.approx(weight / sum(weights), abs=0.01)
    conf = (REPO / "nginx.conf").read_text()
    classes = {name: site.accept_class(accept, conf) for name, accept, _ in site.ACCEPTS}
    assert classes == {"chromium": "avif", "safari": "avif", "firefox": "avif", "curl": "other"}
    for name, accept, _ in site.ACCEPTS:
        assert negotiate(accept) == (None if name == "curl" else "avif")
    assert site.accept_class("image/avif;q=0,image/webp", conf) == "webp"


def test_site_nginx_conf_changes_only_addresses_and_the_peers_key() -> None:
    text = (REPO / "nginx.conf").read_text()
    one = site.nginx_conf(text, 18001, [18002])
    assert "listen 127.0.0.1:18001;" in one and "server 127.0.0.1:18002;" in one
    assert "8000" not in one and "8080" not in one and "least_conn" not in one
    assert "$progimage_accept_class|$progimage_dpr_key" in one
    many = site.nginx_conf(text, 18001, [18002, 18003], key_on_url=True)
    assert "least_conn; server 127.0.0.1:18002; server 127.0.0.1:18003;" in many
    assert 'proxy_cache_key "$scheme$host$request_uri";' in many
    assert many.count("proxy_cache_key") == 1
    assert len(many.splitlines()) == len(text.splitlines())
    with pytest.raises(ValueError):
        site.nginx_conf(text.replace("listen 127.0.0.1:8000;", ""), 1, [2])


def test_site_shares_from_nginx_log_and_service_metrics() -> None:
    line = ('127.0.0.1 [04/Dec/2026:17:51:12 +0000] "GET {} HTTP/1.1" 200 9 cache={} '
            "accept={} rt=0.001 urt=0.001")  # fmt: skip
    log = "\n".join([
        line.format("/a", "MISS", "avif"), line.format("/a", "HIT", "avif"),
        line.format("/a", "HIT", "avif"), line.format("/a", "MISS", "other"),
        line.format("/b", "MISS", "avif"), line.format("/b", "UPDATING", "avif"),
        line.format("/health", "-", "other"), "garbage",
    ])  # fmt: skip
    logged = site.cache_statuses(log)
    assert logged["cache"] == {"MISS": 3, "HIT": 2, "UPDATING": 1, "-": 1}
    assert logged["requests"] == 7 and logged["keys"] == 4 and logged["urls"] == 3
    assert logged["nginx_last_quarter"] == 0.0  # the last 7 // 4 lines: /health, not cached
    assert logged["request_time_ms"] == {"p50": 1.0, "p99": 1.0}
    warm = site.cache_statuses("\n".join([line.format("/a", "MISS", "avif")] * 4
                                         + [line.format("/a", "HIT", "avif")] * 4))  # fmt: skip
    assert warm["nginx_last_quarter"] == 1.0
    metrics = "\n".join([
        "# HELP progimage_requests_total HTTP requests by route, method and status",
        'progimage_requests_total{method="GET",route="derived",status="200"} 3.0',
        'progimage_requests_total{method="GET",route="/health",status="200"} 5.0',
        'progimage_cache_requests_total{cache="results",result="hit"} 1.0',
        'progimage_cache_requests_total{cache="results",result="miss"} 2.0',
        'progimage_render_seconds_bucket{family="resize",le="0.1"} 2.0',
        'progimage_render_seconds_count{family="resize"} 1.0',
        'progimage_render_seconds_count{family="fill"} 1.0',
    ])  # fmt: skip
    counts = site.service_counts(metrics)
    assert counts == {"derived": 3.0, "cache_hits": 1.0, "store_hits": 0.0, "renders": 2.0}
    shares = site.shares(logged, counts)
    assert shares == {"nginx": round(3 / 7, 4), "service_cache": round(1 / 7, 4),
                      "renders": round(2 / 7, 4), "merged": 0.0}  # fmt: skip
    assert site.shares(logged, None)["renders"] == round(4 / 7, 4)  # thumbor keeps nothing


def test_site_lua_replays_the_picks_in_order(tmp_path: Path) -> None:
    """site.lua sends the URL and the Accept header of each pick, in the sequence's order."""
    ensure_tool("wrk", "wrk")
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.path, self.headers.get("Accept", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    paths = [f"/u{i}" for i in range(50)]
    sequence = site.picks(len(paths), 5000)
    site.write_sequence(tmp_path, sequence)
    workload = next(w for w in bench.WORKLOADS if w.key == "W8")
    script, args = bench.wrk_script(tmp_path, workload, paths, 1)
    url = f"http://127.0.0.1:{server.server_address[1]}{paths[0]}"
    try:
        done = subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-s", str(script), url, "--", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert "BENCH_JSON" in done.stdout
    # wrk calls request() once in its first thread to check the script before connecting
    # (script_verify_request): that pick is never sent.
    expected = [(paths[u], site.ACCEPTS[a][1]) for u, a in sequence] * 100
    assert len(seen) > 100 and seen == expected[1 : len(seen) + 1]


def test_site_row_and_note_in_the_report() -> None:
    run = {"req_s": 120.0, "p50_ms": 1.0, "p99_ms": 300.0, "errors": 0, "errors_503": 0,
           "peak_rss_mb": 300.0, "service_cpu_ms_per_req": 5.0, "other_cpu_pct": 0.0,
           "requests": 1200, "bytes": 60_000_000,
           "logged": {"urls": 900, "nginx_last_quarter": 0.9,
                      "request_time_ms": {"p50": 0.0, "p99": 250.0}},
           "shares": {"nginx": 0.7, "service_cache": 0.01, "renders": 0.28, "merged": 0.01},
           "check": {"ok": True, "output": "6/6 sample URLs right"}}  # fmt: skip
    entry = {"title": "site", "urls": 3000, "originals": 160, "service": run, "peers": {},
             "check": run["check"], "relative": 0.5, "peer_note": "thumbor not run (x)",
             "site": {"zipf_s": 1.0, "seed": 8, "accepts": {"chromium": 66},
                      "memory_mb": 128, "duration_s": 20}}  # fmt: skip
    knobs = {"conns": 8, "duration_s": 10, "warmup_s": 2, "raw_duration_s": 5,
             "raw_threads": [1], "raw_vips_concurrency": [1]}  # fmt: skip
    environment = {"date": "now", "nproc": 2, "libvips": "8", "pyvips": "3", "wrk": "wrk",
                   "commit": "x", "tree_dirty": False, "peers": {}, "knobs": knobs}  # fmt: skip
    report = {"workloads": {"W8": entry}, "environment": environment}
    [row] = bench.rows(report)
    assert row[0].startswith("W8 site") and row[1] == "120.0" and "0.50 × W1" in row
    lines = bench.site_rows(report)
    mine = dict(zip(bench.SITE_HEADER, lines[0], strict=True))
    assert mine["W8 behind nginx.conf"] == "ProgImage" and mine["req/s"] == "120.0"
    assert mine["nginx cache"] == "70.0 %" and mine["nginx, last ¼"] == "90.0 %"
    assert mine["KB/response"] == "50.0" and mine["at nginx p50/p99 ms"] == "0 / 250"
    assert lines[1][:2] == ["thumbor", "thumbor not run (x)"]
    text = bench.markdown(report)
    assert "| W8 behind nginx.conf |" in text and "filters:format(webp)" in text
    assert "thumbor not run" in bench.table(report)
    # W8 that could not run at all (no nginx, say) is a row saying so, not a lost report.
    report["workloads"]["W8"] = {"title": "site", "error": "nginx: not found"}
    [row] = bench.rows(report)
    assert row[1] == "not run: nginx: not found" and len(row) == len(bench.HEADER)
    assert bench.site_rows(report) == [] and "W8 behind" not in bench.markdown(report)
    assert math.isclose(sum(run["shares"].values()), 1.0)
