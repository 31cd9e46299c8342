"""The README's curl examples, run exactly as written against a real server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, decode, ensure_tool

pytestmark = pytest.mark.e2e


def readme_commands() -> list[tuple[str, str | None]]:
    """(command, expected output or None) for each command of the README's "Try it" block.

    A `# ` line right after a command is its expected output; other comments describe.
    """
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Try it.*?```sh\n(.*?)```", text, re.S)[1]
    pairs: list[tuple[str, str | None]] = []
    pending = ""
    after_command = False
    for line in block.splitlines():
        if pending:
            pending = pending[:-1] + " " + line.strip()
            if not pending.endswith("\\"):
                pairs.append((pending, None))
                pending, after_command = "", True
            continue
        if line.startswith("# ") and after_command:
            pairs[-1] = (pairs[-1][0], line[2:])
        elif line.strip() and not line.startswith("#"):
            if line.endswith("\\"):
                pending = line.strip()
                continue
            pairs.append((line.strip(), None))
            after_command = True
            continue
        after_command = False
    return pairs


def test_readme_has_examples() -> None:
    assert len(readme_commands()) >= 10


def test_readme_curl_examples_work_as_written(start_server, tmp_path) -> None:
    ensure_tool("curl", "curl")
    server = start_server()
    shutil.copytree(REPO / "tests" / "images", tmp_path / "tests" / "images")
    # `./photos` of the first command: three of those images, one in a subdirectory.
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    for name in ("photo.jpg", "alpha.png", "2024/portrait-exif6.jpg"):
        shutil.copy(REPO / "tests" / "images" / Path(name).name, tmp_path / "photos" / name)
    # As after `make run`: the venv's `progimage` on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("PROGIMAGE_")}
    for command, expected in readme_commands():
        # Only the port differs from the README: the test server listens on a free one.
        runnable = command.replace("http://127.0.0.1:8080", server.url)
        if runnable.startswith("progimage upload"):
            runnable += f" --server {server.url}"
        result = subprocess.run(
            ["bash", "-c", runnable], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, (command, result.stderr)
        if expected is None:
            continue
        if expected.startswith("{"):
            got = json.loads(result.stdout)
            want_text = expected.replace("...", "0")
            want = json.loads(want_text)
            for key, value in want.items():
                if "..." in expected and f'"{key}": ...' in expected:
                    continue
                assert got[key] == value, (command, key)
        else:
            assert result.stdout.strip() == expected, command
    for name, size in {"thumb.webp": (300, 200), "square.jpg": (64, 64)}.items():
        image = decode((tmp_path / name).read_bytes())
        assert (image.width, image.height) == size
    assert decode((tmp_path / "photo.png").read_bytes()).width == 512
    assert decode((tmp_path / "small.webp").read_bytes()).width == 200
    uploaded = json.loads((tmp_path / "photos.json").read_text())
    assert sorted(uploaded) == ["photos/2024/portrait-exif6.jpg", "photos/alpha.png",
                                "photos/photo.jpg"]  # fmt: skip
    assert uploaded["photos/photo.jpg"] == "01351ef2539cca29aa8a6dc02f3332cb"


def test_readme_shell_and_python_signing_recipes_match_the_service() -> None:
    from proxy import signing

    ensure_tool("openssl", "openssl")
    text = (REPO / "README.md").read_text()
    shell = re.search(r"# From a shell, without ProgImage:\n(.*?)```", text, re.S)[1]
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=30)
    path = "/resize/300x300/fmt/webp/01351ef2539cca29aa8a6dc02f3332cb"
    assert result.stdout.strip() == signing.signed_path(path, "secret")
    python = re.search(r"From Python:\n\n```python\n(.*?)```", text, re.S)[1]
    namespace: dict = {}
    exec(python, namespace)
    assert namespace["sign"](path, "secret") == signing.signed_path(path, "secret")


def readme_examples() -> list[tuple[str, str]]:
    """(path, what it gives) for each row of the README's "Operations by example" table."""
    block = re.search(r"### Operations by example\n(.*?)\n\n(?!\|)", README_TEXT, re.S)[1]
    return re.findall(r"^\| `(/[^`]+)` \| (.*) \|$", block, re.M)


README_TEXT = (REPO / "README.md").read_text()
AVATAR = "/fill/128x128/gravity/north/fmt/webp"  # as in config.yaml's comment


def test_readme_preset_example_is_the_config_comment() -> None:
    assert f'avatar: "{AVATAR}"' in (REPO / "config.yaml").read_text()


def _call(url: str, method: str = "GET", body: bytes | None = None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_readme_operation_examples_render_as_described(start_server) -> None:
    from conftest import animated_gif, gradient, with_alpha

    server = start_server(
        presets={"definitions": {"avatar": AVATAR}}, overlays={"allow_unsigned_text": True}
    )
    ids = {}
    for name, data in (
        ("{id}", (REPO / "tests" / "images" / "photo.jpg").read_bytes()),
        ("{gif}", animated_gif(frames=3)),
        ("{logo}", with_alpha(gradient(200, 80)).pngsave_buffer()),
    ):
        status, body = _call(f"{server.url}/images", "PUT", data)
        assert status == 201, body
        ids[name] = json.loads(body)["id"]
    examples = readme_examples()
    assert len(examples) >= 30
    for path, says in examples:
        if not any(name in path for name in ids):
            continue
        url = server.url + path
        for name, image_id in ids.items():
            url = url.replace(name, image_id)
        status, body = _call(url, headers={"Sec-CH-DPR": "2"})
        assert status == 200, (path, body[:300])
        image = decode(body)
        sizes = re.findall(r"(\d+)×(\d+)", says)
        if sizes:
            assert (image.width, image.height) == tuple(map(int, sizes[-1])), path
