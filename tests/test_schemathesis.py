"""Schemathesis against a real `progimage serve`: no request the document describes may get a 500.

Driven through the `schemathesis run` CLI (schemathesis 4), with a fixed seed and a bounded
number of examples per operation, so the run is reproducible and takes seconds. Only
`not_a_server_error` is checked: fuzzed derived paths are mostly (correctly) 400s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.e2e

DOCUMENT = REPO / "proxy" / "static" / "openapi.json"
MAX_EXAMPLES = 20
SEED = int(os.environ.get("PROGIMAGE_SCHEMATHESIS_SEED", "1"))


def _schemathesis() -> list[str]:
    script = Path(sys.executable).parent / "schemathesis"
    return [str(script)] if script.exists() else [sys.executable, "-m", "schemathesis.cli"]


def test_no_documented_request_gets_a_server_error(start_server, tmp_path: Path) -> None:
    # Remote sources are limited to a host that cannot resolve, so the run never leaves the
    # machine: fuzzed `{"url": …}` bodies and `https://…` paths get 403, not a real fetch
    # (whose 502/504 would count as server errors too).
    server = start_server(
        sources={"allowed_hosts": ["images.example.invalid"]}, limits={"fetch_timeout": 2}
    )
    command = [
        *_schemathesis(), "run", str(DOCUMENT), "--url", server.url,
        "--checks", "not_a_server_error",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--generation-database", "none", "--request-timeout", "10",
        # One worker: concurrent hypothesis workers trip a CPython 3.11 ast.parse bug.
        "--workers", "1", "--no-color",
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert run.returncode == 0, (
        f"schemathesis found failures (exit {run.returncode}):\n{run.stdout[-8000:]}\n"
        f"{run.stderr[-2000:]}\n--- server log (tail) ---\n{server.log()[-4000:]}"
    )
    assert "ST101" not in run.stdout


def test_malformed_multipart_part_headers_are_a_client_error(start_server) -> None:
    """Found by the run above: a part whose header block is garbage must be 400, not 500."""
    server = start_server()
    boundary = "812466ff3403d9711fd4fe7ccfbfaf84"
    body = f"--{boundary}\r\n[[['N'], {{}}]]--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{server.url}/images", data=body, method="PUT",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    assert status == 400
