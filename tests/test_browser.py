"""In a real browser: the playground, srcset, AVIF negotiation and CORS, in headless Chromium.

Debian's `chromium` driven by Playwright for Python (never `playwright install`: the browser
comes from apt). Pages on "other origins" are small aiohttp servers on other ports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright, expect

from conftest import IMAGES, REPO, ServerProcess
from proxy import links, playground

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHOTO = IMAGES / "photo.jpg"  # 512 x 341
ARTIFACTS = REPO / "tests" / "artifacts"
README_SCREENSHOT = REPO / "docs" / "playground.png"
TOKEN = "playground-token"
# What a script on a page gets back from fetch(): the readable headers, or the rejection.
FETCH = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    await response.arrayBuffer();
    return {status: response.status, timing: response.headers.get("server-timing"),
            etag: response.headers.get("etag"), location: response.headers.get("location")};
  } catch (error) {
    return {error: String(error)};
  }
}"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing: these tests never skip."""
    if not Path(CHROMIUM).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            if shutil.which(command[0]) is None:
                pytest.fail(f"chromium is missing and there is no {command[0]}", pytrace=False)
            run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
            if run.returncode != 0:
                pytest.fail(
                    f"installing chromium failed: {' '.join(command)} exited {run.returncode}\n"
                    f"{run.stdout[-2000:]}\n{run.stderr[-2000:]}",
                    pytrace=False,
                )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"apt-get installed chromium but {CHROMIUM} does not exist", pytrace=False)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


async def _site(aiohttp_server, html: str) -> str:
    """A page served by its own aiohttp server: another origin than the service. Its URL."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


def _origin(url: str) -> str:
    return url.rstrip("/")


def _upload(server: ServerProcess, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"{server.url}/images", data=PHOTO.read_bytes(), method="PUT", headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["id"]


# --- the playground

# Given to the JS helper in an order of their own: it writes them as proxy.links does.
NEWER_OPERATIONS = {
    "download": "a.webp", "meta": "keep", "fmt": "webp", "lossless": True, "round": "max",
    "pixelate": 4, "hue": 180, "brightness": -20, "padding": 10, "dpr": "auto",
    "gravity": "0.3,0.7", "fill": "300x200", "rotate": 45, "trim": 10,
    "crop": "0.25,0,0.5,1.0", "page": 2, "preset": "card",
}  # fmt: skip


async def test_playground_uploads_composes_and_previews(start_server, browser) -> None:
    server = start_server(auth={"tokens": [TOKEN]})
    context = await browser.new_context(viewport={"width": 1360, "height": 940})
    page = await context.new_page()
    refused: list[str] = []  # CSP violations and script errors
    page.on("console", lambda m: refused.append(m.text) if "Refused to" in m.text else None)
    page.on("pageerror", lambda error: refused.append(str(error)))
    response = await page.goto(f"{server.url}/")
    assert response is not None and response.headers["content-security-policy"] == playground.CSP
    await expect(page.locator("#page-label")).to_have_text("no images yet")

    # write tokens are on: without one the upload is refused and the page says why
    await page.set_input_files("#file", PHOTO)
    await expect(page.locator("#upload-status")).to_contain_text("401")
    await page.fill("#token", TOKEN)
    await page.set_input_files("#file", PHOTO)
    await expect(page.locator("#upload-status")).to_contain_text("Stored")
    await expect(page.locator("#gallery button")).to_have_count(1)
    await expect(page.locator("#gallery button img")).to_have_js_property("complete", True)
    preview = page.locator("#preview-img")
    # a fresh form asks for one operation only: none of the others is set by default
    fresh = re.compile(r"^/resize/400x/[0-9a-f]{32}$")
    await expect(preview).to_have_attribute("data-url", fresh)

    # compose: fill 200x150 at dpr 2, grayscale, WebP
    await page.select_option("select[name=mode]", "fill")
    await page.fill("input[name=width]", "200")
    await page.fill("input[name=height]", "150")
    await page.select_option("select[name=dpr]", "2")
    await page.check("input[name=grayscale]")
    await page.select_option("select[name=fmt]", "webp")
    wanted = re.compile(r"^/fill/200x150/dpr/2/grayscale/fmt/webp/[0-9a-f]{32}$")
    await expect(preview).to_have_attribute("data-url", wanted)
    await expect(preview).to_have_attribute("data-state", "loaded")
    assert await preview.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [400, 300]
    await expect(page.locator("#stat-type")).to_have_text("image/webp")
    await expect(page.locator("#stat-dims")).to_have_text("400 × 300")
    await expect(page.locator("#stat-timing")).to_contain_text("dur=")
    await expect(page.locator("#stat-etag")).to_contain_text('"')
    snippet = await page.locator("#snippet").input_value()
    image = (await preview.get_attribute("data-url") or "").rsplit("/", 1)[1]
    assert f"{server.url}/fill/200x150/grayscale/fmt/webp/{image} 200w" in snippet
    assert " 400w" in snippet and 'sizes="' in snippet

    # a bad argument shows the server's problem detail instead of an image
    await page.fill("input[name=blur]", "500")
    await expect(page.locator("#preview-error")).to_contain_text("blur/500")
    await page.fill("input[name=blur]", "")
    await expect(page.locator("#preview-error")).to_be_hidden()
    await expect(preview).to_have_attribute("data-state", "loaded")

    # newer operations: padding, hue and round corners into PNG, written in registry order
    await page.fill("input[name=padding]", "10")
    await page.fill("input[name=hue]", "180")
    await page.fill("input[name=round]", "max")
    await page.select_option("select[name=fmt]", "png")
    composed = "/fill/200x150/dpr/2/padding/10/hue/180/grayscale/round/max/fmt/png/"
    await expect(page.locator("#url")).to_have_text(f"{server.url}{composed}{image}")
    await expect(preview).to_have_attribute("data-url", f"{composed}{image}")
    await expect(preview).to_have_attribute("data-state", "loaded")
    await expect(page.locator("#stat-type")).to_have_text("image/png")
    await expect(page.locator("#stat-dims")).to_have_text("420 × 320")

    # the page's JS helper builds what proxy.links builds
    from_js = await page.evaluate(
        """async ([id, newer]) => {
            const m = await import("./playground/progimage-url.js");
            return [m.imageUrl(id, {fmt: "webp", q: 70, resize: "300x200"}),
                    m.srcset(id, [320, 640], {fmt: "webp", fill: "300x200"}, "https://cdn.example"),
                    m.imageUrl(id, newer)];
        }""",
        [image, NEWER_OPERATIONS],
    )
    assert from_js == [
        links.url(image, resize="300x200", q=70, fmt="webp"),
        links.srcset(image, [320, 640], base="https://cdn.example", fill="300x200", fmt="webp"),
        links.url(image, **NEWER_OPERATIONS),
    ]
    assert not refused

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "playground.png", full_page=True)
    assert README_SCREENSHOT.stat().st_size <= 300 * 1024
    await context.close()


# --- responsive images


async def test_srcset_gets_the_width_for_the_device_pixel_ratio(
    start_server, browser, aiohttp_server
) -> None:
    server = start_server()
    image = _upload(server)
    candidates = links.srcset(image, [128, 256, 512], base=server.url, fmt="png")
    site = await _site(
        aiohttp_server,
        f'<!DOCTYPE html><img id="pic" alt="" src="{links.url(image, base=server.url)}" '
        f'srcset="{candidates}" sizes="128px">',
    )
    for scale, width in [(1, 128), (2, 256), (3, 512)]:
        context = await browser.new_context(device_scale_factor=scale)
        page = await context.new_page()
        await page.goto(site)
        pic = page.locator("#pic")
        await expect(pic).to_have_js_property("complete", True)
        current, natural = await pic.evaluate("img => [img.currentSrc, img.naturalWidth]")
        assert current == links.url(image, base=server.url, resize=f"{width}x", fmt="png")
        # naturalWidth is density-corrected (CSS pixels); the file itself has `width` pixels
        assert natural == 128
        pixels = await page.evaluate(
            "async (src) => { const i = new Image(); i.src = src; await i.decode();"
            " return i.naturalWidth; }",
            current,
        )
        assert pixels == width, f"device_scale_factor={scale}"
        await context.close()


async def test_chromium_gets_avif_from_fmt_auto(start_server, browser, aiohttp_server) -> None:
    server = start_server()
    image = _upload(server)
    src = links.url(image, base=server.url, resize="160x", fmt="auto")
    site = await _site(aiohttp_server, f'<!DOCTYPE html><img id="pic" alt="" src="{src}">')
    context = await browser.new_context()
    page = await context.new_page()
    responses = []
    page.on("response", lambda r: responses.append(r) if r.url == src else None)
    await page.goto(site)
    pic = page.locator("#pic")
    await expect(pic).to_have_js_property("complete", True)
    assert await pic.evaluate("img => img.naturalWidth") == 160  # Chromium decoded it
    [response] = responses
    sent = await response.request.all_headers()
    assert "image/avif" in sent["accept"]
    assert response.headers["content-type"] == "image/avif"
    assert "Accept" in response.headers["vary"]
    await context.close()


# --- CORS


async def test_cross_origin_fetch_only_from_the_allowed_origin(
    start_server, browser, aiohttp_server
) -> None:
    html = "<!DOCTYPE html><title>a site</title>"
    allowed, other = await _site(aiohttp_server, html), await _site(aiohttp_server, html)
    server = start_server(cors={"allow_origins": [_origin(allowed)]}, auth={"tokens": [TOKEN]})
    image = _upload(server, TOKEN)
    derived = links.url(image, base=server.url, resize="64x", fmt="webp")
    put = {"method": "PUT", "headers": {"Authorization": f"Bearer {TOKEN}"}}
    context = await browser.new_context()
    page = await context.new_page()

    await page.goto(allowed)
    got = await page.evaluate(FETCH, [derived, {}])
    assert got["status"] == 200, got
    assert "dur=" in got["timing"] and got["etag"].startswith('"')
    # a write with a token: preflighted (Authorization), then allowed, Location readable
    uploaded = await page.evaluate(
        "async ([url, init]) => (" + FETCH + ")([url, {...init, body: new Blob(['x'])}])",
        [f"{server.url}/images", put],
    )
    assert uploaded["status"] == 415, uploaded  # it reached the service: not an image
    server_timing = await page.evaluate(
        "(url) => performance.getEntriesByName(url)[0].serverTiming.map((t) => t.name)",
        derived,
    )
    assert server_timing, "Timing-Allow-Origin lets the page see the Server-Timing entries"

    await page.goto(other)
    refused = await page.evaluate(FETCH, [derived, {}])
    assert "Failed to fetch" in refused.get("error", ""), refused
    refused = await page.evaluate(FETCH, [f"{server.url}/images", put])
    assert "Failed to fetch" in refused.get("error", ""), refused
    await context.close()
