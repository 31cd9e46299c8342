"""`make bench`: the real service over loopback with wrk, against raw libvips in-process.

For every workload the service (`workers: 0`, one process per core, result cache off except
for W5) is loaded with wrk, then the same libvips work runs in-process with pyvips
(benchmarks/rawloop.py) over a small grid of raw configurations (Python threads x libvips
concurrency); the best raw figure is the ceiling the service is compared with. Service and raw
runs of one workload are taken back to back, so their ratio is meaningful even on a busy
machine; absolute numbers are not.

Workloads (photographs, see benchmarks/images.py):
  W1 4000x3000 JPEG -> fit 300x200 JPEG q80       W2 same -> 300x200 WebP q80
  W3 1600x1200 JPEG -> 800x600 JPEG q80           W4 1000x1000 RGBA PNG -> 300x300 WebP q80
  W5 W1's URL repeated, result cache on (hits)    W6 PUT /images, ~2 MB JPEG, unique bodies
  W7 W1 as AVIF (fmt/avif, default quality 60)
  W8 a site (benchmarks/site_workload.py): BENCH_SITE_URLS distinct derived URLs of
     BENCH_SITE_ORIGINALS originals, Zipf popularity, browsers' Accept headers mixed, through
     ./nginx.conf, nginx and the service started cold; the shares served by nginx's cache,
     the service's cache and renders; thumbor behind the same nginx; reported relative to W1
  W10 3000x4000 JPEG portrait -> thumbnail 300x300 gravity/face (faces found once per original);
     reported relative to W1
  W1o, W2o: W1 and W2 from the original, on a service with `storage.previews: false`
  W9 W1 with a watermark (a 400 px RGBA logo) and a text overlay; reported relative to W1
W1, W2 and W7 render from the preview the service keeps of large originals (proxy/previews.py);
so does their raw counterpart, which gets the same preview bytes.
Then a memory check: W1's transform of 24 MP JPEGs at 16 connections, previews off (each
render decodes the whole original); peak RSS, and RSS 10 s after the load vs idle.

The GET workloads that render (W1-W4, W7) spread their requests over 64 stored copies of the
original that differ only in a JPEG COM / PNG tEXt comment (same pixels, same work; see
rotate.lua). With one repeated URL the service's single-flight would render each batch of
identical concurrent requests once, and the benchmark would measure request merging instead
of rendering (about 4x the real rate with 8 connections).

Knobs (environment):
  BENCH_DURATION (10)   seconds of each measured wrk run
  BENCH_CONNS (8)       wrk connections
  BENCH_WARMUP (2)      seconds of wrk warm-up before each run (discarded)
  BENCH_RAW_DURATION    seconds of each raw configuration (default: half of BENCH_DURATION)
  BENCH_RAW_THREADS     raw grid, Python threads (1,2,4)
  BENCH_RAW_CONCURRENCY raw grid, libvips concurrency (1,2)
  BENCH_WORKLOADS       subset, e.g. W1,W3 (all by default); BENCH_MEMCHECK=0 skips the check
  BENCH_SITE_ORIGINALS (160), BENCH_SITE_URLS (3000): W8's originals and derived URLs;
  BENCH_SITE_DURATION   seconds of W8's runs, from cold, no warm-up (2 x BENCH_DURATION)
  BENCH_NO_RAW=1        service only
  BENCH_PEERS           peers measured in the same run on W1-W4 and W7, thumbor on W8 too
                        (thumbor,ipx; empty = none); installed on first use under
                        BENCH_PEERS_DIR (default: BENCH_DIR,
                        /tmp/progimage-bench, where the photographs are made too)
  BENCH_QUIET_WAIT (10) BENCH_QUIET_MAX (15) BENCH_NOISY_MAX (25) BENCH_RETRIES (1)
  BENCH_BUDGET (420)    noise control: wait for a quiet machine, retry a run that shared the
                        CPU, keep the cleanest attempt; no waits or retries past the budget (s)
  BENCH_SERVICE_CMD     how to start the service (default: .venv/bin/progimage)
  BENCH_CONFIG          JSON merged into the service configuration, e.g. '{"limits":
                        {"concurrency": 1}}'
  BENCH_OUT             results folder (benchmarks/results); BENCH_TAG names the files
                        (latest.json / latest.md by default)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import images  # noqa: E402
import peers  # noqa: E402
import site_workload as site  # noqa: E402
from process_group import ProcessGroup  # noqa: E402

NCPU = os.cpu_count() or 1
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


DURATION = env_float("BENCH_DURATION", 10)
CONNS = int(env_float("BENCH_CONNS", 8))
WARMUP = env_float("BENCH_WARMUP", 2)
RAW_DURATION = env_float("BENCH_RAW_DURATION", max(2.0, DURATION / 2))
RAW_THREADS = [int(x) for x in env_list("BENCH_RAW_THREADS", "1,2,4")]
RAW_CONCURRENCY = [int(x) for x in env_list("BENCH_RAW_CONCURRENCY", "1,2")]
WRK_THREADS = 2
MEMCHECK_CONNS = 16
MEMCHECK_SETTLE = 10.0
# GET workloads rotate over this many byte-different copies of their original, so that no two
# requests in flight name the same URL (the service's single-flight would merge them into one
# render); 4 per connection of the busiest run keeps each wrk thread's cycle long enough.
COPIES = 4 * max(CONNS, MEMCHECK_CONNS)
# Noise control: before each measured run wait up to QUIET_WAIT s for the machine to fall
# under QUIET_MAX % busy; retry a run during which other processes used over NOISY_MAX % of a
# core; both stop once BUDGET seconds of the whole benchmark are spent.
QUIET_WAIT = env_float("BENCH_QUIET_WAIT", 10)
QUIET_MAX = env_float("BENCH_QUIET_MAX", 15)
NOISY_MAX = env_float("BENCH_NOISY_MAX", 25)
RETRIES = int(env_float("BENCH_RETRIES", 1))
BUDGET = env_float("BENCH_BUDGET", 420)
PEERS = env_list("BENCH_PEERS", "thumbor,ipx")
# W8 (site_workload.py): how many originals and distinct derived URLs.
SITE_ORIGINALS = int(env_float("BENCH_SITE_ORIGINALS", 160))
SITE_URLS = int(env_float("BENCH_SITE_URLS", 3000))
SITE_MEMORY_MB = 128  # cache.memory_mb's default: the service as deployed
# W8 runs from cold, without warm-up: twice as long as the others' measured run, so that the
# caches get somewhere (a render takes tens of ms; the first seconds are nearly all renders).
SITE_DURATION = env_float("BENCH_SITE_DURATION", 2 * DURATION)
# Requests drawn in advance, more than a run sends (nginx answering hits on two cores beside
# wrk: a few thousand a second), so the sequence does not wrap.
SITE_PICKS = max(100_000, int(SITE_DURATION * 12_500))
# After wrk stops, let the requests still in flight finish before reading the counters, so
# nginx's log and the service's counters cover the same requests.
SITE_SETTLE = 1.0
STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    image: str  # images.ensure() key
    path: str  # URL path, {id} is the stored original
    expect: tuple[int, int, int, str] | None  # width, height, bands, loader prefix
    method: str = "GET"
    cache: bool = False
    previews: bool = True  # storage.previews: small renders of large originals read a preview
    relative_to: str | None = None  # measured against this workload of the same run, not raw
    site: bool = False  # W8: many URLs through nginx (site_measure)

    @property
    def raw(self) -> bool:
        return self.key != "W5" and self.relative_to is None


WORKLOADS = [
    Workload("W1", "4000x3000 JPEG -> fit 300x200 JPEG q80", "large",
             "/resize/300x200/q/80/{id}", (267, 200, 3, "jpeg")),
    Workload("W2", "4000x3000 JPEG -> fit 300x200 WebP q80", "large",
             "/resize/300x200/fmt/webp/q/80/{id}", (267, 200, 3, "webp")),
    Workload("W3", "1600x1200 JPEG -> 800x600 JPEG q80", "medium",
             "/resize/800x600/q/80/{id}", (800, 600, 3, "jpeg")),
    Workload("W4", "1000x1000 RGBA PNG -> 300x300 WebP q80", "alpha",
             "/resize/300x300/fmt/webp/q/80/{id}", (300, 300, 4, "webp")),
    Workload("W5", "W1 URL repeated, result cache on (hits)", "large",
             "/resize/300x200/q/80/{id}", (267, 200, 3, "jpeg"), cache=True),
    Workload("W6", "PUT /images, ~2 MB JPEG, unique bodies", "upload", "/images", None,
             method="PUT"),
    Workload("W7", "4000x3000 JPEG -> fit 300x200 AVIF (q60)", "large",
             "/resize/300x200/fmt/avif/{id}", (267, 200, 3, "heif")),
    Workload("W8", f"site: {SITE_URLS} URLs of {SITE_ORIGINALS} originals, Zipf, browsers' "
             "Accept, via nginx.conf", "site", "", None, site=True, relative_to="W1"),
    Workload("W10", "3000x4000 JPEG portrait -> thumbnail 300x300 gravity/face", "faces",
             "/thumbnail/300x300/gravity/face/{id}", (300, 300, 3, "jpeg"), relative_to="W1"),
    Workload("W1o", "W1 from the original (storage.previews off)", "large",
             "/resize/300x200/q/80/{id}", (267, 200, 3, "jpeg"), previews=False),
    Workload("W2o", "W2 from the original (storage.previews off)", "large",
             "/resize/300x200/fmt/webp/q/80/{id}", (267, 200, 3, "webp"), previews=False),
    Workload("W9", "W1 + watermark + text overlay", "large",
             "/resize/300x200/q/80/watermark/{logo},southeast,0.8/"
             "text/%C2%A9%20ProgImage%202026,southwest/{id}", (267, 200, 3, "jpeg"),
             relative_to="W1"),
    Workload("W11", "4000x3000 HEIC -> fit 300x200 WebP q80", "heic",
             "/resize/300x200/fmt/webp/q/80/{id}", (267, 200, 3, "webp"), relative_to="W2"),
    Workload("W11o", "W11 from the original (HEVC decoded in the sandbox)", "heic",
             "/resize/300x200/fmt/webp/q/80/{id}", (267, 200, 3, "webp"), previews=False,
             relative_to="W2"),
    Workload("W12", "A4 PDF page -> 300 px wide PNG (drawn in the sandbox)", "pdf",
             "/resize/300x/fmt/png/{id}", (300, 425, 3, "png"), relative_to="W1"),
]  # fmt: skip


# --- /proc: the service's process tree, its RSS and CPU


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def tree(*roots: int) -> list[int]:
    """The roots and every descendant (the kernel here has no /proc/*/task/*/children)."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if fields:
                parents.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / TICK


def system_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


class RssSampler(threading.Thread):
    """Peak RSS of the tree, sampled every 100 ms."""

    def __init__(self, *roots: int) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.peak = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        pids, rescan = tree(*self.roots), time.monotonic() + 1.0
        while not self._halt.is_set():
            if time.monotonic() > rescan:
                pids, rescan = tree(*self.roots), time.monotonic() + 1.0
            self.peak = max(self.peak, rss_bytes(pids))
            self.samples += 1
            self._halt.wait(0.1)

    def finish(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


# --- the service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


class Service(ProcessGroup):
    """`progimage serve` in its own session (process group), stopped by that group id."""

    def __init__(
        self, workdir: Path, store: Path, *, memory_mb: int, previews: bool = True
    ) -> None:
        super().__init__(workdir)
        extra = json.loads(os.environ.get("BENCH_CONFIG") or "{}")
        self.config = merge(
            {
                "storage": {"path": str(store), "previews": previews},
                "server": {"workers": 0},
                "cache": {"memory_mb": memory_mb},
                "limits": {"queue": 256},
                "overlays": {"allow_unsigned_text": True},  # W9
            },
            extra,
        )
        workers = self.config["server"]["workers"] or NCPU
        self.processes = 1 if workers == 1 else workers + 1
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        self.name = f"service-{self.port}"
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(json.dumps(self.config))  # JSON is YAML
        command = os.environ.get("BENCH_SERVICE_CMD") or str(REPO / ".venv/bin/progimage")
        self.launch([*shlex.split(command), "serve", "--config", str(config),
                     "--port", str(self.port)])  # fmt: skip

        def ready() -> bool:
            with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                if r.status == 200 and len(tree(self.pid)) >= self.processes:
                    time.sleep(0.5)  # let every worker reach its accept loop
                    return True
            return False

        self.wait_ready(ready, 60)
        return self

    def upload(self, data: bytes) -> str:
        request = urllib.request.Request(self.base + "/images", data=data, method="PUT")
        with urllib.request.urlopen(request, timeout=120) as r:
            return json.load(r)["id"]

    def upload_copies(self, path: Path, count: int) -> list[str]:
        """`count` byte-different copies of one image (see images.tagged): distinct ids."""
        data = path.read_bytes()
        bodies = [images.tagged(data, f"progimage-bench copy {i}") for i in range(count)]
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(self.upload, bodies))


def check_output(
    url: str, expect: tuple[int, int, int, str], headers: dict | None = None, slack: int = 0
) -> dict:
    """Fetch once and decode: the benchmark must measure the right image, not an error.
    `slack`: pixels a size may be off by (servers round a computed height differently)."""
    import pyvips

    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=60) as r:
            body, mime, timing = (
                r.read(),
                r.headers.get("Content-Type"),
                r.headers.get("Server-Timing"),
            )
    except urllib.error.HTTPError as exc:
        return {"ok": False, "detail": f"HTTP {exc.code}: {exc.read()[:200]!r}"}
    image = pyvips.Image.new_from_buffer(body, "")
    got = (image.width, image.height, image.bands, image.get("vips-loader"))
    near = all(abs(a - b) <= slack for a, b in zip(got[:2], expect[:2], strict=True))
    ok = near and got[2] == expect[2] and got[3].startswith(expect[3])
    return {
        "ok": ok,
        "output": f"{got[0]}x{got[1]}x{got[2]} {got[3]} {len(body)}B {mime}",
        "server_timing": timing,
    }


# --- wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: apt-get update && apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True,
                   stdout=subprocess.DEVNULL, env=env)  # fmt: skip
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def wrk_script(
    workdir: Path, workload: Workload, paths: list[str], threads: int
) -> tuple[Path, list[str]]:
    """stats.lua alone (one URL), or with rotate.lua (many originals) or upload.lua (PUT)."""
    stats = (HERE / "stats.lua").read_text()
    if workload.method == "PUT":
        script = workdir / "upload-combined.lua"
        script.write_text(stats + "\n" + (HERE / "upload.lua").read_text())
        upload = images.ensure()[workload.image]
        return script, [str(upload), uuid.uuid4().hex[:12]]
    if workload.site:
        script = workdir / "site-combined.lua"
        script.write_text(stats + "\n" + (HERE / "site.lua").read_text())
        listing = workdir / f"paths-{workload.key}.txt"
        listing.write_text("\n".join(paths) + "\n")
        files = (listing, workdir / site.PICKS_FILE, workdir / site.ACCEPTS_FILE)
        return script, [*map(str, files), str(threads)]
    if len(paths) == 1:
        return HERE / "stats.lua", []
    script = workdir / "rotate-combined.lua"
    script.write_text(stats + "\n" + (HERE / "rotate.lua").read_text())
    listing = workdir / f"paths-{workload.key}.txt"
    listing.write_text("\n".join(paths) + "\n")
    return script, [str(listing), str(threads)]


def run_wrk(
    service: Service | peers.Peer | SiteStack,
    workload: Workload,
    paths: list[str],
    workdir: Path,
    seconds: float,
    conns: int,
) -> dict:
    """One wrk run against the service (or a peer), with its trees' peak RSS and CPU."""
    threads = max(1, min(WRK_THREADS, conns))
    script, args = wrk_script(workdir, workload, paths, threads)
    url = service.base + paths[0]
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), url]  # fmt: skip
    if args:
        argv += ["--", *args]
    pids = tree(*service.roots)
    sampler = RssSampler(*service.roots)
    cpu0, busy0, wrk0 = cpu_seconds(pids), system_busy(), _children_cpu()
    sampler.start()
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    peak = sampler.finish()
    cpu1, busy1, wrk1 = cpu_seconds(tree(*service.roots)), system_busy(), _children_cpu()
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    statuses = {int(k): v for k, v in data["statuses"].items()}
    seconds_run = data["duration_us"] / 1e6
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    sock = sum(data["socket_errors"].values()) - data["socket_errors"]["status"]
    service_cpu = cpu1 - cpu0
    busy = NCPU * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * elapsed
    return {
        "req_s": round(ok / seconds_run, 2),
        "requests": data["requests"],
        "ok": ok,
        "bytes": data["bytes"],
        "p50_ms": round(data["latency_us"]["p50"] / 1000, 1),
        "p90_ms": round(data["latency_us"]["p90"] / 1000, 1),
        "p99_ms": round(data["latency_us"]["p99"] / 1000, 1),
        "max_ms": round(data["latency_us"]["max"] / 1000, 1),
        "errors": sum(n for code, n in statuses.items() if not 200 <= code < 300) + sock,
        "errors_503": statuses.get(503, 0),
        "socket_errors": data["socket_errors"],
        "statuses": statuses,
        "peak_rss_mb": round(peak / 2**20, 1),
        "rss_samples": sampler.samples,
        "service_cpu_pct": round(100 * service_cpu / elapsed, 1),
        "service_cpu_ms_per_req": round(1000 * service_cpu / ok, 1) if ok else None,
        "wrk_cpu_pct": round(100 * (wrk1 - wrk0) / elapsed, 1),
        "other_cpu_pct": round(100 * max(0.0, busy - service_cpu - (wrk1 - wrk0)) / elapsed, 1),
        "connections": conns,
        "seconds": round(seconds_run, 2),
        "command": shlex.join(argv),
    }


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load(service: Service, workload: Workload, paths: list[str], workdir: Path, conns: int) -> dict:
    if WARMUP > 0:
        run_wrk(service, workload, paths, workdir, WARMUP, conns)

    def attempt() -> dict:
        return run_wrk(service, workload, paths, workdir, DURATION, conns)

    return least_noisy(attempt, f"{workload.key} service")


# --- noise: other engineers' test suites share these cores


def in_budget() -> bool:
    return time.monotonic() - STARTED < BUDGET


def wait_quiet() -> float:
    """Wait (within the budget) until the machine is idle; returns the busy % last seen."""
    deadline = time.monotonic() + QUIET_WAIT
    while True:
        before = system_busy()
        time.sleep(0.5)
        after = system_busy()
        busy = 100.0 * NCPU * (after[0] - before[0]) / max(1, after[1] - before[1])
        if busy <= QUIET_MAX or time.monotonic() > deadline or not in_budget():
            return busy


def least_noisy(attempt: Callable[[], dict], label: str) -> dict:
    """Run after a quiet wait; retry a run that shared the CPU with others; keep the cleanest."""
    runs = []
    for number in range(RETRIES + 1):
        busy_before = wait_quiet()
        run = attempt()
        run["busy_before_pct"] = round(busy_before, 1)
        run["attempt"] = number + 1
        runs.append(run)
        if run["other_cpu_pct"] <= NOISY_MAX or not in_budget() or number == RETRIES:
            break
        log(f"  {label}: other processes used {run['other_cpu_pct']}% CPU, retrying")
    best = min(runs, key=lambda r: r["other_cpu_pct"])
    best["noisy"] = best["other_cpu_pct"] > NOISY_MAX
    return best


# --- raw libvips


def raw_search(workload: Workload) -> dict:
    runs = []
    for threads in RAW_THREADS:
        for concurrency in RAW_CONCURRENCY:
            argv = [sys.executable, str(HERE / "rawloop.py"), workload.key.removesuffix("o"),
                    "--threads", str(threads), "--concurrency", str(concurrency),
                    "--seconds", str(RAW_DURATION), "--warmup", "1"]  # fmt: skip
            if not workload.previews:
                argv.append("--no-previews")

            def attempt(argv: list[str] = argv) -> dict:
                done = subprocess.run(argv, capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"rawloop failed: {done.stderr[-800:]}")
                return json.loads(done.stdout.strip().splitlines()[-1])

            run = least_noisy(attempt, f"raw {workload.key} t{threads} c{concurrency}")
            runs.append(run)
            log(f"  raw {workload.key} threads={threads} vips_concurrency={concurrency}: "
                f"{run['ops_per_s']} ops/s p50 {run['p50_ms']} ms")  # fmt: skip
    best = max(runs, key=lambda r: r["ops_per_s"]) if runs else None
    return {"best": best, "runs": runs}


# --- the run


def measure(workloads: list[Workload], workdir: Path) -> dict:
    paths = images.ensure_documents()
    store = workdir / "store"
    results: dict[str, dict] = {}
    wanted = {w.key for w in workloads}
    compared = PEERS and any(w.key in peers.TRANSFORMS for w in workloads)
    peer_set = PeerSet(workdir, paths).start() if compared else None

    def one(service: Service, workload: Workload, ids: dict[str, list[str]]) -> None:
        logo = (ids.get("logo") or [""])[0]
        urls = [workload.path.format(id=i, logo=logo) for i in ids.get(workload.image, [""])]
        log(f"{workload.key} {workload.title}: {urls[0]} ({len(urls)} originals)")
        entry: dict = {"title": workload.title, "path": workload.path, "method": workload.method,
                       "originals": len(urls)}  # fmt: skip
        if workload.expect:
            entry["check"] = check_output(service.base + urls[0], workload.expect)
            if not entry["check"]["ok"]:
                log(f"  OUTPUT CHECK FAILED: {entry['check']}")
        entry["service"] = load(service, workload, urls, workdir, CONNS)
        s = entry["service"]
        log(f"  service: {s['req_s']} req/s p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
            f"errors {s['errors']} rss {s['peak_rss_mb']} MB cpu {s['service_cpu_pct']}% "
            f"other {s['other_cpu_pct']}%")  # fmt: skip
        if peer_set is not None and workload.key in peers.TRANSFORMS:
            entry["peers"] = peer_set.measure(workload)
        if workload.raw and not os.environ.get("BENCH_NO_RAW"):
            entry["raw"] = raw_search(workload)
            best = entry["raw"]["best"]
            if best and best["ops_per_s"]:
                entry["ratio"] = round(s["req_s"] / best["ops_per_s"], 3)
            if best and best["cpu_ms_per_op"] and s["service_cpu_ms_per_req"]:
                entry["cpu_ratio"] = round(best["cpu_ms_per_op"] / s["service_cpu_ms_per_req"], 3)
        results[workload.key] = entry

    try:
        # Cache off: every request renders. W6 last, it fills the store. The rows from originals
        # get a service and a store of their own, without previews.
        for previews, folder in ((True, store), (False, workdir / "store-originals")):
            plain = [w for w in workloads
                     if not w.cache and not w.site and w.previews == previews]  # fmt: skip
            plain.sort(key=lambda w: w.method == "PUT")
            if not plain:
                continue
            service = Service(workdir, folder, memory_mb=0, previews=previews).start()
            try:
                keys = {w.image for w in plain if w.method == "GET"}
                ids = {k: service.upload_copies(paths[k], COPIES) for k in keys}
                if any("{logo}" in w.path for w in plain):
                    ids["logo"] = [service.upload(images.logo(paths["alpha"]))]
                for workload in plain:
                    one(service, workload, ids)
            finally:
                service.stop()
        for workload in (w for w in workloads if w.cache):
            service = Service(workdir, store, memory_mb=128).start()
            try:
                # One URL: the first request per worker process renders, the rest are hits.
                ids = {"large": [service.upload(paths["large"].read_bytes())]}
                one(service, workload, ids)
            finally:
                service.stop()
        for workload in (w for w in workloads if w.site):
            try:
                results[workload.key] = site_measure(workload, workdir, paths)
            except Exception as exc:  # e.g. no nginx and no apt: the other rows still count
                log(f"W8 not run: {exc}")
                results[workload.key] = {"title": workload.title, "error": str(exc)[:500]}
    finally:
        if peer_set is not None:
            peer_set.stop()
    compare_with_peers(results)
    for workload in workloads:
        base = results.get(workload.relative_to or "")
        if "service" in results.get(workload.key, {}) and base:
            rate = results[workload.key]["service"]["req_s"] / max(base["service"]["req_s"], 1e-9)
            results[workload.key]["relative"] = round(rate, 3)
    memory = None
    if os.environ.get("BENCH_MEMCHECK", "1") != "0" and "W1" in wanted:
        memory = memory_check(workdir, store, paths)
    return {"workloads": results, "memory_check": memory}


class PeerSet:
    """thumbor and ipx on the same photographs, rotations and wrk settings (see peers.py),
    started once and measured right after the service on each workload, so that a drift in
    the machine's speed during the run does not fall between them."""

    def __init__(self, workdir: Path, paths: dict[str, Path]) -> None:
        root = images.IMAGES.parent
        self.installs = Path(os.environ.get("BENCH_PEERS_DIR") or root)
        self.folder = root / "peer-images"
        self.names = peers.copies(paths, self.folder, COPIES, images.tagged)
        self.workdir = workdir
        self.running: dict[str, tuple[peers.Peer, Callable[[str, str], str]]] = {}
        self.failed: dict[str, str] = {}

    def start(self) -> PeerSet:
        for name in PEERS:
            try:
                if name == "thumbor":
                    ports = [free_port() for _ in range(1 + NCPU)]
                    peer = peers.thumbor_lb(self.installs, self.workdir, self.folder, ports, NCPU)
                    route = peers.thumbor_path
                elif name == "ipx":
                    peer = peers.ipx(self.installs, self.workdir, self.folder, free_port())
                    route = peers.ipx_path
                else:
                    raise ValueError(f"unknown peer {name!r} (BENCH_PEERS: thumbor,ipx)")
                self.running[name] = (peer, route)
                peer.start(route("W1", self.names["large"][0]))
            except Exception as exc:  # a peer that cannot run is reported, the bench goes on
                log(f"peer {name} unavailable: {exc}")
                self.failed[name] = str(exc)[:500]
                started = self.running.pop(name, None)
                if started is not None:
                    started[0].stop()  # whatever it did start must not load the machine
        return self

    def measure(self, workload: Workload) -> dict[str, dict]:
        results: dict[str, dict] = {name: {"error": why} for name, why in self.failed.items()}
        for name, (peer, route) in self.running.items():
            urls = [route(workload.key, n) for n in self.names[workload.image]]
            assert workload.expect is not None
            entry = {"check": check_output(peer.base + urls[0], workload.expect)}
            entry.update(load(peer, workload, urls, self.workdir, CONNS))  # type: ignore[arg-type]
            cpu = entry["service_cpu_ms_per_req"]
            log(f"  {name}: {entry['req_s']} req/s p50 {entry['p50_ms']} ms cpu {cpu} "
                f"ms/req other {entry['other_cpu_pct']}%")  # fmt: skip
            results[name] = entry
        return results

    def stop(self) -> None:
        for peer, _ in self.running.values():
            peer.stop()


# --- W8: a site behind nginx (benchmarks/site_workload.py)


def nginx_globals() -> str:
    # As root the workers would run as nobody, who cannot enter the 0700 work folder to write
    # the cache (tests/test_nginx.py does the same).
    return "daemon off;" + (" user root;" if os.geteuid() == 0 else "")


class Nginx(ProcessGroup):
    """./nginx.conf on a free port in front of `upstreams`, in a prefix of its own: every
    instance starts with an empty cache."""

    def __init__(self, workdir: Path, upstreams: list[int], *, key_on_url: bool = False) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.name = f"nginx-{self.port}"
        self.base = f"http://127.0.0.1:{self.port}"
        self.prefix = workdir / self.name
        self.prefix.mkdir()
        text = site.nginx_conf((REPO / "nginx.conf").read_text(), self.port, upstreams,
                               key_on_url=key_on_url)  # fmt: skip
        (self.prefix / "nginx.conf").write_text(text)
        self.access_log = self.prefix / "access.log"

    def start(self, probe: str) -> Nginx:
        conf = str(self.prefix / "nginx.conf")
        self.launch([peers.ensure_nginx(), "-p", str(self.prefix), "-c", conf, "-e", "stderr",
                     "-g", nginx_globals()])  # fmt: skip
        self.wait_ready(lambda: _answers(self.base + probe), 30)
        # The probes are not part of the run. nginx logs a request after it has answered it:
        # wait for the answered probe's line, or it could land after the truncation. nginx
        # appends (O_APPEND): truncating is safe.
        answered = re.compile(rf' {re.escape(probe)} [^"]*" 200 ')
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not answered.search(self.access_log.read_text()):
            time.sleep(0.01)
        self.access_log.write_text("")
        return self


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


@dataclass(frozen=True)
class SiteStack:
    """What wrk loads in W8: nginx's address; the CPU and RSS of nginx and the server behind."""

    base: str
    roots: list[int]


def site_measure(workload: Workload, workdir: Path, paths: dict[str, Path]) -> dict:
    """W8 on the service behind ./nginx.conf, then on thumbor behind it; each attempt starts
    both nginx and the server behind it afresh: cold caches, measured from the first request."""
    import pyvips

    sizes = {}
    for key in ("large", "medium", "alpha"):
        header = pyvips.Image.new_from_file(str(paths[key]))
        sizes[key] = (header.width, header.height)
    origs = site.originals(SITE_ORIGINALS, sizes)
    folder = site.recipe_folder(images.IMAGES.parent, origs, paths)
    files = site.make_originals(origs, paths, folder)
    urls = site.derived(origs, SITE_URLS)
    site.write_sequence(workdir, site.picks(len(urls), SITE_PICKS))
    store = workdir / "store-site"
    uploader = Service(workdir, store, memory_mb=0).start()
    try:
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(uploader.upload, (f.read_bytes() for f in files)))
    finally:
        uploader.stop()
    service_paths = [d.service_path(ids[d.original]) for d in urls]
    thumbor_paths = [d.thumbor_path(origs[d.original].name) for d in urls]
    log(f"W8 {workload.title}: {len(origs)} originals in {folder}, {len(urls)} URLs, "
        f"{SITE_PICKS} picks, most popular {service_paths[0]}")  # fmt: skip
    entry: dict = {"title": workload.title, "path": service_paths[0], "method": "GET",
                   "originals": len(origs), "urls": len(urls),
                   "site": {"zipf_s": site.ZIPF_S, "seed": site.SEED, "picks": SITE_PICKS,
                            "accepts": {n: w for n, _, w in site.ACCEPTS},
                            "memory_mb": SITE_MEMORY_MB, "folder": str(folder),
                            "duration_s": SITE_DURATION}}  # fmt: skip

    def finish(run: dict, front: Nginx, counts: dict | None, thumbor: bool) -> dict:
        logged = site.cache_statuses(front.access_log.read_text())
        run.update(logged=logged, shares=site.shares(logged, counts))
        if counts is not None:
            run["service_counts"] = counts
        if run["requests"] > SITE_PICKS:
            log(f"  W8: {run['requests']} requests, the {SITE_PICKS} picks wrapped around")
        chosen = thumbor_paths if thumbor else service_paths
        run["distinct_urls"] = len(set(chosen))
        run["check"] = site_checks(front.base, urls, origs, chosen, thumbor)
        if not run["check"]["ok"]:
            log(f"  W8 OUTPUT CHECK FAILED: {run['check']}")
        s = run["shares"]
        log(f"  {'thumbor' if thumbor else 'service'}: {run['req_s']} req/s p50 {run['p50_ms']} "
            f"ms p99 {run['p99_ms']} ms errors {run['errors']}; nginx {s['nginx']:.1%}, "
            f"service cache {s['service_cache']:.1%}, renders {s['renders']:.1%}, merged "
            f"{s['merged']:.1%}; other {run['other_cpu_pct']}%")  # fmt: skip
        return run

    def service_attempt() -> dict:
        service = Service(workdir, store, memory_mb=SITE_MEMORY_MB).start()
        front = None
        try:
            front = Nginx(workdir, [service.port]).start("/health")
            before = site.service_counts(_text(service.base + "/metrics"))
            stack = SiteStack(front.base, [service.pid, front.pid])
            run = run_wrk(stack, workload, service_paths, workdir, SITE_DURATION, CONNS)
            time.sleep(SITE_SETTLE)
            after = site.service_counts(_text(service.base + "/metrics"))
            return finish(run, front, {k: after[k] - before[k] for k in after}, False)
        finally:
            if front is not None:
                front.stop()
            service.stop()

    entry["service"] = least_noisy(service_attempt, "W8 service")
    entry["check"] = entry["service"]["check"]
    entry["peers"] = {}
    if "thumbor" not in PEERS:
        entry["peer_note"] = "thumbor not run (not in BENCH_PEERS)"
        return entry
    installs = Path(os.environ.get("BENCH_PEERS_DIR") or images.IMAGES.parent)

    def thumbor_attempt() -> dict:
        ports = [free_port() for _ in range(NCPU)]
        starts = peers.thumbor_backends(installs, workdir, folder, ports)
        backends = peers.Peer("thumbor-site", f"{starts} & wait", ports[0], workdir, {})
        front = None
        try:
            backends.start("/healthcheck")
            # Every backend, or least_conn would set the late ones aside for fail_timeout.
            backends.wait_ready(lambda: all(_answers(f"http://127.0.0.1:{p}/healthcheck")
                                            for p in ports), 90)  # fmt: skip
            front = Nginx(workdir, ports, key_on_url=True).start("/healthcheck")
            stack = SiteStack(front.base, [backends.pid, front.pid])
            run = run_wrk(stack, workload, thumbor_paths, workdir, SITE_DURATION, CONNS)
            time.sleep(SITE_SETTLE)
            return finish(run, front, None, True)
        finally:
            if front is not None:
                front.stop()
            backends.stop()

    try:
        entry["peers"]["thumbor"] = least_noisy(thumbor_attempt, "W8 thumbor")
    except Exception as exc:  # a peer that cannot run is reported, the bench goes on
        log(f"W8: thumbor unavailable: {exc}")
        entry["peers"]["thumbor"] = {"error": str(exc)[:500]}
        entry["peer_note"] = "thumbor not run (unavailable)"
    return entry


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def site_checks(
    base: str,
    urls: list[site.Derived],
    origs: list[site.Original],
    paths: list[str],
    thumbor: bool,
) -> dict:
    """The most popular URL of each kind with Chromium's Accept, and the most popular fmt/auto
    one with curl's, fetched through nginx and decoded."""
    conf = (REPO / "nginx.conf").read_text()
    chromium, curl = 0, len(site.ACCEPTS) - 1
    samples, kinds = [], set()
    for rank, derived in enumerate(urls):
        if (derived.op, derived.fmt) not in kinds:
            kinds.add((derived.op, derived.fmt))
            samples.append((rank, chromium))
    samples.append((next(r for r, d in enumerate(urls) if d.fmt == "auto"), curl))
    results = []
    for rank, accept in samples:
        name, header, _ = site.ACCEPTS[accept]
        derived = urls[rank]
        original = origs[derived.original]
        expect = derived.expect(original, site.accept_class(header, conf), thumbor=thumbor)
        got = check_output(base + paths[rank], expect, {"Accept": header}, slack=1)
        results.append({"rank": rank, "accept": name, "path": paths[rank],
                        "expect": list(expect), **got})  # fmt: skip
    wrong = [r for r in results if not r["ok"]]
    output = f"{len(results) - len(wrong)}/{len(results)} sample URLs right"
    if wrong:
        output += f"; {wrong[0]['path']}: {wrong[0].get('output') or wrong[0].get('detail')}"
    return {"ok": not wrong, "output": output, "samples": results}


def compare_with_peers(results: dict[str, dict]) -> None:
    for key, entry in results.items():
        # W1o and W2o (from the original) are compared with the same peer runs as W1 and W2.
        measured = (results.get(key.removesuffix("o")) or {}).get("peers") or {}
        rates = [p["req_s"] for p in measured.values() if p.get("req_s") and p["check"]["ok"]]
        if rates:
            entry["vs_best_peer"] = round(entry["service"]["req_s"] / max(rates), 3)


def memory_check(workdir: Path, store: Path, paths: dict[str, Path]) -> dict:
    """W1's transform of 24-megapixel JPEGs at 16 connections on a fresh service: idle RSS,
    peak, and RSS 10 s after the load. Previews off: every render decodes a 24 MP original,
    the most memory a render of these can take."""
    workload = WORKLOADS[0]
    service = Service(workdir, store.with_name("store-huge"), memory_mb=0, previews=False).start()
    try:
        ids = service.upload_copies(paths["huge"], COPIES)  # stored already: no render
        time.sleep(2)
        idle = rss_bytes(tree(service.pid))
        urls = [workload.path.format(id=i) for i in ids]
        log(f"memory check: 24 MP, {MEMCHECK_CONNS} connections, idle {idle / 2**20:.1f} MB")
        run = run_wrk(service, workload, urls, workdir, DURATION, MEMCHECK_CONNS)
        time.sleep(MEMCHECK_SETTLE)
        after = rss_bytes(tree(service.pid))
        per_process = {pid: round(rss_bytes([pid]) / 2**20, 1) for pid in tree(service.pid)}
    finally:
        service.stop()
    result = {
        "connections": MEMCHECK_CONNS,
        "idle_rss_mb": round(idle / 2**20, 1),
        "peak_rss_mb": run["peak_rss_mb"],
        "rss_10s_after_mb": round(after / 2**20, 1),
        "growth_after_mb": round((after - idle) / 2**20, 1),
        "per_process_after_mb": per_process,
        "req_s": run["req_s"],
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        "errors": run["errors"],
        "errors_503": run["errors_503"],
    }
    log(f"  peak {result['peak_rss_mb']} MB, 10 s after {result['rss_10s_after_mb']} MB "
        f"(idle {result['idle_rss_mb']} MB)")  # fmt: skip
    return result


def environment() -> dict:
    import pyvips

    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return ""

    wrk_version = run("wrk", "-v").splitlines()
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "nproc": NCPU,
        "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        "pyvips": pyvips.__version__,
        "python": sys.version.split()[0],
        "wrk": wrk_version[0] if wrk_version else "",
        "commit": run("git", "rev-parse", "--short", "HEAD"),
        "tree_dirty": bool(run("git", "status", "--porcelain", "--", "proxy")),
        "knobs": {
            "duration_s": DURATION, "conns": CONNS, "warmup_s": WARMUP,
            "raw_duration_s": RAW_DURATION, "raw_threads": RAW_THREADS,
            "raw_vips_concurrency": RAW_CONCURRENCY, "wrk_threads": WRK_THREADS,
            "extra_config": json.loads(os.environ.get("BENCH_CONFIG") or "{}"),
            "service_cmd": os.environ.get("BENCH_SERVICE_CMD") or ".venv/bin/progimage",
        },
    }  # fmt: skip


# --- report

HEADER = ["workload", "req/s", "p50 ms", "p99 ms", "errors", "503", "peak RSS MB",
          "CPU ms/req", "other CPU %", "best raw ops/s", "raw config", "raw CPU ms/op",
          "service ÷ raw", "CPU raw ÷ service", "thumbor req/s", "ipx req/s",
          "service ÷ best peer"]  # fmt: skip


def rows(report: dict) -> list[list[str]]:
    out = []
    for workload in WORKLOADS:
        entry = report["workloads"].get(workload.key)
        if entry is None:
            continue
        if "error" in entry:
            out.append([f"{workload.key} {workload.title}", "not run: " + entry["error"][:80],
                        *["–"] * (len(HEADER) - 2)])  # fmt: skip
            continue
        s = entry["service"]
        best = (entry.get("raw") or {}).get("best")
        check = entry.get("check")
        name = f"{workload.key} {workload.title}"
        if check and not check["ok"]:
            name += " (OUTPUT MISMATCH)"
        out.append([
            name, f"{s['req_s']:.1f}", f"{s['p50_ms']:.1f}", f"{s['p99_ms']:.1f}",
            str(s["errors"] - s["errors_503"]), str(s["errors_503"]), f"{s['peak_rss_mb']:.0f}",
            f"{s['service_cpu_ms_per_req']}",
            f"{s['other_cpu_pct']:.0f}{' NOISY' if s.get('noisy') else ''}",
            f"{best['ops_per_s']:.1f}" if best else "–",
            f"{best['threads']}t × vips {best['vips_concurrency']}" if best else "–",
            f"{best['cpu_ms_per_op']}" if best else "–",
            f"{entry['ratio']:.2f}" if "ratio" in entry else
            f"{entry['relative']:.2f} × {workload.relative_to}" if "relative" in entry else "–",
            f"{entry['cpu_ratio']:.2f}" if "cpu_ratio" in entry else "–",
            *(_peer_cell(report, workload.key, name) for name in ("thumbor", "ipx")),
            f"{entry['vs_best_peer']:.2f}" if "vs_best_peer" in entry else "–",
        ])  # fmt: skip
    return out


def _peer_cell(report: dict, key: str, name: str) -> str:
    own = report["workloads"].get(key.removesuffix("o")) or {}
    run = (own.get("peers") or {}).get(name)
    if not run:
        return "–"
    if "error" in run:
        return "n/a"
    return f"{run['req_s']:.1f}{'' if run['check']['ok'] else ' MISMATCH'}"


def peer_rows(report: dict) -> list[list[str]]:
    out = []
    for key, entry in report["workloads"].items():
        for name, run in (entry.get("peers") or {}).items():
            if "error" in run:
                out.append([key, name, "unavailable: " + run["error"][:80], *["–"] * 6])
                continue
            out.append([
                key, name, f"{run['req_s']:.1f}", f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}",
                str(run["errors"]), f"{run['service_cpu_ms_per_req']}", f"{run['peak_rss_mb']:.0f}",
                run["check"].get("output", run["check"].get("detail", ""))
                + ("" if run["check"]["ok"] else " MISMATCH"),
            ])  # fmt: skip
    return out


SITE_HEADER = ["W8 behind nginx.conf", "req/s", "p50 ms", "p99 ms", "at nginx p50/p99 ms",
               "errors", "nginx cache",
               "service cache", "renders", "merged", "nginx, last ¼", "URLs asked", "KB/response",
               "CPU ms/req", "output"]  # fmt: skip


def site_rows(report: dict) -> list[list[str]]:
    entry = report["workloads"].get("W8")
    if not entry or "error" in entry:
        return []
    runs = [("ProgImage", entry["service"]), *((n, r) for n, r in entry["peers"].items())]
    out = []
    for name, run in runs:
        if "error" in run:
            out.append([name, "not run: " + run["error"][:80], *["–"] * 13])
            continue
        shares = run["shares"]
        out.append([
            name, f"{run['req_s']:.1f}", f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}",
            "{p50:.0f} / {p99:.0f}".format(**run["logged"]["request_time_ms"]),
            str(run["errors"]), *(f"{100 * shares[k]:.1f} %" for k in
                                  ("nginx", "service_cache", "renders", "merged")),
            f"{100 * run['logged']['nginx_last_quarter']:.1f} %",
            f"{run['logged']['urls']} of {run.get('distinct_urls', entry['urls'])}",
            f"{run['bytes'] / max(1, run['requests']) / 1000:.1f}",
            f"{run['service_cpu_ms_per_req']}",
            run["check"]["output"],
        ])  # fmt: skip
    if not entry["peers"]:
        out.append(["thumbor", entry.get("peer_note", "not run"), *["–"] * 13])
    return out


def site_note(report: dict) -> str:
    entry = report["workloads"].get("W8")
    if not entry or "error" in entry:
        return ""
    knobs = entry["site"]
    mix = ", ".join(f"{n} {w} %" for n, w in knobs["accepts"].items())
    return (
        f"W8: {entry['urls']} distinct derived URLs of {entry['originals']} originals "
        "(benchmarks/site_workload.py: srcset widths and fill thumbnails with fmt/auto, a WebP "
        "srcset, legacy source-format and og:image JPEG renditions), requested by a fixed "
        f"sequence of Zipf picks (s = {knobs['zipf_s']}, seed {knobs['seed']}) with browsers' "
        f"Accept headers ({mix}), through ./nginx.conf (cache key: URL and Accept class); "
        f"nginx and the server behind it start cold, {knobs.get('duration_s', '?')} s without "
        f"warm-up; the service with cache.memory_mb {knobs['memory_mb']}. Shares are of the "
        "requests nginx logged: nginx cache = $upstream_cache_status HIT, service cache = its "
        "in-process result cache (/metrics), renders = libvips renders, merged = requests "
        "joined to a render in flight (single-flight). nginx, last ¼ = the nginx cache's share "
        "of the last quarter of the requests: where the cold start has got to. p50/p99 are "
        "wrk's; at nginx = $request_time, from nginx reading the request to its last byte, "
        "without the waits for a core that wrk's figures include when renders saturate the "
        "machine that wrk and nginx share. thumbor: the "
        "same nginx.conf keyed on the URL alone (thumbor does not vary on Accept), its fmt/auto "
        "URLs asked as explicit WebP (filters:format(webp); peers.py leaves AUTO_WEBP off), so "
        "a fmt/auto and a fmt/webp URL of the same size are one thumbor URL, while the service "
        "answers the AVIF class with AVIF; every request nginx passes on is a render. URLs "
        "asked = distinct URLs requested, of the distinct URLs in that server's language. "
        "KB/response includes headers. CPU ms/req counts nginx too. The service ÷ raw cell is "
        "W8 ÷ W1 of the same run."
    )


PEER_HEADER = ["workload", "peer", "req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req",
               "peak RSS MB", "output"]  # fmt: skip


def markdown(report: dict) -> str:
    env = report["environment"]
    k = env["knobs"]
    lines = [
        "# `make bench` results",
        "",
        f"{env['date']} · {env['nproc']} cores · libvips {env['libvips']} · pyvips "
        f"{env['pyvips']} · {env['wrk']} · commit {env['commit']}"
        f"{' (proxy/ modified)' if env['tree_dirty'] else ''}",
        f"wrk {k['conns']} connections, {k['duration_s']:g} s after {k['warmup_s']:g} s "
        f"warm-up; raw: {k['raw_duration_s']:g} s per configuration, threads {k['raw_threads']} "
        f"× libvips concurrency {k['raw_vips_concurrency']}, best kept.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    measured = peer_rows(report)
    if measured:
        lines += [
            "",
            "Peers in the same run (benchmarks/peers.py: "
            + ", ".join(report["environment"].get("peers", {}).values())
            + "; same photographs, same 64-copy rotation, same wrk settings):",
            "",
            "| " + " | ".join(PEER_HEADER) + " |",
            "|" + "---|" * len(PEER_HEADER),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in measured]
    sited = site_rows(report)
    if sited:
        lines += [
            "",
            "| " + " | ".join(SITE_HEADER) + " |",
            "|" + "---|" * len(SITE_HEADER),
            *("| " + " | ".join(r) + " |" for r in sited),
            "",
            site_note(report),
        ]
    memory = report.get("memory_check")
    if memory:
        lines += [
            "",
            f"Memory check (W1's transform of 24 MP JPEGs, previews off, {memory['connections']} "
            "connections): "
            f"idle {memory['idle_rss_mb']} MB, peak {memory['peak_rss_mb']} MB, "
            f"10 s after the load {memory['rss_10s_after_mb']} MB "
            f"({memory['growth_after_mb']:+} MB vs idle); {memory['req_s']} req/s, "
            f"p99 {memory['p99_ms']} ms, errors {memory['errors']} (503: {memory['errors_503']}).",
        ]
    lines += [
        "",
        "errors = non-2xx responses other than 503, plus socket errors; 503 = queue full. RSS "
        "is summed over the service's process tree (pages shared after fork count twice). "
        "CPU ms/req = service CPU time ÷ successful requests. other CPU % = machine CPU used "
        "by neither the service nor wrk (100 = one core): high values mean a noisy run. "
        "Raw = the same libvips work in-process on bytes in memory (benchmarks/rawloop.py). "
        "W5 has no raw counterpart; W9's service ÷ raw cell is its rate ÷ W1's in the same run "
        "(the cost of the two overlays). W6 raw = SHA-256 + the service's check of the upload "
        "(header, one shrink-on-load decode, pHash, the preview of a large original) and the "
        "store's durable writes (body, record, preview fsynced, renamed, directory fsynced; "
        "kept until the raw run ends, as a store keeps them). "
        "Raw rows render from the preview exactly when the service does. "
        "service ÷ raw compares throughput; CPU raw ÷ service compares CPU time "
        "per image (1.00 = no overhead), which is less sensitive to other load on the machine. "
        "NOISY = other processes used over BENCH_NOISY_MAX % of a core even on the retry.",
        "",
    ]
    return "\n".join(lines)


def table(report: dict) -> str:
    def aligned(header: list[str], body: list[list[str]]) -> list[str]:
        data = [header, *body]
        widths = [max(len(r[i]) for r in data) for i in range(len(header))]
        text = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in data]
        text.insert(1, "  ".join("-" * w for w in widths))
        return text

    text = aligned(HEADER, rows(report))
    measured = peer_rows(report)
    if measured:
        text += ["", "peers, same run:", *aligned(PEER_HEADER, measured)]
    sited = site_rows(report)
    if sited:
        text += ["", *aligned(SITE_HEADER, sited)]
    return "\n".join(text)


def main() -> int:
    started = time.monotonic()
    selected = set(env_list("BENCH_WORKLOADS", ",".join(w.key for w in WORKLOADS)))
    workloads = [w for w in WORKLOADS if w.key in selected]
    ensure_wrk()
    images.ensure()
    images.IMAGES.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=images.IMAGES.parent))
    try:
        report = {"environment": environment(), **measure(workloads, workdir)}
        installs = os.environ.get("BENCH_PEERS_DIR") or images.IMAGES.parent
        report["environment"]["peers"] = peers.versions(Path(installs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    out = Path(os.environ.get("BENCH_OUT") or HERE / "results")
    out.mkdir(parents=True, exist_ok=True)
    tag = os.environ.get("BENCH_TAG") or "latest"
    (out / f"{tag}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"{tag}.md").write_text(markdown(report))
    print(table(report))
    memory = report.get("memory_check")
    if memory:
        print(f"\nmemory check (W1, {memory['connections']} conns): idle "
              f"{memory['idle_rss_mb']} MB, peak {memory['peak_rss_mb']} MB, 10 s after "
              f"{memory['rss_10s_after_mb']} MB ({memory['growth_after_mb']:+} MB)")  # fmt: skip
    print(f"\n{out / (tag + '.json')}, {out / (tag + '.md')} ({report['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
