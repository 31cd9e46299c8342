"""Decoders for tests/test_sandbox.py: one that works, and the three ways a native one fails."""

from __future__ import annotations

import os


def to_png(data: bytes) -> bytes:
    import pyvips

    return pyvips.Image.new_from_buffer(data, "").pngsave_buffer()


def crash(data: bytes) -> bytes:
    os.abort()


def spin(data: bytes) -> bytes:
    while True:
        pass


def sleep(data: bytes) -> bytes:
    import time

    time.sleep(3600)
    return b""


def hoard(data: bytes) -> bytes:
    kept = []
    while True:
        kept.append(bytearray(64 << 20))


def refuse(data: bytes) -> bytes:
    raise ValueError("not a file this decoder reads")
