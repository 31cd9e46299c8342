"""Run a native decoder on untrusted bytes in a child process with CPU, memory and time limits.

A decoder bug on hostile input (a crash, an endless loop, an allocation without bound) then
costs the one request that brought the bytes: the child dies, the caller gets a 422 (or a
504 when it ran out of wall-clock time), and the service carries on. Call it from a worker
thread (the render pool): it blocks until the child is done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from ..errors import GatewayTimeout, Unprocessable

# Exit status of a child whose decoder refused the bytes (its message is on stderr).
REFUSED = 2


@dataclass(frozen=True, slots=True)
class Limits:
    cpu_seconds: int = 10  # RLIMIT_CPU: SIGXCPU, then SIGKILL, past it
    memory_bytes: int = 1 << 30  # RLIMIT_AS of the child
    timeout: float = 20.0  # wall clock, for a child blocked without using CPU
    workers: int = 2  # children at once; more wait for a free slot


class Sandbox:
    """At most `limits.workers` decoder children at a time."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._slots = threading.BoundedSemaphore(self.limits.workers)

    def decode(self, decoder: str, data: bytes) -> bytes:
        """`decoder` ("package.module:function") maps the input bytes to output bytes."""
        limits = self.limits
        command = [
            sys.executable, "-s", "-m", "proxy.decoders.child", decoder,
            str(limits.cpu_seconds), str(limits.memory_bytes),
        ]  # fmt: skip
        with self._slots:
            child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_child_env(),
                start_new_session=True,
            )
            try:
                out, err = child.communicate(data, timeout=limits.timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                raise GatewayTimeout(
                    f"the decoder took longer than {limits.timeout:g} s on this image"
                ) from None
        if child.returncode == 0:
            return out
        if child.returncode == REFUSED:
            reason = err.decode("utf-8", "replace").strip().splitlines()
            raise Unprocessable(f"the image cannot be read: {reason[-1] if reason else 'corrupt'}")
        raise Unprocessable(f"the image cannot be read: the decoder {_death(child.returncode)}")


def _death(returncode: int) -> str:
    if returncode < 0:
        number = -returncode
        if number in (signal.SIGXCPU, signal.SIGKILL):
            return "ran out of CPU time"
        return f"crashed ({signal.Signals(number).name})"
    if returncode == 3:
        return "ran out of memory"
    return f"failed (exit status {returncode})"


def _child_env() -> dict[str, str]:
    """Nothing of the service's environment (tokens, keys) but where to find the decoders:
    the child imports modules from the paths this process does."""
    path = os.pathsep.join(p for p in sys.path if p)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": path}
