"""W8, a workload that looks like a site: many originals, a few thousand derived URLs, a Zipf
popularity, browsers' real Accept headers, through nginx as configured in ./nginx.conf.

Everything here but make_originals() is pure and seeded, so tests/test_bench.py checks it
without running anything, and two runs (or the service and thumbor in one run) get the same
originals, the same URLs and the same request sequence:

- originals(): the recipe of N originals cut from the benchmark photographs (images.py):
  crops of varied aspect at moderate sizes (long side 1600-3000 px JPEGs, so some have the
  service's preview and some not; a few RGBA PNGs), as a site's uploads would be.
- derived(): the site's renditions of them, about U/N per original: srcset widths with
  fmt/auto, fill thumbnails, a hard-coded WebP srcset, legacy <img> in the source format and
  og:image JPEGs. They are ranked by popularity: the original's (Zipf over originals, its
  page's traffic) times how often that rendition is shown, with noise.
- picks(): the request sequence, the URL of rank k drawn with weight 1/k^s (Zipf, s = 1.0)
  and each request's Accept from the browser mix. It is fixed here rather than drawn in
  the wrk script so that both servers get exactly the same requests in the same order.
- nginx_conf(), cache_statuses(), metric(), shares(): running the repository's nginx.conf
  on free ports and reading who answered what.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

SEED = 8
ZIPF_S = 1.0

# Real Accept headers of image requests (<img> fetches) and a rough share of each: Chromium
# (Chrome, Edge, Samsung Internet, Opera…) most of the traffic, Safari most of the rest;
# curl stands for bots, feed readers and scripts, which send */* or nothing of interest.
ACCEPTS = [
    ("chromium", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", 66),
    ("safari", "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
               "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", 20),
    ("firefox", "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", 6),
    ("curl", "*/*", 8),
]  # fmt: skip

# What a site renders, as (kind, weight): how often that kind is shown per page view.
KINDS = [("srcset", 55), ("thumb", 20), ("webp", 10), ("legacy", 10), ("og", 5)]
# srcset widths (CSS px × DPR that browsers pick), weighted towards phones and laptops.
WIDTHS = [(320, 8), (480, 12), (640, 16), (768, 12), (960, 10), (1080, 8), (1280, 8),
          (1600, 4), (1920, 2)]  # fmt: skip
THUMBS = [((96, 96), 4), ((150, 150), 8), ((300, 300), 10), ((400, 300), 6), ((600, 400), 5),
          ((800, 600), 3)]  # fmt: skip
OG = (1200, 630)
ASPECTS = [(3 / 2, 30), (4 / 3, 25), (16 / 9, 15), (1.0, 10), (2 / 3, 12), (4 / 5, 8)]
JPEG_LONG_SIDES = [(1600, 30), (2000, 30), (2400, 25), (3000, 15)]
PNG_LONG_SIDES = [(800, 50), (1000, 50)]


@dataclass(frozen=True)
class Original:
    index: int
    source: str  # images.ensure() key: the photograph it is cut from
    crop: tuple[int, int, int, int]  # x, y, width, height in the source's pixels
    width: int
    height: int
    fmt: str  # jpeg | png

    @property
    def name(self) -> str:
        return f"site-{self.index:03d}.{'jpg' if self.fmt == 'jpeg' else 'png'}"


@dataclass(frozen=True)
class Derived:
    original: int
    op: str  # resize (fit inside, width only) | fill (cover, centre crop)
    width: int
    height: int | None
    fmt: str | None  # auto | webp | jpeg | None: the source's format

    def service_path(self, image_id: str) -> str:
        size = f"{self.width}x{self.height or ''}"
        fmt = f"/fmt/{self.fmt}" if self.fmt else ""
        return f"/{self.op}/{size}{fmt}/{image_id}"

    def thumbor_path(self, name: str) -> str:
        """The same transform in thumbor's URL language. thumbor has no fmt/auto, and
        peers.py leaves its AUTO_WEBP off: fmt/auto is asked for as explicit WebP."""
        fmt = {"auto": "webp"}.get(self.fmt or "", self.fmt)
        filters = f"filters:format({fmt})/" if fmt else ""
        if self.op == "resize":  # fit-in does not upscale, as resize without enlarge
            return f"/unsafe/fit-in/{self.width}x0/{filters}{name}"
        return f"/unsafe/{self.width}x{self.height}/{filters}{name}"

    def expect(self, original: Original, accept_class: str, *, thumbor: bool = False):
        """(width, height, bands, vips loader prefix) of the right answer."""
        fmt = self.fmt
        if fmt == "auto":
            fmt = "webp" if thumbor else {"avif": "avif", "webp": "webp"}.get(accept_class)
        fmt = fmt or original.fmt
        if self.op == "fill":
            width, height = self.width, self.height or 0
        else:
            width = min(self.width, original.width)
            height = round(original.height * width / original.width)
        bands = 4 if original.fmt == "png" and fmt != "jpeg" else 3
        return width, height, bands, {"avif": "heif"}.get(fmt, fmt)


def _weighted(rng: random.Random, table: list) -> object:
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights)[0]


def originals(count: int, sizes: dict[str, tuple[int, int]], seed: int = SEED) -> list[Original]:
    """The recipe of `count` originals from the photographs of `sizes` (key -> width, height):
    1 in 12 an RGBA PNG from the alpha photograph, the rest JPEGs, most from the large one."""
    rng = random.Random(f"originals {seed}")
    out = []
    for index in range(count):
        if index % 12 == 11:
            source, fmt, long_side = "alpha", "png", _weighted(rng, PNG_LONG_SIDES)
        else:
            source = "large" if rng.random() < 0.8 else "medium"
            fmt, long_side = "jpeg", _weighted(rng, JPEG_LONG_SIDES)
        aspect = _weighted(rng, ASPECTS)
        sw, sh = sizes[source]
        # The largest region of that aspect, then 55-100 % of it at a random place.
        cw, ch = (sw, sw / aspect) if sw / aspect <= sh else (sh * aspect, sh)
        scale = rng.uniform(0.55, 1.0)
        cw, ch = max(16, int(cw * scale)), max(16, int(ch * scale))
        x, y = rng.randint(0, sw - cw), rng.randint(0, sh - ch)
        shrink = min(1.0, long_side / max(cw, ch))  # never upscaled
        width, height = max(1, round(cw * shrink)), max(1, round(ch * shrink))
        out.append(Original(index, source, (x, y, cw, ch), width, height, fmt))
    return out


def candidates(original: Original) -> list[tuple[Derived, float]]:
    """Every rendition a site would make of this original, with how often it is shown.
    No rendition asks for more pixels than the original has (srcset stops at its width)."""
    out: list[tuple[Derived, float]] = []
    kinds = dict(KINDS)
    total = sum(w for _, w in WIDTHS)
    for width, weight in WIDTHS:
        if width <= original.width:
            for kind, fmt in (("srcset", "auto"), ("webp", "webp"), ("legacy", None)):
                derived = Derived(original.index, "resize", width, None, fmt)
                out.append((derived, kinds[kind] * weight / total))
    total = sum(w for _, w in THUMBS)
    for (width, height), weight in THUMBS:
        if width <= original.width and height <= original.height:
            derived = Derived(original.index, "fill", width, height, "auto")
            out.append((derived, kinds["thumb"] * weight / total))
    if original.fmt == "jpeg" and original.width >= OG[0] and original.height >= OG[1]:
        out.append((Derived(original.index, "fill", *OG, "jpeg"), float(kinds["og"])))
    return out


def zipf_weights(n: int, s: float = ZIPF_S) -> list[float]:
    return [1.0 / k**s for k in range(1, n + 1)]


def derived(origs: list[Original], count: int, seed: int = SEED) -> list[Derived]:
    """`count` distinct renditions, most popular first."""
    rng = random.Random(f"derived {seed}")
    # Which renditions exist: weighted sampling without replacement (Efraimidis-Spirakis
    # keys), every original alike, as every one is on some page.
    pool = [c for o in origs for c in candidates(o)]
    if count > len(pool):
        raise ValueError(f"{len(origs)} originals have only {len(pool)} renditions, not {count}")
    keyed = sorted(pool, key=lambda c: rng.random() ** (1.0 / c[1]), reverse=True)[:count]
    # How popular: the original's page (Zipf over originals in a shuffled order) times how
    # often the rendition is shown on it, with log-normal noise.
    order = list(range(len(origs)))
    rng.shuffle(order)
    page = {o: w for o, w in zip(order, zipf_weights(len(origs)), strict=True)}
    scored = [(page[d.original] * w * math.exp(rng.gauss(0, 1)), i, d)
              for i, (d, w) in enumerate(keyed)]  # fmt: skip
    return [d for _, _, d in sorted(scored, key=lambda t: (-t[0], t[1]))]


def picks(urls: int, count: int, seed: int = SEED, s: float = ZIPF_S) -> list[tuple[int, int]]:
    """The request sequence: (URL rank from 0, index into ACCEPTS) per request."""
    rng = random.Random(f"picks {seed}")
    cumulative, total = [], 0.0
    for weight in zipf_weights(urls, s):
        total += weight
        cumulative.append(total)
    ranks = rng.choices(range(urls), cum_weights=cumulative, k=count)
    accepts = rng.choices(range(len(ACCEPTS)), [w for *_, w in ACCEPTS], k=count)
    return list(zip(ranks, accepts, strict=True))


PICKS_FILE = "site-picks.txt"
ACCEPTS_FILE = "site-accepts.txt"


def write_sequence(folder: Path, sequence: list[tuple[int, int]]) -> None:
    """The picks and the Accept strings, as site.lua reads them (the paths differ by server
    and are written with the wrk script)."""
    (folder / ACCEPTS_FILE).write_text("\n".join(a for _, a, _ in ACCEPTS) + "\n")
    (folder / PICKS_FILE).write_text("".join(f"{u} {a}\n" for u, a in sequence))


# --- the originals' files


def recipe_folder(root: Path, origs: list[Original], sources: dict[str, Path]) -> Path:
    """A folder named by the recipe and the photographs' bytes, so a new recipe (or new
    photographs) makes new files instead of reusing stale ones."""
    digest = hashlib.sha256(json.dumps([asdict(o) for o in origs]).encode())
    for key in sorted({o.source for o in origs}):
        digest.update(hashlib.sha256(sources[key].read_bytes()).digest())
    return root / f"site-{digest.hexdigest()[:12]}"


def make_originals(origs: list[Original], sources: dict[str, Path], folder: Path) -> list[Path]:
    """The originals' files, made once per recipe (JPEG Q85, PNG compression 6, no metadata)."""
    import pyvips

    folder.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, pyvips.Image] = {}
    out = []
    for o in origs:
        path = folder / o.name
        out.append(path)
        if path.is_file():
            continue
        if o.source not in loaded:
            loaded[o.source] = pyvips.Image.new_from_file(str(sources[o.source])).copy_memory()
        x, y, w, h = o.crop
        image = loaded[o.source].crop(x, y, w, h)
        image = image.resize(o.width / w, vscale=o.height / h, kernel="lanczos3")
        tmp = path.with_suffix(".tmp" + path.suffix)
        if o.fmt == "jpeg":
            image.jpegsave(str(tmp), Q=85, optimize_coding=True, keep="none")
        else:
            image.pngsave(str(tmp), compression=6, keep="none")
        os.replace(tmp, path)
    return out


# --- nginx and what it logged

LISTEN = "listen 127.0.0.1:8000;"
UPSTREAM = "server 127.0.0.1:8080;"
CACHE_KEY = re.compile(r"^(\s*)proxy_cache_key .*;$", re.M)


def nginx_conf(text: str, port: int, upstreams: list[int], *, key_on_url: bool = False) -> str:
    """./nginx.conf with only its addresses changed (and, for a peer without fmt/auto, the
    cache key reduced to the URL): what is measured is the file deployments use."""
    if text.count(LISTEN) != 1 or text.count(UPSTREAM) != 1 or len(CACHE_KEY.findall(text)) != 1:
        raise ValueError(f"nginx.conf must have one {LISTEN!r}, {UPSTREAM!r} and proxy_cache_key")
    servers = " ".join(f"server 127.0.0.1:{p};" for p in upstreams)
    if len(upstreams) > 1:  # thumbor's shape: one single-process server per core
        servers = "least_conn; " + servers
    text = text.replace(LISTEN, f"listen 127.0.0.1:{port};").replace(UPSTREAM, servers)
    if key_on_url:
        text = CACHE_KEY.sub(r'\1proxy_cache_key "$scheme$host$request_uri";', text)
    return text


def accept_class(accept: str, conf_text: str) -> str:
    """The class nginx.conf gives this header: its `map $http_accept` to the base class, which
    is the class as shipped ($progimage_offer_jxl 0: JPEG XL plays no part)."""
    pattern = r"map \$http_accept \$progimage_accept_base_class \{(.*?)\n\s*\}"
    block = re.search(pattern, conf_text, re.S)
    if block is None:
        raise ValueError("nginx.conf has no $progimage_accept_base_class map")
    for line in block[1].splitlines():
        entry = re.match(r'\s*"~\*(.*)"\s+(\w+);', line)
        if entry and re.search(entry[1], accept, re.I):
            return entry[2]
    return "other"


# nginx answered from its cache: HIT, and STALE/UPDATING (an expired entry, never the case in
# a run shorter than the entries' max-age) and REVALIDATED (304 from upstream).
NGINX_SERVED = ("HIT", "STALE", "UPDATING", "REVALIDATED")


LOG_LINE = re.compile(r'"(?:GET|HEAD) (?P<uri>\S+) [^"]*" (?P<status>\d{3}) \d+ '
                      r"cache=(?P<cache>\S+) accept=(?P<accept>\S+)"
                      r"(?: rt=(?P<rt>[\d.]+))?")  # fmt: skip


def cache_statuses(log_text: str) -> dict:
    """From nginx.conf's access log: requests by $upstream_cache_status and by HTTP status,
    the distinct cache entries asked for (URL, Accept class), the share nginx served of the
    last quarter of the requests (where the cold start has got to by the end), and
    $request_time's percentiles: from nginx reading a request to its last byte, without the
    waits for a core that wrk's latencies also hold on a saturated machine."""
    caches: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    keys = set()
    order = []
    times = []
    for line in log_text.splitlines():
        found = LOG_LINE.search(line)
        if found:
            caches[found["cache"]] += 1
            statuses[found["status"]] += 1
            keys.add((found["uri"], found["accept"]))
            order.append(found["cache"] in NGINX_SERVED)
            if found["rt"]:
                times.append(float(found["rt"]) * 1000)
    late = order[len(order) - len(order) // 4 :]
    return {"cache": dict(caches), "status": dict(statuses), "keys": len(keys),
            "urls": len({uri for uri, _ in keys}), "requests": sum(caches.values()),
            "nginx_last_quarter": round(sum(late) / len(late), 4) if late else 0.0,
            "request_time_ms": percentiles(times)}  # fmt: skip


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p99, nearest rank."""
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0

    return {"p50": rank(0.50), "p99": rank(0.99)}


SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$", re.M)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus text exposition's samples `name` with these label values."""
    total = 0.0
    for sample in SAMPLE.finditer(text):
        if sample["name"] != name:
            continue
        have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sample["labels"] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(sample["value"])
    return total


def service_counts(text: str) -> dict[str, float]:
    """proxy/metrics.py's counters W8 reads: derived-image requests the service answered,
    its in-process result-cache hits, and libvips renders."""
    return {
        "derived": metric(text, "progimage_requests_total", route="derived"),
        "cache_hits": metric(text, "progimage_cache_requests_total", cache="results",
                             result="hit"),
        "store_hits": metric(text, "progimage_cache_requests_total", cache="results_store",
                             result="hit"),
        "renders": metric(text, "progimage_render_seconds_count"),
    }  # fmt: skip


def shares(logged: dict, service: dict[str, float] | None) -> dict[str, float]:
    """Who answered, as fractions of the requests nginx logged. With `service` (the change of
    service_counts over the run): its cache, its renders, and the requests its single-flight
    joined to a render already running. Without (thumbor, which keeps nothing): every request
    nginx passed on was a render."""
    total = max(1, logged["requests"])
    cache = logged["cache"]
    served = sum(cache.get(k, 0) for k in NGINX_SERVED)
    passed = total - served
    out = {"nginx": served / total}
    if service is None:
        out.update(service_cache=0.0, renders=passed / total, merged=0.0)
    else:
        hits = service["cache_hits"] + service["store_hits"]
        renders = service["renders"]
        out.update(service_cache=hits / total, renders=renders / total,
                   merged=max(0.0, service["derived"] - hits - renders) / total)  # fmt: skip
    return {k: round(v, 4) for k, v in out.items()}
