"""Decoders for tests/test_sandbox.py: one that works, and the three ways a native one fails."""

from __future__ import annotations

import os


def to_png(data: bytes, **options: object) -> bytes:
    import pyvips

    return pyvips.Image.new_from_buffer(data, "").pngsave_buffer()


def crash(data: bytes, **options: object) -> bytes:
    os.abort()


def spin(data: bytes, **options: object) -> bytes:
    while True:
        pass


def sleep(data: bytes, **options: object) -> bytes:
    import time

    time.sleep(3600)
    return b""


def hoard(data: bytes, **options: object) -> bytes:
    kept = []
    while True:
        kept.append(bytearray(64 << 20))


def refuse(data: bytes, **options: object) -> bytes:
    raise ValueError("not a file this decoder reads")
