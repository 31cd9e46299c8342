"""SVG input: off by default; when on, rendered without loading any external or file reference."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest
import pyvips
from aiohttp import web
from yarl import URL

from conftest import decode, gradient
from proxy import imaging

GREEN = [0, 200, 0]
RED_PNG = (gradient(20, 20) * 0 + [255, 0, 0]).cast("uchar").copy(interpretation="srgb")


def svg(*elements: str) -> bytes:
    """A 40x40 green square with `elements` drawn over it."""
    body = "".join(elements)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="40" height="40"><rect width="40" height="40" fill="rgb(0,200,0)"/>'
        f"{body}</svg>"
    ).encode()


def cover(href: str, attribute: str = "href") -> str:
    return f'<image {attribute}="{href}" x="0" y="0" width="40" height="40"/>'


def references(port: int, local_png: Path, local_text: Path) -> dict[str, str]:
    """Every way we know of for an SVG to pull in another file or URL."""
    http = f"http://127.0.0.1:{port}"
    return {
        "image-file-url": cover(f"file://{local_png}"),
        "xlink-file-url": cover(f"file://{local_png}", "xlink:href"),
        "image-relative": cover(local_png.name),  # relative to where the SVG is loaded from
        "image-http": cover(f"{http}/ref.png"),
        "xlink-http": cover(f"{http}/ref.png", "xlink:href"),
        "paint-server-http": f'<rect width="40" height="40" style="fill:url({http}/p.svg#p)"/>',
        "css-import-http": f"<style>@import url({http}/style.css);</style>",
        "use-http": f'<use href="{http}/use.svg#shape"/>',
        "feimage-http": f'<filter id="f"><feImage href="{http}/filter.png"/></filter>'
        '<rect width="40" height="40" filter="url(#f)"/>',
        "feimage-file": f'<filter id="g"><feImage href="file://{local_png}"/></filter>'
        '<rect width="40" height="40" filter="url(#g)"/>',
        "xinclude-relative": '<text x="0" y="30" font-size="40" fill="red">'
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{local_text.name}" '
        'parse="text"/></text>',
        "xinclude-http": '<text x="0" y="30" font-size="40" fill="red">'
        f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{http}/include.txt" '
        'parse="text"/></text>',
    }


REFERENCE_KINDS = list(references(0, Path("red.png"), Path("secret.txt")))


@pytest.fixture
def local_files(tmp_path: Path) -> tuple[Path, Path]:
    """A red PNG and a line of text next to where the SVG will be written."""
    png = tmp_path / "red.png"
    png.write_bytes(RED_PNG.pngsave_buffer())
    text = tmp_path / "secret.txt"
    text.write_text("MMMMMMMM")
    return png, text


@pytest.fixture
async def svg_origin(aiohttp_server):
    """An origin that serves `state["svg"]` at /image.svg and counts every other hit."""
    state: dict = {"svg": b"", "hits": Counter()}

    async def serve(request: web.Request) -> web.Response:
        if request.path == "/image.svg":
            return web.Response(body=state["svg"], content_type="image/svg+xml")
        state["hits"][request.path] += 1
        if request.path.endswith(".png"):
            return web.Response(body=RED_PNG.pngsave_buffer(), content_type="image/png")
        return web.Response(text="* { fill: red }", content_type="text/css")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    server = await aiohttp_server(app, host="127.0.0.1")
    state["port"] = server.port
    return state


def is_green(image: pyvips.Image) -> bool:
    """Every pixel is the background: nothing referenced was drawn."""
    rgb = image[:3] if image.bands >= 3 else image
    return all(
        abs(rgb.extract_band(band).min() - value) <= 2
        and abs(rgb.extract_band(band).max() - value) <= 2
        for band, value in enumerate(GREEN)
    )


async def test_svg_is_refused_when_disabled(app_client, svg_origin):
    svg_origin["svg"] = svg()
    client = await app_client(sources={"allow_private_networks": True})
    url = f"http://127.0.0.1:{svg_origin['port']}/image.svg"
    response = await client.get(URL(f"/fmt/png/{url}", encoded=True))
    assert response.status == 415
    upload = await client.post("/images", data=svg())
    assert upload.status == 415


async def test_remote_svg_renders_without_loading_references(app_client, svg_origin, local_files):
    port = svg_origin["port"]
    svg_origin["svg"] = svg(*references(port, *local_files).values())
    client = await app_client(sources={"allow_private_networks": True, "allow_svg": True})
    url = f"http://127.0.0.1:{port}/image.svg"
    response = await client.get(URL(f"/fmt/png/{url}", encoded=True))
    assert response.status == 200, await response.text()
    image = decode(await response.read())
    assert (image.width, image.height) == (40, 40)
    assert is_green(image)
    assert svg_origin["hits"] == Counter()


@pytest.mark.parametrize("kind", REFERENCE_KINDS)
async def test_each_reference_alone_is_ignored(app_client, svg_origin, local_files, kind):
    port = svg_origin["port"]
    svg_origin["svg"] = svg(references(port, *local_files)[kind])
    client = await app_client(sources={"allow_private_networks": True, "allow_svg": True})
    url = f"http://127.0.0.1:{port}/image.svg"
    response = await client.get(URL(f"/fmt/png/{url}", encoded=True))
    assert response.status == 200, await response.text()
    assert is_green(decode(await response.read()))
    assert svg_origin["hits"] == Counter()


async def test_embedded_data_uris_still_render(app_client, svg_origin):
    # The control: an inline image is part of the SVG itself and is drawn.
    data = base64.b64encode(RED_PNG.pngsave_buffer()).decode()
    svg_origin["svg"] = svg(cover(f"data:image/png;base64,{data}"))
    client = await app_client(sources={"allow_private_networks": True, "allow_svg": True})
    url = f"http://127.0.0.1:{svg_origin['port']}/image.svg"
    response = await client.get(URL(f"/fmt/png/{url}", encoded=True))
    assert response.status == 200
    assert decode(await response.read())(20, 20)[:3] == [255, 0, 0]


async def test_stored_svg_does_not_read_its_neighbours(app_client, make_config, local_files):
    """A stored SVG sits beside other originals and their JSON records: loaded from its file,
    librsvg would draw those into the render (the control below shows that it does)."""
    png, text = local_files
    client = await app_client(sources={"allow_svg": True})
    drawing = svg(
        cover(png.name),
        '<text x="0" y="30" font-size="40" fill="red"><xi:include '
        f'xmlns:xi="http://www.w3.org/2001/XInclude" href="{text.name}" parse="text"/></text>',
    )
    uploaded = await client.post("/images", data=drawing)
    assert uploaded.status == 201, await uploaded.text()
    svg_id = (await uploaded.json())["id"]
    stored = Path(make_config().storage.path) / "originals" / svg_id[:2] / svg_id
    for neighbour in (png, text):
        (stored.parent / neighbour.name).write_bytes(neighbour.read_bytes())
    assert not is_green(pyvips.Image.new_from_file(str(stored)).flatten())  # the control

    response = await client.get(f"/fmt/png/{svg_id}")
    assert response.status == 200, await response.text()
    assert is_green(decode(await response.read()))


async def test_librsvg_never_fetches_over_http_even_from_a_file(tmp_path, svg_origin):
    """What the service relies on, pinned down: a libvips upgrade that changes it fails here."""
    found = references(svg_origin["port"], tmp_path, tmp_path)
    http_only = [element for kind, element in found.items() if kind.endswith("-http")]
    path = tmp_path / "drawing.svg"
    path.write_bytes(svg(*http_only))
    imaging.configure(allow_svg=True)
    try:
        assert is_green(pyvips.Image.new_from_file(str(path)))
        assert is_green(pyvips.Image.new_from_buffer(svg(*http_only), ""))
    finally:
        imaging.configure(allow_svg=False)
    assert svg_origin["hits"] == Counter()
