"""The thumbor dialect against a real thumbor 7.8 (from PyPI, as `make bench` installs it):
the same paths sent to both, both fetching from one local origin. Where thumbor answers an
image, ProgImage answers one of the same format and size with pixels close to thumbor's;
where thumbor refuses, ProgImage refuses too.

How close, and why not identical: thumbor resizes with Pillow's Lanczos filter on the gamma
encoded pixels and encodes with libjpeg-turbo, ProgImage with libvips' reducers and mozjpeg, so
every edge and JPEG block differs a little. The mean absolute difference per channel (0–255)
of geometry-only URLs stays within GEOMETRY_MAE; colour filters implement "percent" changes
each its own way (thumbor in its own C code), so they get a looser bound. `smart` is compared by
size only: thumbor without detectors configured crops at the centre, ProgImage's `smart` is an
attention crop, by design.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import pyvips

from conftest import IMAGES, REPO, ServerProcess, free_port, wait_for_port

sys.path.insert(0, str(REPO / "benchmarks"))
import peers  # noqa: E402  (the benchmark's installer of thumbor, shared)

pytestmark = pytest.mark.e2e

KEY = "my-security-key"
# Bounds on the mean absolute difference per channel (0–255, after a slight blur).
GEOMETRY_MAE = 8.0  # measured: median 0.5, up to 7.3 on 2.3x upscales (Lanczos vs libvips)
BLUR = 1.5
# Filters that each side defines its own way: thumbor's brightness adds a share of 255 to
# every channel and its contrast stretches RGB, where ProgImage scales LCh lightness; thumbor's
# sharpen is its own unsharp mask. Sizes, formats and placement still have to agree.
FILTER_MAE = {"brightness": 45.0, "contrast": 25.0, "sharpen": 15.0, "saturation": 20.0,
              "grayscale": 10.0, "blur": 8.0}  # fmt: skip
# Where the outputs differ on purpose: (substrings of the path, why). Sizes and formats
# are still compared; pixels are not.
DIFFERENT_PIXELS = (
    (
        ("format(jpg)", "alpha.png"),
        "thumbor drops the alpha channel and shows the colours "
        "under it; ProgImage flattens onto bg (white)",
    ),
    (
        ("background_color(", "alpha.png"),
        "thumbor flattens even into PNG; ProgImage keeps "
        "the alpha where the format has it (bg flattens only into formats without alpha)",
    ),
    (
        ("/smart/",),
        "thumbor without detectors crops at the centre; ProgImage's smart is an attention crop",
    ),
)
# Where thumbor fails (5xx) on a URL it accepts: ProgImage serves it.
THUMBOR_FAILS = (
    (("/origx0/",), "thumbor takes the proportional height of the word 'orig' and answers 500"),
)
# Where thumbor answers an image and ProgImage refuses on purpose (never silently ignore).
REFUSED = (
    (("max_bytes(", "alpha.png"), "thumbor ignores max_bytes for PNG; ProgImage answers 400"),
)
PEERS_DIR = Path(peers.os.environ.get("PROGIMAGE_PEERS_DIR", "/tmp/progimage-bench"))

THUMBOR_CONF = """\
LOADER = 'thumbor.loaders.http_loader'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
SECURITY_KEY = '{key}'
ALLOW_UNSAFE_URL = True
# ProgImage always honours EXIF orientation; thumbor only when told.
RESPECT_ORIENTATION = True
QUALITY = 80
WEBP_QUALITY = 80
AUTO_WEBP = False
MAX_AGE = 3600
"""

# Source pictures: real photographs (tests/images), one with alpha, one with EXIF
# orientation 6, and a small one for the upscale rules.
SOURCES = ("photo.jpg", "alpha.png", "portrait-exif6.jpg", "small.jpg")

GEOMETRY = (
    "", "300x200/", "200x300/", "300x0/", "0x250/", "1000x800/", "40x40/",
    "fit-in/300x200/", "fit-in/200x300/", "fit-in/1000x1000/", "fit-in/300x0/",
    "-300x200/", "300x-200/", "-300x-200/", "fit-in/-300x-200/", "-0x-0/",
    "10x20:210x170/", "10x20:210x170/100x100/", "0x0:0x0/300x200/",
    "300x200/left/", "300x200/right/bottom/", "200x300/top/", "200x300/center/bottom/",
    "-300x200/left/top/", "300x200/smart/", "trim/", "trim:10/200x0/",
    # sized by the source: computed from its own size
    "adaptive-fit-in/200x300/", "adaptive-fit-in/300x200/", "full-fit-in/300x300/",
    "full-fit-in/100x0/", "adaptive-full-fit-in/200x300/", "fit-in/adaptive-fit-in/0x0/",
    "origx100/", "100xorig/", "10x10:110x60/origx0/", "1000x100/filters:no_upscale()/",
    "300x200/filters:no_upscale()/", "300x200/filters:focal(100x100:200x200)/",
    "-300x200/filters:focal(10x10:60x60):focal(200x100:300x300)/",
    "100x300/filters:focal(300x20:340x60)/", "filters:proportion(0.5)/",
    "fit-in/300x300/filters:proportion(0.5)/", "300x200/filters:proportion(0.3)/",
    "300x0/filters:proportion(0.7):rotate(90)/",
)  # fmt: skip

FILTERS = (
    "format(webp)", "format(png)", "format(gif)", "format(jpg)", "quality(40)",
    "blur(3)", "blur(4,2)", "grayscale()", "rotate(90)", "rotate(180)", "rotate(270)",
    "rotate(-90)", "rotate(450)", "brightness(30)", "contrast(25)", "saturation(0.5)",
    "saturation(1.5)",
    "round_corner(20,255,255,255)", "background_color(ff0000)", "upscale()", "strip_exif()",
    "strip_icc()", "max_bytes(8000)", "stretch()", "sharpen(2,1,true)", "max_age(120)",
    "fill(00ff00)", "fill(white)", "format(webp):quality(50):grayscale()",
    "rotate(90):format(png)", "brightness(-20):contrast(10)",
)  # fmt: skip
FILTER_GEOMETRY = ("300x200/", "fit-in/300x200/", "-300x200/right/", "200x300/bottom/",
                   "fit-in/100x100/", "")  # fmt: skip


def table() -> list[str]:
    """(path after unsafe/, without the image) for every case: a few hundred."""
    rows = [g for g in GEOMETRY]
    rows += [f"{g}filters:{f}/" for f in FILTERS for g in FILTER_GEOMETRY]
    return rows


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("thumbor-peer")
    origin_dir = tmp / "origin"
    origin_dir.mkdir()
    for name in SOURCES[:-1]:
        (origin_dir / name).write_bytes((IMAGES / name).read_bytes())
    small = pyvips.Image.new_from_file(str(IMAGES / "photo.jpg")).resize(0.25)
    small.write_to_file(str(origin_dir / "small.jpg"), Q=90)
    started: list[subprocess.Popen] = []
    try:
        origin_port = free_port()
        origin = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(origin_port), "--bind", "127.0.0.1",
             "--directory", str(origin_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started.append(origin)
        binary = peers.ensure_thumbor(PEERS_DIR)
        conf = tmp / "thumbor.conf"
        conf.write_text(THUMBOR_CONF.format(key=KEY))
        thumbor_port = free_port()
        with open(tmp / "thumbor.log", "ab") as log:
            thumbor = subprocess.Popen(
                [str(binary), "--port", str(thumbor_port), "--ip", "127.0.0.1",
                 "--conf", str(conf), "-l", "error"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(thumbor)
        wait_for_port(origin_port, origin)
        wait_for_port(thumbor_port, thumbor, timeout=60)
        service = ServerProcess(
            tmp,
            {
                "sources": {"allow_private_networks": True},
                "dialects": {"thumbor": {"enabled": True, "prefix": "", "key": KEY,
                                         "allow_unsafe": True, "default_scheme": "http"}},
            },
        ).start()  # fmt: skip
        yield {
            "origin": f"127.0.0.1:{origin_port}",
            "thumbor": f"http://127.0.0.1:{thumbor_port}",
            "progimage": service.url,
            "tmp": tmp,
        }
        service.stop()
    finally:
        for process in started:
            process.terminate()
            process.wait(timeout=10)


async def _get_all(base: str, paths: list[str]) -> list[tuple[int, str, bytes, dict]]:
    limit = asyncio.Semaphore(4)
    async with aiohttp.ClientSession() as session:

        async def one(path: str) -> tuple[int, str, bytes, dict]:
            async with limit, session.get(base + path) as response:
                body = await response.read()
                return response.status, response.content_type, body, dict(response.headers)

        return await asyncio.gather(*(one(p) for p in paths))


def _fetch_both(stack, paths: list[str]):
    thumbor = asyncio.run(_get_all(stack["thumbor"], paths))
    ours = asyncio.run(_get_all(stack["progimage"], paths))
    return thumbor, ours


def _matches(path: str, table) -> bool:
    return any(all(part in path for part in parts) for parts, _why in table)


def _rgb(body: bytes) -> pyvips.Image:
    image = pyvips.Image.new_from_buffer(body, "")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    image = image.colourspace("srgb") if image.bands < 3 else image
    return image[:3].cast("uchar")


def _mae(a: bytes, b: bytes) -> float:
    """Mean absolute difference per channel after a slight blur: what a crop in the wrong
    place or a wrong colour shows, and not the resamplers' and encoders' own fine grain."""
    first, second = (_rgb(x).cast("float").gaussblur(BLUR) for x in (a, b))
    return float((first - second).abs().avg())


def _format(body: bytes) -> str:
    loader = pyvips.Image.new_from_buffer(body, "").get("vips-loader")
    return loader.removesuffix("_buffer").removesuffix("load")


def test_the_same_paths_give_the_same_images(stack):
    paths = [f"/unsafe/{row}{stack['origin']}/{name}" for row in table() for name in SOURCES]
    thumbor, ours = _fetch_both(stack, paths)
    report, failures = [], []
    for path, theirs, mine in zip(paths, thumbor, ours, strict=True):
        if theirs[0] >= 500 and _matches(path, THUMBOR_FAILS):
            if mine[0] != 200:
                failures.append(f"{path}: ProgImage {mine[0]} where thumbor fails")
            continue
        if theirs[0] != 200:
            if mine[0] < 400:
                failures.append(f"{path}: thumbor {theirs[0]}, ProgImage {mine[0]}")
            continue
        if mine[0] != 200 and not (mine[0] == 400 and _matches(path, REFUSED)):
            failures.append(f"{path}: thumbor 200, ProgImage {mine[0]} {mine[2][:200]!r}")
            continue
        if mine[0] != 200:
            continue
        a, b = (pyvips.Image.new_from_buffer(x[2], "") for x in (theirs, mine))
        if (a.width, a.height) != (b.width, b.height):
            failures.append(f"{path}: thumbor {a.width}x{a.height}, ProgImage {b.width}x{b.height}")
            continue
        if _format(theirs[2]) != _format(mine[2]):
            failures.append(f"{path}: thumbor {_format(theirs[2])}, ProgImage {_format(mine[2])}")
            continue
        if "max_age(" in path and mine[3].get("Cache-Control") != "public, max-age=120":
            failures.append(f"{path}: Cache-Control {mine[3].get('Cache-Control')}")
        if _matches(path, DIFFERENT_PIXELS):
            continue
        mae = _mae(theirs[2], mine[2])
        applied = [name for name in FILTER_MAE if f"{name}(" in path]
        bound = max([GEOMETRY_MAE, *(FILTER_MAE[name] for name in applied)])
        report.append({"path": path, "mae": round(mae, 2), "filters": applied})
        if mae > bound:
            failures.append(f"{path}: pixels differ by {mae:.1f} on average (bound {bound})")
    artifacts = REPO / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "thumbor-peer.json").write_text(json.dumps(report, indent=1))
    compared = len(report)
    assert compared > 200, f"only {compared} images compared"
    (artifacts / "thumbor-peer-failures.txt").write_text("\n".join(failures))
    assert not failures, f"{len(failures)} of {len(paths)} differ:\n" + "\n".join(failures[:40])


def test_refusals_match_thumbor(stack):
    """Where thumbor refuses a URL, ProgImage refuses it too."""
    origin = stack["origin"]
    paths = [
        f"/unsafe/300x200/{origin}/missing.jpg",  # the origin answers 404
        "/unsafe/300x200/",  # no image
        f"/AAAAAAAAAAAAAAAAAAAAAAAAAAA=/300x200/{origin}/photo.jpg",  # a wrong signature
        f"/{peers_sign('300x200/' + origin + '/photo.jpg')}/300x201/{origin}/photo.jpg",
    ]
    thumbor, ours = _fetch_both(stack, paths)
    for path, theirs, mine in zip(paths, thumbor, ours, strict=True):
        assert theirs[0] >= 400, (path, theirs[0])
        assert mine[0] >= 400, (path, mine[0])


def test_signed_urls_from_thumbors_own_signer_are_accepted(stack):
    """A URL signed by thumbor's own library (libthumbor's CryptoURL, in thumbor's venv) is
    served by both."""
    origin = stack["origin"]
    python = PEERS_DIR / "venv-thumbor" / "bin" / "python"
    script = (
        "import sys; from libthumbor import CryptoURL; "
        f"print(CryptoURL(key='{KEY}').generate(width=120, height=80, smart=False, "
        f"filters=['format(png)'], image_url='{origin}/photo.jpg'))"
    )
    path = subprocess.run([str(python), "-c", script], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    thumbor, ours = _fetch_both(stack, [path])
    assert thumbor[0][0] == 200 and ours[0][0] == 200, (path, ours[0][0], ours[0][2][:200])
    image = pyvips.Image.new_from_buffer(ours[0][2], "")
    assert (image.width, image.height, _format(ours[0][2])) == (120, 80, "png")


def test_meta_reports_sizes_as_thumbor_does(stack):
    """The target size and the operations agree. (thumbor's "source" reports the image as
    it stands after the transformation; ProgImage reports the original's own size.)"""
    origin = stack["origin"]
    paths = [f"/unsafe/meta/fit-in/300x200/{origin}/photo.jpg",
             f"/unsafe/meta/10x10:300x200/-150x100/{origin}/photo.jpg"]  # fmt: skip
    thumbor, ours = _fetch_both(stack, paths)
    for (_, _, theirs, _), (status, kind, mine, _) in zip(thumbor, ours, strict=True):
        theirs, mine = json.loads(theirs)["thumbor"], json.loads(mine)["thumbor"]
        assert (status, kind) == (200, "application/json")
        assert [round(mine["target"][k]) for k in ("width", "height")] == [
            round(theirs["target"][k]) for k in ("width", "height")
        ]
        assert (mine["source"]["width"], mine["source"]["height"]) == (512, 341)
        types = [op["type"] for op in theirs["operations"]]
        assert [op["type"] for op in mine["operations"]] == list(dict.fromkeys(types))
        assert mine["operations"][0] == theirs["operations"][0]


def peers_sign(rest: str) -> str:
    from proxy.dialects.thumbor import sign

    return sign(KEY, rest)
