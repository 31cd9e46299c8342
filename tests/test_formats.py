"""The formats the sandbox reads (SPEC §10): HEIC, PDF, video, JPEG XL, BMP, ICO.

Every file is made here by the package that reads it (pillow-heif encodes the HEIC, Pillow
writes the PDF, PyAV the videos, imagecodecs the JPEG XL), plus one real iPhone photograph
(tests/images/iphone-arrow.heic). Each uploads, answers /info, renders at the right size and
the right way up, converts to every output format, and its truncated and corrupt versions are
refused with 422.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import imagecodecs
import numpy as np
import pillow_heif
import pytest
import pyvips
from PIL import Image
from test_app import assert_problem, upload
from test_inputs import brightest_corner

from conftest import decode
from proxy import inputs, ops
from proxy.decoders import formats
from proxy.decoders.sandbox import Limits, Sandbox
from proxy.errors import ProxyError

IMAGES = Path(__file__).parent / "images"
SIZE = (480, 320)  # stored and upright: these formats carry no orientation of their own here
OUTPUTS = {
    "jpg": "jpeg", "png": "png", "webp": "webp", "avif": "avif", "jxl": "jxl", "gif": "gif",
    "tif": "tiff",
}  # fmt: skip
# What libvips names the loader of each (JPEG XL is decoded by imagecodecs: no loader).
LOADERS = {"avif": "heif", "jxl": None}
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]  # of the videos' seconds 0, 1, 2


def pattern(width: int = SIZE[0], height: int = SIZE[1], mode: str = "RGB") -> Image.Image:
    """Dark grey with a white block in the top-left corner."""
    pixels = np.full((height, width, len(mode)), 60, np.uint8)
    pixels[: height // 3, : width // 3] = 255
    if mode == "RGBA":
        pixels[..., 3] = 255
        pixels[height // 2 :, width // 2 :, 3] = 0  # a transparent bottom-right quarter
    return Image.fromarray(pixels if len(mode) > 1 else pixels[..., 0])


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _heic(image: Image.Image) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(image).save(out, quality=90)
    return out.getvalue()


def pdf(pages: int = 3) -> bytes:
    """Pages of 480x320 points (Pillow writes the image at 72 dpi), then portrait ones."""
    rest = [pattern(SIZE[1], SIZE[0]) for _ in range(pages - 1)]
    return _saved(pattern(), "PDF", save_all=True, append_images=rest, resolution=72.0)


def video(container: str = "mp4", codec: str = "libx264", seconds: int = 3) -> bytes:
    """10 frames a second of one colour per second: red, green, blue."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        for i in range(10 * seconds):
            rgb = np.full((SIZE[1], SIZE[0], 3), COLOURS[i // 10 % 3], np.uint8)
            rgb[: SIZE[1] // 3, : SIZE[0] // 3] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                muxer.mux(packet)
        for packet in stream.encode():
            muxer.mux(packet)
    return out.getvalue()


def jxl() -> bytes:
    return imagecodecs.jpegxl_encode(np.asarray(pattern()), level=90)


FILES = {
    "heic": lambda: _heic(pattern()),
    "pdf": pdf,
    "mp4": video,
    "webm": lambda: video("webm", "libvpx"),
    "jxl": jxl,
    "bmp": lambda: _saved(pattern(), "BMP"),
    "ico": lambda: _saved(pattern(256, 256), "ICO", sizes=[(256, 256), (32, 32)]),
}
EXPECTED = {  # format /info names, upright size, pages
    "heic": ("heic", SIZE, 1),
    "pdf": ("pdf", SIZE, 3),
    "mp4": ("mp4", SIZE, 1),
    "webm": ("webm", SIZE, 1),
    "jxl": ("jxl", SIZE, 1),
    "bmp": ("bmp", SIZE, 1),
    "ico": ("ico", (256, 256), 1),
}


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: make() for name, make in FILES.items()}


@pytest.mark.parametrize("name", list(FILES))
async def test_each_format_uploads_answers_info_and_converts_to_every_output(
    client, files: dict[str, bytes], name: str
) -> None:
    fmt, size, pages = EXPECTED[name]
    stored = await upload(client, files[name])
    assert (stored["format"], stored["width"], stored["height"]) == (fmt, *size)
    info = await (await client.get(f"/images/{stored['id']}/info")).json()
    assert (info["format"], info["mime"], info["pages"]) == (fmt, ops.MIME_TYPES[fmt], pages)
    if name in ("mp4", "webm"):
        assert info["duration"] == pytest.approx(3.0, abs=0.15)
    else:
        assert "duration" not in info
    # No format asked for: JPEG, as for any format browsers do not show.
    response = await client.get(f"/resize/120x/{stored['id']}")
    assert response.status == 200, await response.text()
    assert response.content_type == "image/jpeg"
    small = decode(await response.read())
    assert small.width == 120 and small.height == round(120 * size[1] / size[0])
    for ext, out in OUTPUTS.items():
        response = await client.get(f"/images/{stored['id']}.{ext}")
        assert response.status == 200, f"{ext}: {await response.text()}"
        image = decode(await response.read())
        loader = LOADERS.get(out, out)
        assert loader is None or image.get("vips-loader").startswith(loader), ext
        assert (image.width, image.height) == size, ext
        assert brightest_corner(image) == "tl", ext


@pytest.mark.parametrize("name", list(FILES))
async def test_truncated_and_corrupt_files_are_422_and_nothing_is_stored(
    client, files: dict[str, bytes], name: str
) -> None:
    data = files[name]
    truncated = data[: len(data) // 2]
    corrupt = data[:32] + bytes(b ^ 0x5A for b in data[32:])
    for bad in (truncated, corrupt):
        await assert_problem(await client.put("/images", data=bad), 422)
        response = await client.post("/resize/100x", data=bad)
        await assert_problem(response, 422)
    listing = await (await client.get("/images")).json()
    assert listing["images"] == []


async def test_page_picks_a_pdf_page_and_past_the_end_is_400(client, files) -> None:
    stored = await upload(client, files["pdf"])
    second = decode(await (await client.get(f"/page/2/resize/100x/{stored['id']}")).read())
    assert (second.width, second.height) == (100, 150)  # page 2 is portrait
    first = decode(await (await client.get(f"/page/1/resize/100x/{stored['id']}")).read())
    assert (first.width, first.height) == (100, 67)
    await assert_problem(await client.get(f"/page/4/{stored['id']}"), 400, "3 pages")


async def test_page_past_the_end_of_a_heic_is_400(client, files) -> None:
    stored = await upload(client, files["heic"])
    await assert_problem(await client.get(f"/page/2/resize/50x/{stored['id']}"), 400, "1 image")


def test_a_pdf_page_is_drawn_at_the_density_of_the_box_at_most_300_dpi(files) -> None:
    data = files["pdf"]
    _, small = formats.pdf(data, max_pixels=10**8, box=[96, None])
    assert decode(small).width == 96  # 14.4 dpi, not 72 then shrunk
    facts, large = formats.pdf(data, max_pixels=10**8, box=[4000, 4000])
    assert decode(large).width == round(480 * 300 / 72)  # capped at 300 dpi
    assert (facts["width"], facts["height"], facts["pages"]) == (480, 320, 3)
    _, natural = formats.pdf(data, max_pixels=10**8)
    assert decode(natural).width == 480
    # the page at 72 dpi must fit the limit; a box asks for sharpness within it
    _, capped = formats.pdf(data, max_pixels=200_000, box=[4000, None])
    assert 150_000 < decode(capped).width * decode(capped).height <= 200_000
    with pytest.raises(ValueError, match="over the limit"):
        formats.pdf(data, max_pixels=100_000, box=[96, None])  # checked before drawing


async def test_a_large_pdf_render_is_sharp_at_its_own_size(client, files) -> None:
    stored = await upload(client, files["pdf"])
    response = await client.get(f"/resize/1440x/fmt/png/{stored['id']}")
    image = decode(await response.read())
    assert (image.width, image.height) == (1440, 960)  # drawn at 216 dpi, not enlarged
    # the white block's edge is one step, as drawn, not a ramp as an enlargement makes it
    row = image.crop(0, 100, image.width, 1).colourspace("b-w")[0]
    values = [row.getpoint(x, 0)[0] for x in range(470, 490)]
    assert sum(1 for v in values if 80 < v < 230) <= 2


@pytest.mark.parametrize("name", ["mp4", "webm"])
async def test_at_picks_the_frame_shown_at_that_second(client, files, name) -> None:
    stored = await upload(client, files[name])

    async def colour(path: str) -> tuple[int, ...]:
        response = await client.get(f"{path}/fmt/png/{stored['id']}")
        assert response.status == 200, await response.text()
        image = decode(await response.read())
        return tuple(round(v) for v in image.getpoint(image.width * 3 // 4, image.height // 2))

    def nearest(rgb: tuple[int, ...]) -> int:
        return min(
            range(3), key=lambda i: sum(abs(a - b) for a, b in zip(rgb, COLOURS[i], strict=True))
        )

    assert nearest(await colour("/resize/100x")) == 1  # default: at 1 s
    assert nearest(await colour("/at/0.2/resize/100x")) == 0
    assert nearest(await colour("/at/2.5/resize/100x")) == 2
    assert nearest(await colour("/at/99/resize/100x")) == 2  # past the end: the last frame
    await assert_problem(await client.get(f"/at/-1/{stored['id']}"), 400)


def test_a_short_video_shows_its_first_frame(files) -> None:
    facts, raster = formats.video(video(seconds=1), max_pixels=10**8)
    image = decode(raster)
    assert image.getpoint(image.width * 3 // 4, image.height // 2)[0] > 200  # red
    assert facts["duration"] == pytest.approx(1.0, abs=0.15)


async def test_a_real_iphone_heic_is_upright(client) -> None:
    data = (IMAGES / "iphone-arrow.heic").read_bytes()
    stored = await upload(client, data)
    assert (stored["format"], stored["width"], stored["height"]) == ("heic", 3024, 4032)
    response = await client.get(f"/resize/300x/{stored['id']}")
    ours = decode(await response.read())
    assert (ours.width, ours.height) == (300, 400)
    # libheif's own rendering, upright as an iPhone shows it (the arrow points up)
    pillow_heif.register_heif_opener()
    with Image.open(io.BytesIO(data)) as reference:
        reference = reference.convert("RGB").resize((300, 400))
    expected = pyvips.Image.new_from_memory(np.asarray(reference).tobytes(), 300, 400, 3, "uchar")
    assert (ours - expected).abs().avg() < 6
    assert (ours.rot180() - expected).abs().avg() > 3 * (ours - expected).abs().avg()


async def test_thumbnails_of_sandboxed_originals_come_from_their_preview(
    client, files, monkeypatch
) -> None:
    ids = {name: (await upload(client, files[name]))["id"] for name in ("heic", "pdf", "mp4")}

    class NoDecoder:
        def run(self, *args, **kwargs):
            raise AssertionError("the sandbox was started for a thumbnail")

    monkeypatch.setattr(inputs, "_sandbox", NoDecoder())
    # As in another worker process, or after a restart: the header comes from the record.
    inputs._headers.clear()
    for image_id in ids.values():
        response = await client.get(f"/resize/100x/fmt/webp/{image_id}")
        assert response.status == 200, await response.text()
        assert decode(await response.read()).width == 100
    # and so does the face detector, for the info of the original, in a fresh process too
    inputs._headers.clear()
    info = await client.get(f"/images/{ids['heic']}/info")
    assert info.status == 200, await info.text()
    assert (await info.json())["faces"] == []
    # a page the preview does not show needs the decoder
    response = await client.get(f"/page/2/resize/100x/{ids['pdf']}")
    assert response.status == 500


async def test_over_max_pixels_is_422_before_decoding(app_client, files) -> None:
    client = await app_client(limits={"max_pixels": 10_000})
    for name in ("heic", "pdf", "mp4", "jxl", "bmp"):
        await assert_problem(await client.put("/images", data=files[name]), 422, "limit")


# --- the sandbox inside a running service: a decoder that crashes or spins costs its request


@pytest.mark.parametrize(("decoder", "words"), [("crash", "SIGABRT"), ("spin", "CPU time")])
async def test_a_crashing_decoder_costs_only_its_request(
    client, files, jpeg_bytes, monkeypatch, decoder: str, words: str
) -> None:
    stored = await upload(client, jpeg_bytes)
    monkeypatch.setitem(inputs.DECODERS, "bmp", f"stand_in_decoders:{decoder}")
    monkeypatch.setattr(inputs, "_sandbox", Sandbox(Limits(cpu_seconds=1, timeout=60.0, workers=2)))
    bad = asyncio.ensure_future(client.put("/images", data=files["bmp"]))
    good = [client.get(f"/resize/{40 + i}x/{stored['id']}") for i in range(6)]
    for response in await asyncio.gather(*good):
        assert response.status == 200
    await assert_problem(await bad, 422, words)
    # and the service is still there for the next upload of that format
    monkeypatch.setitem(inputs.DECODERS, "bmp", "proxy.decoders.formats:raster")
    assert (await upload(client, files["bmp"]))["format"] == "bmp"


def test_the_jxl_header_gives_the_size_without_decoding() -> None:
    from proxy.decoders import jxlheader

    for width, height in [(8, 8), (480, 320), (123, 457), (4000, 3000), (1000, 1)]:
        data = imagecodecs.jpegxl_encode(np.zeros((height, width, 3), np.uint8), level=80)
        assert jxlheader.size(data) == (width, height)
    with pytest.raises(ValueError):
        jxlheader.size(b"\xff\x0a")


def test_sniffing_tells_the_new_formats_apart(files) -> None:
    from proxy import imaging

    families = {
        "heic": "heic", "pdf": "pdf", "mp4": "video", "webm": "video", "jxl": "jxl",
        "bmp": "bmp", "ico": "ico",
    }  # fmt: skip
    for name, family in families.items():
        assert imaging.sniff(files[name][:4096]) == family, name
    avif = pyvips.Image.black(8, 8).heifsave_buffer(compression="av1")
    assert imaging.sniff(avif) == "heif"  # AVIF stays with libvips


def test_errors_of_the_decoder_keep_their_status(files) -> None:
    sandbox = Sandbox()
    with pytest.raises(ProxyError) as caught:
        sandbox.run(inputs.DECODERS["pdf"], files["pdf"], max_pixels=10**8, page=9)
    assert caught.value.status == 400


# --- as remote sources: the same limits as for any image


async def test_remote_pdf_and_heic_render_and_keep_the_source_limits(
    aiohttp_server, app_client, files
) -> None:
    from aiohttp import web

    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=files[request.match_info["name"]])

    origin = web.Application()
    origin.router.add_get("/{name}", serve)
    server = await aiohttp_server(origin, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    client = await app_client(sources={"allow_private_networks": True})
    for name, size in (("pdf", (150, 100)), ("heic", (150, 100)), ("mp4", (150, 100))):
        response = await client.get(f"/resize/150x/fmt/png/{base}/{name}")
        assert response.status == 200, await response.text()
        image = decode(await response.read())
        assert (image.width, image.height) == size, name
    small = await app_client(
        sources={"allow_private_networks": True}, limits={"max_source_bytes": 1000}
    )
    await assert_problem(await small.get(f"/resize/150x/{base}/bmp"), 413)


def _rotated_90(mp4: bytes) -> bytes:
    """The MP4 with the track matrix a phone held upright writes: shown turned 90° clockwise."""
    import struct

    data = bytearray(mp4)
    at = data.find(b"tkhd")
    version = data[at + 4]
    matrix = at + 8 + (32 if version == 1 else 20) + 16
    assert struct.unpack(">9i", data[matrix : matrix + 36])[0] == 0x10000  # identity before
    struct.pack_into(">9i", data, matrix, 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    return bytes(data)


async def test_a_video_shot_upright_on_a_phone_is_shown_upright(client, files) -> None:
    stored = await upload(client, _rotated_90(files["mp4"]))
    assert (stored["width"], stored["height"]) == (SIZE[1], SIZE[0])
    response = await client.get(f"/images/{stored['id']}.png")
    image = decode(await response.read())
    assert (image.width, image.height) == (SIZE[1], SIZE[0])
    assert brightest_corner(image) == "tr"  # the stored top-left, turned clockwise


async def test_a_long_pdf_is_limited_by_its_page_not_by_its_page_count(
    app_client, files, monkeypatch
) -> None:
    """3 pages of 480x320 are over a limit of 400 000 pixels; one page is not, and one page
    is all that is ever decoded, so it uploads and its thumbnail comes from the preview."""
    client = await app_client(limits={"max_pixels": 400_000})
    stored = await upload(client, files["pdf"])

    class NoDecoder:
        def run(self, *args, **kwargs):
            raise AssertionError("the sandbox was started for a thumbnail")

    monkeypatch.setattr(inputs, "_sandbox", NoDecoder())
    inputs._headers.clear()
    response = await client.get(f"/resize/100x/{stored['id']}")
    assert response.status == 200, await response.text()
    assert decode(await response.read()).width == 100
