"""Run a native decoder on untrusted bytes in a child process with CPU, memory and time limits.

A decoder bug on hostile input (a crash, an endless loop, an allocation without bound) then
costs the one request that brought the bytes: the child dies, the caller gets a 422 (or a
504 when it ran out of wall-clock time), and the service carries on. Call it from a worker
thread (the render pool): it blocks until the child is done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

from ..errors import BadRequest, GatewayTimeout, Unprocessable
from . import ASKED_WRONG, OUT_OF_MEMORY, REFUSED


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
        return self.run(decoder, data)[1]

    def run(self, decoder: str, data: bytes, **options: object) -> tuple[dict, bytes]:
        """The decoder's facts and output for `data`; `options` are its keyword arguments
        (JSON values)."""
        limits = self.limits
        command = [
            sys.executable, "-s", "-m", "proxy.decoders.child", decoder,
            str(limits.cpu_seconds), str(limits.memory_bytes), json.dumps(options),
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
        reason = err.decode("utf-8", "replace").strip().splitlines()
        if child.returncode == 0:
            facts, _, body = out.partition(b"\n")
            return json.loads(facts), body
        if child.returncode == ASKED_WRONG:
            raise BadRequest(reason[-1] if reason else "the file does not hold what was asked for")
        if child.returncode == REFUSED:
            raise Unprocessable(f"the image cannot be read: {reason[-1] if reason else 'corrupt'}")
        raise Unprocessable(f"the image cannot be read: the decoder {_death(child.returncode)}")


def _death(returncode: int) -> str:
    if returncode < 0:
        number = -returncode
        if number in (signal.SIGXCPU, signal.SIGKILL):
            return "ran out of CPU time"
        return f"crashed ({signal.Signals(number).name})"
    if returncode == OUT_OF_MEMORY:
        return "ran out of memory"
    return f"failed (exit status {returncode})"


def _child_env() -> dict[str, str]:
    """Nothing of the service's environment (tokens, keys) but where to find the decoders:
    the child imports modules from the paths this process does."""
    path = os.pathsep.join(p for p in sys.path if p)
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": path}
