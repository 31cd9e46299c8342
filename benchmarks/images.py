"""Benchmark photographs, built once and cached under /tmp/progimage-bench/images.

The sources are real photographs from Debian's `plasma-workspace-wallpapers` package (KDE
Visual Design Group; LGPLv3 per each wallpaper's metadata.json, GPL-2+ per Debian's copyright
file). The package is fetched with `apt-get download` and unpacked with `dpkg-deb`; nothing is
installed system-wide and nothing is written into the repository.

The recipe (the same bytes every run with the same libvips build):

- large.jpg  4000x3000 JPEG: "Path" (forest path) centre-cropped to 4:3, lanczos3 to
             4000x3000 (an upscale: no photo that large ships in the package), Q90, 4:2:0.
- medium.jpg 1600x1200 JPEG: "EveningGlow" centre-cropped to 4:3, lanczos3 down, Q90, 4:2:0.
- alpha.png  1000x1000 RGBA PNG: "OneStandsOut" (moss) centre square, lanczos3 down, with a
             synthetic feathered circular alpha.

upload.jpg (W6) is always made here: large.jpg re-encoded at Q80, about 2 MB; so is huge.jpg,
large.jpg upscaled to 6000x4000 (24 megapixels) for the memory check, and faces.jpg (W10), a
3000x4000 portrait with a face: tests/images/hopper.jpg (public domain, see its README)
centre-cropped to 3:4 and upscaled with lanczos3, Q90. large.heic (W11) is large.jpg as an
iPhone writes it: HEVC at quality 80 (pillow-heif); page.pdf (W12) an A4 page (595x842 pt)
with medium.jpg across its upper half and a caption drawn under it, written by Pillow at
150 dpi (the photograph embedded as JPEG, as a scanner's PDF holds it).

    python benchmarks/images.py [OUT_DIR]      # prints the paths
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(os.environ.get("BENCH_DIR", "/tmp/progimage-bench"))
IMAGES = ROOT / "images"
PACKAGE = "plasma-workspace-wallpapers"
WALLPAPER = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
PHOTOS = {"large": "Path", "medium": "EveningGlow", "alpha": "OneStandsOut"}
NAMES = ("large.jpg", "medium.jpg", "alpha.png", "upload.jpg", "huge.jpg", "faces.jpg")
PORTRAIT = Path(__file__).resolve().parent.parent / "tests" / "images" / "hopper.jpg"


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def ensure(out: Path = IMAGES) -> dict[str, Path]:
    """The four benchmark images, built on first use. Returns name -> path."""
    paths = {name.split(".")[0]: out / name for name in NAMES}
    if all(p.is_file() and p.stat().st_size > 0 for p in paths.values()):
        return paths
    out.mkdir(parents=True, exist_ok=True)
    if not all(paths[k].is_file() for k in ("large", "medium", "alpha")):
        _build(_unpack(), out)
    _make_upload(paths["large"], paths["upload"])
    _make_huge(paths["large"], paths["huge"])
    _make_faces(paths["faces"])
    _manifest(paths, out / "manifest-progimage.json")
    return paths


def ensure_documents(out: Path = IMAGES) -> dict[str, Path]:
    """large.heic and page.pdf (libvips here reads neither: not in ensure()'s manifest)."""
    paths = ensure(out)
    made = {"heic": out / "large.heic", "pdf": out / "page.pdf"}
    if not made["heic"].is_file():
        _make_heic(paths["large"], made["heic"])
    if not made["pdf"].is_file():
        _make_pdf(paths["medium"], made["pdf"])
    return {**paths, **made}


def _make_heic(large: Path, dest: Path) -> None:
    import pillow_heif
    from PIL import Image

    tmp = dest.with_suffix(".tmp")
    with Image.open(large) as image:
        pillow_heif.from_pillow(image.convert("RGB")).save(tmp, quality=80)
    os.replace(tmp, dest)


def _make_pdf(medium: Path, dest: Path) -> None:
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    with Image.open(medium) as photo:
        page.paste(photo.convert("RGB").resize((1040, 780)), (100, 120))
    draw = ImageDraw.Draw(page)
    for i in range(12):  # lines of "text": bars of a caption's height
        draw.rectangle((100, 960 + 40 * i, 100 + 1040 - (i * 53) % 400, 978 + 40 * i), "black")
    tmp = dest.with_suffix(".tmp")
    page.save(tmp, format="PDF", resolution=150.0)
    os.replace(tmp, dest)


def _unpack() -> Path:
    """apt-get download the wallpaper package (cached) and extract the three photos."""
    src = ROOT / "src"
    wanted = [WALLPAPER.format(name) for name in PHOTOS.values()]
    if all((src / w).is_file() for w in wanted):
        return src
    debs = ROOT / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(glob.glob(str(debs / f"{PACKAGE}_*.deb")))
    if not found:
        log(f"apt-get download {PACKAGE} (about 94 MB, once)")
        # apt's progress goes to stderr: the scripts' stdout is a report (a README table).
        fetch = ["apt-get", "download", PACKAGE]
        if subprocess.run(fetch, cwd=debs, stdout=sys.stderr).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(fetch, cwd=debs, check=True, stdout=sys.stderr)
        found = sorted(glob.glob(str(debs / f"{PACKAGE}_*.deb")))
    src.mkdir(parents=True, exist_ok=True)
    tarball = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", found[-1]], stdout=subprocess.PIPE)
    members = [f"./{w}" for w in wanted] + [f"./usr/share/wallpapers/{n}/metadata.json"
                                            for n in PHOTOS.values()]  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(src), *members], stdin=tarball.stdout, check=True)
    tarball.wait()
    return src


def tagged(data: bytes, text: str) -> bytes:
    """The same image with different bytes: `text` in a JPEG COM segment, a PNG tEXt chunk,
    a HEIF `free` box or a PDF comment.

    Decoders skip both, so the pixels (and the work to decode them) are unchanged while the
    SHA-256, hence the stored id, differs.
    """
    payload = text.encode()
    if data[:2] == b"\xff\xd8":
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
        body = b"tEXt" + b"Comment\x00" + payload
        chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
        return data[:ihdr_end] + chunk + data[ihdr_end:]
    if data[4:8] == b"ftyp":  # HEIF: a `free` box at the end, which readers skip
        return data + struct.pack(">I", 8 + len(payload)) + b"free" + payload
    if data[:5] == b"%PDF-":  # a comment after %%EOF
        return data + b"\n%" + payload + b"\n"
    raise ValueError("tagged() knows JPEG, PNG, HEIF and PDF only")


def logo(alpha: Path) -> bytes:
    """W9's watermark: the alpha photograph at 400 px, an RGBA PNG (decoded once per process
    by the service, so its size matters little)."""
    import pyvips

    return pyvips.Image.thumbnail(str(alpha), 400).pngsave_buffer(compression=6)


def _centre_crop(image, aspect: float):
    width = min(image.width, round(image.height * aspect))
    height = min(image.height, round(width / aspect))
    return image.crop((image.width - width) // 2, (image.height - height) // 2, width, height)


def _build(src: Path, out: Path) -> None:
    """Same recipe as the shared harness, for a checkout without ../shared/bench."""
    import pyvips

    def load(key: str):
        return pyvips.Image.new_from_file(str(src / WALLPAPER.format(PHOTOS[key])))

    jpeg = {"Q": 90, "subsample_mode": "on", "optimize_coding": True, "keep": "none"}
    for key, (width, height) in (("large", (4000, 3000)), ("medium", (1600, 1200))):
        image = _centre_crop(load(key), 4 / 3)
        image = image.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
        image.jpegsave(str(out / f"{key}.jpg"), **jpeg)

    square = _centre_crop(load("alpha"), 1.0)
    square = square.resize(1000 / square.width, kernel="lanczos3")
    xy = pyvips.Image.xyz(1000, 1000)
    distance = ((xy[0] - 499.5) ** 2 + (xy[1] - 499.5) ** 2) ** 0.5
    alpha = ((470.0 - distance) * (255.0 / 12.0)).cast("uchar")  # cast clips to 0..255
    rgba = square.bandjoin(alpha).copy(interpretation="srgb")
    rgba.pngsave(str(out / "alpha.png"), compression=6, keep="none")


def _make_upload(large: Path, upload: Path) -> None:
    import pyvips

    image = pyvips.Image.new_from_file(str(large))
    tmp = upload.with_suffix(".tmp.jpg")
    image.jpegsave(str(tmp), Q=80, subsample_mode="on", optimize_coding=True, keep="none")
    os.replace(tmp, upload)


def _make_huge(large: Path, huge: Path) -> None:
    """24 megapixels (6000x4000) for the memory check, as a modern camera writes them:
    large.jpg upscaled 1.5x (lanczos3), Q90."""
    import pyvips

    image = pyvips.Image.new_from_file(str(large)).resize(1.5)
    tmp = huge.with_suffix(".tmp.jpg")
    image.jpegsave(str(tmp), Q=90, optimize_coding=True, keep="none")
    os.replace(tmp, huge)


def _make_faces(dest: Path) -> None:
    import pyvips

    image = _centre_crop(pyvips.Image.new_from_file(str(PORTRAIT)), 3 / 4)
    image = image.resize(3000 / image.width, vscale=4000 / image.height, kernel="lanczos3")
    tmp = dest.with_suffix(".tmp.jpg")
    image.jpegsave(str(tmp), Q=90, optimize_coding=True, keep="none")
    os.replace(tmp, dest)


def _manifest(paths: dict[str, Path], dest: Path) -> None:
    import pyvips

    facts = {}
    for key, path in paths.items():
        image = pyvips.Image.new_from_file(str(path))
        facts[key] = {
            "file": path.name,
            "width": image.width,
            "height": image.height,
            "bands": image.bands,
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    dest.write_text(json.dumps(facts, indent=2))


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGES
    for name, path in ensure(target).items():
        print(f"{name}\t{path}\t{path.stat().st_size} bytes")
