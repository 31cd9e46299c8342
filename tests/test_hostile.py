"""A hostile corpus, generated here: every case is refused with a clear 4xx, fast, leaving nothing.

Each case is uploaded (`PUT /images`) and rendered on demand (`POST /resize/100x/`) through the
in-process app. Neither may answer 500 or hang, and the store must hold no original and no
temporary file afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import zlib
from collections.abc import Callable

import pytest

from conftest import decode, gradient
from proxy.keys import STORE

PROBLEM = "application/problem+json"
TIMEOUT = 20  # seconds for one request: far above what any refusal takes
RSS_BOUND_MB = 300


def _small(fmt: str) -> bytes:
    image = gradient(64, 48)
    return {
        "jpeg": lambda: image.jpegsave_buffer(Q=85),
        "png": lambda: image.pngsave_buffer(),
        "gif": lambda: image.gifsave_buffer(),
        "webp": lambda: image.webpsave_buffer(Q=80),
        "tiff": lambda: image.tiffsave_buffer(),
    }[fmt]()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR (with a correct CRC) claims width x height, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A valid small JPEG with the SOF0 height/width fields patched (16 bits: 65535 at most)."""
    data = bytearray(gradient(64, 48).jpegsave_buffer(Q=85, optimize_coding=False))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


def gif_with_frames(frames: int, screen: int) -> bytes:
    """Thousands of 1x1 frames on a large logical screen: pages x screen is an image bomb."""
    head = (
        b"GIF89a" + struct.pack("<HHBBB", screen, screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    )
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
        + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # 1x1 at 0,0
        + b"\x02\x02\x44\x01\x00"  # LZW: clear, 0, end
    )
    return head + loop + frame * frames + b"\x3b"


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE svg [\n'
        + "\n".join(entities)
        + '\n]>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
        + "<text x='0' y='20'>&lol9;</text></svg>"
    ).encode()


def svg_claiming(width: int, height: int) -> bytes:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        '<rect width="10" height="10" fill="red"/></svg>'
    ).encode()


def svg_external(local_png: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="50" height="50"><image xlink:href="file://{local_png}" width="50" height="50"/>'
        '<image xlink:href="http://169.254.169.254/latest" width="50" height="50"/></svg>'
    ).encode()


def tiff_claiming(width: int, height: int, strip_bytes: int, payload: int = 64) -> bytes:
    """A little-endian baseline RGB TIFF whose tags claim this size and one strip of this length."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, strip_bytes),  # StripByteCounts
    ]
    ifd_offset = 8 + payload
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += b"\x00\x00\x00\x00"
    return b"II*\x00" + struct.pack("<I", ifd_offset) + b"\x7f" * payload + ifd


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("payload.html", "<script>alert(1)</script>")
    return buffer.getvalue()


HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"

# name -> (bytes factory, allowed statuses, app sections)
CASES: dict[str, tuple[Callable[[], bytes], set[int], dict]] = {
    "zero-bytes": (lambda: b"", {400}, {}),
    **{
        f"truncated-{fmt}": (lambda fmt=fmt: _small(fmt)[: len(_small(fmt)) // 2], {422}, {})
        for fmt in ("jpeg", "png", "gif", "webp", "tiff")
    },
    "truncated-jpeg-header-only": (lambda: _small("jpeg")[:20], {422}, {}),
    "truncated-png-signature-only": (lambda: b"\x89PNG\r\n\x1a\n", {422}, {}),
    "png-with-jpeg-magic": (lambda: b"\xff\xd8\xff" + _small("png")[3:], {415, 422}, {}),
    "jpeg-with-png-magic": (lambda: b"\x89PNG\r\n\x1a\n" + _small("jpeg")[8:], {415, 422}, {}),
    "gif-with-webp-magic": (
        lambda: b"RIFF\x00\x10\x00\x00WEBP" + _small("gif")[12:],
        {415, 422},
        {},
    ),
    "webp-with-gif-magic": (lambda: b"GIF89a" + _small("webp")[6:], {415, 422}, {}),
    "png-labelled-tiff": (lambda: b"II*\x00" + _small("png")[4:], {415, 422}, {}),
    "polyglot-gif-header-zip": (lambda: b"GIF89a" + _zip(), {415, 422}, {}),
    "polyglot-gif-header-html": (lambda: b"GIF89a/*" + HTML, {415, 422}, {}),
    "polyglot-png-signature-html": (lambda: b"\x89PNG\r\n\x1a\n" + HTML, {415, 422}, {}),
    "html": (lambda: HTML, {415}, {}),
    "zip": (lambda: _zip(), {415}, {}),
    "png-claims-100000x100000": (lambda: png_claiming(100_000, 100_000), {422}, {}),
    "jpeg-claims-65000x65000": (lambda: jpeg_claiming(65_000, 65_000), {422}, {}),
    "gif-5000-frames-over-max-pixels": (lambda: gif_with_frames(5000, 200), {422}, {}),
    "gif-5000-frames-small-limit": (
        lambda: gif_with_frames(5000, 2),
        {422},
        {"limits": {"max_pixels": 10_000}},
    ),
    "svg-billion-laughs-svg-off": (billion_laughs, {415}, {}),
    "svg-billion-laughs-svg-on": (billion_laughs, {415, 422}, {"sources": {"allow_svg": True}}),
    "svg-claims-100000x100000-svg-on": (
        lambda: svg_claiming(100_000, 100_000),
        {422},
        {"sources": {"allow_svg": True}},
    ),
    "tiff-claims-100000x100000": (lambda: tiff_claiming(100_000, 100_000, 2**32 - 1), {422}, {}),
    "tiff-huge-strip": (lambda: tiff_claiming(4000, 4000, 2**32 - 1), {422}, {}),
    **{
        f"random-behind-{name}-magic": (
            lambda magic=magic, i=i: magic + _random(4096, i),
            {415, 422},
            {},
        )
        for i, (name, magic) in enumerate(
            [
                ("jpeg", b"\xff\xd8\xff\xe0"),
                ("png", b"\x89PNG\r\n\x1a\n"),
                ("gif", b"GIF89a"),
                ("webp", b"RIFF\x00\x10\x00\x00WEBPVP8 "),
                ("tiff-le", b"II*\x00"),
                ("tiff-be", b"MM\x00*"),
                ("avif", b"\x00\x00\x00\x1cftypavif"),
                ("heic", b"\x00\x00\x00\x18ftypheic"),
                ("pdf", b"%PDF-1.7\n"),
                ("mp4", b"\x00\x00\x00\x18ftypisom"),
                ("webm", b"\x1a\x45\xdf\xa3"),
                ("jxl", b"\xff\x0a"),
                ("bmp", b"BM" + bytes(12) + b"\x28"),
                ("ico", b"\x00\x00\x01\x00\x01\x00"),
            ]
        )
    },
    "random-behind-svg-magic-svg-on": (
        lambda: b"<svg " + _random(2048, 99),
        {415, 422},
        {"sources": {"allow_svg": True}},
    ),
    "random-bytes": (lambda: _random(8192, 7), {415}, {}),
}


def vm_rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _store_leftovers(app) -> list[str]:
    store = app[STORE]
    found = [str(p) for p in store.originals.rglob("*") if p.is_file()]
    return found + [str(p) for p in store.tmp.iterdir()]


async def _assert_refused(response, allowed: set[int]) -> int:
    text = await response.text()
    assert response.status in allowed, (response.status, text)
    assert response.content_type == PROBLEM, text
    assert response.headers["Cache-Control"] == "no-store"
    return response.status


@pytest.fixture(scope="module")
def rss_baseline() -> dict[str, float]:
    return {"before": vm_rss_mb()}


@pytest.mark.parametrize("case", list(CASES))
async def test_hostile_input_is_refused_cleanly(app_client, case: str, rss_baseline) -> None:
    make, allowed, sections = CASES[case]
    data = make()
    client = await app_client(**sections)
    put = await asyncio.wait_for(client.put("/images", data=data), TIMEOUT)
    await _assert_refused(put, allowed)
    post = await asyncio.wait_for(client.post("/resize/100x", data=data), TIMEOUT)
    await _assert_refused(post, allowed)
    assert _store_leftovers(client.server.app) == []
    for response in (put, post):  # a refusal never names a file on the server's disk
        assert "/tmp" not in await response.text() and "/data" not in await response.text()
    health = await asyncio.wait_for(client.get("/health"), TIMEOUT)
    assert health.status == 200


async def test_svg_external_references_are_not_loaded(app_client, tmp_path) -> None:
    local = tmp_path / "red.png"
    local.write_bytes((gradient(50, 50) * 0 + [255, 0, 0]).cast("uchar").pngsave_buffer())
    client = await app_client(sources={"allow_svg": True})
    response = await asyncio.wait_for(
        client.post("/fmt/png", data=svg_external(str(local))), TIMEOUT
    )
    assert response.status in (200, 415, 422), await response.text()
    if response.status == 200:  # rendered, but with neither reference drawn: transparent
        image = decode(await response.read())
        assert image.hasalpha() and image[image.bands - 1].max() == 0


async def test_memory_stays_bounded_over_the_corpus(app_client, rss_baseline) -> None:
    """Every case twice more through one app: resident memory must not run away."""
    clients = {}
    for _ in range(2):
        for make, allowed, sections in CASES.values():
            key = repr(sorted(sections.items()))
            if key not in clients:
                clients[key] = await app_client(**sections)
            data = make()
            for method, path in (("PUT", "/images"), ("POST", "/resize/100x")):
                response = await asyncio.wait_for(
                    clients[key].request(method, path, data=data), TIMEOUT
                )
                await _assert_refused(response, allowed)
    growth = vm_rss_mb() - rss_baseline["before"]
    print(f"RSS growth over the hostile corpus: {growth:.1f} MB (bound {RSS_BOUND_MB} MB)")
    assert growth < RSS_BOUND_MB, growth
    for client in clients.values():
        assert _store_leftovers(client.server.app) == []


def test_corpus_factories_are_deterministic() -> None:
    for make, _allowed, _sections in CASES.values():
        assert make() == make()
    assert os.path.basename(__file__) == "test_hostile.py"
