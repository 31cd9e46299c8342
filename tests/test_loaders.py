"""The Next.js loader and the Nuxt Image provider, run with Node, make proxy.links's URLs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, ensure_tool
from proxy import links

STATIC = REPO / "proxy" / "static" / "playground"
ID = "01351ef2539cca29aa8a6dc02f3332cb"
REMOTE = "https://example.com/photos/a.jpg"
BASE = "https://img.example.com"

RUNNER = """
import loader, { createLoader } from "./next-loader.js";
import { getImage } from "./nuxt-provider.js";
const cases = JSON.parse(process.argv[2]);
const out = cases.map(([kind, src, args, options]) => kind === "next"
  ? (options ? createLoader(options) : loader)({ src, ...args })
  : getImage(src, args).url);
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Runs the shipped files, as ES modules, on a list of cases; returns their URLs."""
    node = ensure_tool("node", "nodejs")
    work = tmp_path_factory.mktemp("loaders")
    for name in ("progimage-url.js", "next-loader.js", "nuxt-provider.js"):
        shutil.copy(STATIC / name, work / name)
    (work / "package.json").write_text('{"type": "module"}')
    (work / "run.js").write_text(RUNNER)

    def run(cases: list, env: dict[str, str] | None = None) -> list[str]:
        result = subprocess.run(
            [node, "run.js", json.dumps(cases)], capture_output=True, text=True, timeout=60,
            cwd=work, env={**os.environ, **(env or {})},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


def test_the_next_loader(run) -> None:
    cases = [
        ("next", ID, {"width": 640, "quality": 75}, None),
        ("next", "/" + ID, {"width": 1080}, None),
        ("next", REMOTE, {"width": 320, "quality": 50}, None),
        ("next", ID, {"width": 256, "quality": 90},
         {"base": BASE, "ops": {"grayscale": True, "fmt": "webp", "sharpen": 1}}),
    ]  # fmt: skip
    assert run(cases, {"NEXT_PUBLIC_PROGIMAGE_URL": BASE}) == [
        links.url(ID, base=BASE, resize="640x", q=75, fmt="auto"),
        links.url(ID, base=BASE, resize="1080x", fmt="auto"),
        links.url(REMOTE, base=BASE, resize="320x", q=50, fmt="auto"),
        links.url(ID, base=BASE, resize="256x", q=90, fmt="webp", grayscale=True, sharpen=1),
    ]
    # Without the variable the URLs are relative to the page's origin.
    assert run(cases[:1]) == [links.url(ID, resize="640x", q=75, fmt="auto")]


def test_the_nuxt_provider(run) -> None:
    base = {"baseURL": BASE + "/"}
    cases = [
        ("nuxt", ID, {**base, "modifiers": {"width": 300}}),
        ("nuxt", "/" + ID, {**base, "modifiers": {"height": 100, "format": "jpg"}}),
        ("nuxt", ID, {**base, "modifiers": {"width": 300, "height": 200, "quality": 60}}),
        ("nuxt", ID, {**base, "modifiers": {"width": 300, "height": 200, "fit": "contain",
                                            "background": "#FF0000", "format": "png"}}),
        ("nuxt", ID, {**base, "modifiers": {"width": 300, "height": 200, "fit": "fill"}}),
        ("nuxt", ID, {**base, "modifiers": {"width": 300, "height": 200, "fit": "inside"}}),
        ("nuxt", REMOTE, {"modifiers": {"width": 50, "format": "avif"}}),
    ]  # fmt: skip
    assert run([[kind, src, args, None] for kind, src, args in cases]) == [
        links.url(ID, base=BASE, resize="300x", fmt="auto"),
        links.url(ID, base=BASE, resize="x100", fmt="jpeg"),
        links.url(ID, base=BASE, fill="300x200", q=60, fmt="auto"),
        links.url(ID, base=BASE, pad="300x200", bg="ff0000", fmt="png"),
        links.url(ID, base=BASE, stretch="300x200", fmt="auto"),
        links.url(ID, base=BASE, resize="300x200", fmt="auto"),
        links.url(REMOTE, resize="50x", fmt="avif"),
    ]


def test_the_files_have_no_imports_but_the_url_helper() -> None:
    for name in ("next-loader.js", "nuxt-provider.js"):
        source = (STATIC / name).read_text()
        imports = [line for line in source.splitlines() if line.startswith("import ")]
        assert imports == ['import { imageUrl } from "./progimage-url.js";'], name
        assert Path(STATIC / name).stat().st_size < 3000


async def test_the_service_serves_them_beside_the_url_helper(client) -> None:
    for name in ("progimage-url.js", "next-loader.js", "nuxt-provider.js"):
        response = await client.get(f"/playground/{name}")
        assert response.status == 200
        assert response.content_type == "text/javascript"
        assert await response.read() == (STATIC / name).read_bytes()
