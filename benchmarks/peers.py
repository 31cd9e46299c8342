"""The peers users would otherwise pick, run by `make bench` beside the service in the same run.

- thumbor 7.8 (Pillow, JPEG draft-mode decoding) in its production shape: one single-process
  thumbor per core behind nginx `least_conn` (in `--processes` mode one forked worker often
  takes every keep-alive connection and the other core idles). File loader, no storage, no
  result storage, progressive JPEG (its default; BENCH_THUMBOR_PROGRESSIVE=0 makes it write
  baseline, as ProgImage does by default, for a like-for-like JPEG encode).
- ipx 3 (sharp, libvips with mozjpeg) on node:http, one Node process.

Each gets the same 64 byte-different copies of the benchmark photographs as the service (as
files named in the URL instead of uploads) and the same wrk rotation over them, so nobody
gains from a cache of its own or of libvips. Installs go under BENCH_DIR (the benchmark's
scratch folder), never into the repository: a venv with thumbor from PyPI, ipx from npm
(Node and npm from Debian when missing), nginx from Debian when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from process_group import ProcessGroup

THUMBOR_SPEC = "thumbor>=7.8,<8"
IPX_SPEC = "ipx@3"

# workload key -> (width, height, format, quality) as each peer spells the transform; the
# quality is the service's default for that format, so the peers encode to the same target.
TRANSFORMS = {
    "W1": (300, 200, "jpeg", 80),
    "W2": (300, 200, "webp", 80),
    "W3": (800, 600, "jpeg", 80),
    "W4": (300, 300, "webp", 80),
    "W7": (300, 200, "avif", 60),
}

# Node resolves `require("ipx")` from the script's folder: the script is written there.
IPX_SERVER = """\
"use strict";
// ipx's programmatic API on node:http, bound to loopback (ipx's own CLI binds all addresses).
const http = require("node:http");
const { createIPX, ipxFSStorage, createIPXNodeServer } = require("ipx");
const ipx = createIPX({ storage: ipxFSStorage({ dir: process.env.IPX_DIR }) });
const server = http.createServer(createIPXNodeServer(ipx));
server.keepAliveTimeout = 65000;
server.listen(Number(process.env.PORT), "127.0.0.1");
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
"""


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get install {' '.join(packages)}")
    subprocess.run(["apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True,
                   stdout=subprocess.DEVNULL, env=env)  # fmt: skip


def ensure_thumbor(root: Path) -> Path:
    venv = root / "venv-thumbor"
    binary = venv / "bin" / "thumbor"
    if not binary.exists():
        log(f"pip install {THUMBOR_SPEC} -> {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                        THUMBOR_SPEC], check=True)  # fmt: skip
    return binary


def ensure_ipx(root: Path) -> Path:
    folder = root / "node-ipx"
    if not (folder / "node_modules" / "ipx").is_dir():
        if not shutil.which("node") or not shutil.which("npm"):
            apt_install("nodejs", "npm")
        folder.mkdir(parents=True, exist_ok=True)
        log(f"npm install {IPX_SPEC} -> {folder}")
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix",
                        str(folder), IPX_SPEC], check=True)  # fmt: skip
    script = folder / "server.cjs"
    script.write_text(IPX_SERVER)
    return script


def ensure_nginx() -> str:
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        apt_install("nginx-light")
    return shutil.which("nginx") or "/usr/sbin/nginx"


def thumbor_path(key: str, name: str) -> str:
    width, height, fmt, quality = TRANSFORMS[key]
    return f"/unsafe/fit-in/{width}x{height}/filters:format({fmt}):quality({quality})/{name}"


def ipx_path(key: str, name: str) -> str:
    width, height, fmt, quality = TRANSFORMS[key]
    return f"/s_{width}x{height},fit_inside,q_{quality},f_{fmt}/{name}"


class Peer(ProcessGroup):
    """A peer server started by a shell line (several processes for thumbor's shape)."""

    def __init__(self, name: str, script: str, port: int, workdir: Path, env: dict) -> None:
        super().__init__(workdir)
        self.name = name
        self.script = script
        self.base = f"http://127.0.0.1:{port}"
        self.env = env

    def start(self, probe: str) -> Peer:
        self.launch(["bash", "-c", self.script], self.env)

        def ready() -> bool:
            with urllib.request.urlopen(self.base + probe, timeout=5) as r:
                return r.status == 200

        self.wait_ready(ready, 90)
        return self


def thumbor_backends(root: Path, workdir: Path, images: Path, ports: list[int]) -> str:
    """The shell line starting one single-process thumbor per port, reading `images`."""
    binary = ensure_thumbor(root)
    conf = workdir / f"thumbor-{images.name}.conf"
    conf.write_text(
        "LOADER = 'thumbor.loaders.file_loader'\n"
        f"FILE_LOADER_ROOT_PATH = {str(images)!r}\n"
        "STORAGE = 'thumbor.storages.no_storage'\n"
        "RESULT_STORAGE = None\n"
        "QUALITY = 80\n"
        f"PROGRESSIVE_JPEG = {os.environ.get('BENCH_THUMBOR_PROGRESSIVE', '1') != '0'}\n"
        "ALLOW_UNSAFE_URL = True\n"
    )
    return " & ".join(f"{binary} -i 127.0.0.1 -p {p} -c {conf} --processes 1 -l warning"
                      for p in ports)  # fmt: skip


def thumbor_lb(root: Path, workdir: Path, images: Path, ports: list[int], ncpu: int) -> Peer:
    nginx = ensure_nginx()
    front, backs = ports[0], ports[1 : 1 + ncpu]
    starts = thumbor_backends(root, workdir, images, backs)
    prefix = workdir / "nginx-thumbor"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    upstream = " ".join(f"server 127.0.0.1:{p};" for p in backs)
    (prefix / "nginx.conf").write_text(f"""
worker_processes 1;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}; proxy_temp_path {prefix}; fastcgi_temp_path {prefix};
  uwsgi_temp_path {prefix}; scgi_temp_path {prefix};
  upstream thumbors {{ least_conn; {upstream} keepalive 32; }}
  server {{
    listen 127.0.0.1:{front};
    location / {{
      proxy_pass http://thumbors;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    script = f"{starts} & {nginx} -p {prefix} -c {prefix}/nginx.conf -g 'daemon off;' & wait"
    return Peer("thumbor", script, front, workdir, {})


def ipx(root: Path, workdir: Path, images: Path, port: int) -> Peer:
    script = ensure_ipx(root)
    return Peer("ipx", f"exec node {script}", port, workdir,
                {"IPX_DIR": str(images), "PORT": str(port)})  # fmt: skip


def copies(images: dict[str, Path], folder: Path, count: int, tagged) -> dict[str, list[str]]:
    """`count` byte-different copies of each photograph as files: name lists per image key."""
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, list[str]] = {}
    for key in ("large", "medium", "alpha"):
        data = images[key].read_bytes()
        suffix = images[key].suffix
        names[key] = []
        for i in range(count):
            name = f"{key}-{i:02d}{suffix}"
            path = folder / name
            if not path.exists():
                path.write_bytes(tagged(data, f"progimage-bench copy {i}"))
            names[key].append(name)
    return names


def versions(root: Path) -> dict[str, str]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    probe = "import thumbor, PIL; print(thumbor.__version__, PIL.__version__)"
    thumbor = run(str(root / "venv-thumbor" / "bin" / "python"), "-c", probe).split()
    package = root / "node-ipx" / "node_modules" / "ipx" / "package.json"
    sharp = root / "node-ipx" / "node_modules" / "sharp" / "package.json"
    out = {}
    if len(thumbor) == 2:
        out["thumbor"] = f"thumbor {thumbor[0]}, Pillow {thumbor[1]}"
    if package.exists():
        out["ipx"] = f"ipx {json.loads(package.read_text())['version']}"
        if sharp.exists():
            out["ipx"] += f", sharp {json.loads(sharp.read_text())['version']}"
    return out
