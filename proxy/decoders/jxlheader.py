"""The size of a JPEG XL image from its first bytes, without decoding it (ISO/IEC 18181-1
SizeHeader and the orientation of ImageMetadata), so the pixel limit is checked first."""

from __future__ import annotations

import struct

CODESTREAM = b"\xff\x0a"
CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}
_SIDE = ((9, 1), (13, 1), (18, 1), (30, 1))  # U32 distributions of a side: Bits(n) + 1


class _Bits:
    """Least significant bit first, as the codestream is written."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "little")
        self.pos = 0
        self.end = len(data) * 8

    def read(self, n: int) -> int:
        if self.pos + n > self.end:
            raise ValueError("the JPEG XL header is truncated")
        out = (self.value >> self.pos) & ((1 << n) - 1)
        self.pos += n
        return out

    def side(self) -> int:
        bits, offset = _SIDE[self.read(2)]
        return self.read(bits) + offset


def codestream(data: bytes) -> bytes:
    """The start of the codestream, bare or inside the ISO BMFF container."""
    if data.startswith(CODESTREAM):
        return data
    if not data.startswith(CONTAINER):
        raise ValueError("not a JPEG XL file")
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        end = len(data) if size == 0 else pos + size
        if kind == b"jxlc":
            return data[pos + head : end]
        if kind == b"jxlp":
            return data[pos + head + 4 : end]
        if size and size < head:
            break
        pos = end
    raise ValueError("the JPEG XL container holds no codestream")


def size(data: bytes) -> tuple[int, int]:
    """(width, height), upright."""
    stream = codestream(data)
    if not stream.startswith(CODESTREAM):
        raise ValueError("the JPEG XL codestream has no signature")
    bits = _Bits(stream[2:64])
    small = bits.read(1)
    height = (bits.read(5) + 1) * 8 if small else bits.side()
    ratio = bits.read(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (bits.read(5) + 1) * 8 if small else bits.side()
    orientation = 1
    if not bits.read(1) and bits.read(1):  # not all_default, extra_fields
        orientation = bits.read(3) + 1
    return (height, width) if orientation > 4 else (width, height)
