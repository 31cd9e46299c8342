"""A benchmarked server as one process group, whatever it forks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ProcessGroup:
    """A server in its own session (process group): started, polled until `ready()`, and
    stopped by the group id, so nothing it forked outlives the benchmark."""

    name = "server"
    base = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    def launch(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.log_path = self.workdir / f"{self.name}.log"
        with open(self.log_path, "wb") as output:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                argv, cwd=self.workdir, start_new_session=True, stdout=output,
                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            )  # fmt: skip

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                if ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def roots(self) -> list[int]:
        """Whose process trees count as this server's RSS and CPU."""
        return [self.pid]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
