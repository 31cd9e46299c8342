"""What we know about an original: its header facts and a 64-bit perceptual hash."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyvips

from . import imaging, inputs, ops, placeholders, previews
from .errors import Unprocessable
from .imaging import Source

SIMILAR_DISTANCE = 10
_HASH_SIZE = 32  # DCT input side; the 8x8 lowest frequencies of it become the 64 bits


@dataclass(frozen=True, slots=True)
class Facts:
    format: str
    width: int
    height: int
    bands: int
    has_alpha: bool
    pages: int
    orientation: int
    duration: float | None  # seconds, of a video; None otherwise
    phash: str  # 16 hex digits
    # Placeholders (placeholders.py); None on records stored before they were computed.
    blurhash: str | None = None
    thumbhash: str | None = None
    dominant_color: str | None = None

    @property
    def mime(self) -> str:
        return ops.MIME_TYPES[self.format]

    def as_dict(self) -> dict[str, object]:
        facts = {**asdict(self), "mime": self.mime}
        if facts["duration"] is None:
            del facts["duration"]
        return facts


def describe(source: Source, *, allow_svg: bool, max_pixels: int) -> Facts:
    """Check the header against the limits and decode the whole image once for its hash.

    The full decode is what proves the file is not truncated or corrupt before it is stored.
    """
    return examine(source, allow_svg=allow_svg, max_pixels=max_pixels, preview=False)[0]


def examine(
    source: Source, *, allow_svg: bool, max_pixels: int, preview: bool = True
) -> tuple[Facts, bytes | None]:
    """`describe`, plus the encoded preview of a large original (see previews.py) when asked.

    The hash of a large original is taken from its preview's pixels whether or not the
    preview is kept, so a stored image and the same bytes behind a URL hash alike.
    """
    # A PDF page is drawn to fit the preview's box: its thumbnails then come from the preview.
    edge = previews.EDGE
    source, header = inputs.open_source(
        imaging.loadable(source), allow_svg=allow_svg, max_pixels=max_pixels, box=(edge, edge)
    )
    kept = None
    try:
        if previews.eligible(header):
            copy = previews.working_copy(source, header)
            small = copy.thumbnail_image(_HASH_SIZE, height=_HASH_SIZE, size="force")
            kept = previews.encode(copy) if preview else None
            marks = placeholders.compute(copy)
        else:
            small = _thumbnail(source, imaging.fail_on(header.format))
            marks = placeholders.compute(
                imaging.to_srgb(
                    imaging.thumbnail(
                        source, placeholders.EDGE, height=placeholders.EDGE,
                        fail_on=imaging.fail_on(header.format),
                    )
                )
            )  # fmt: skip
        phash = perceptual_hash(small)
    except pyvips.Error as exc:
        raise Unprocessable(f"the image cannot be decoded: {imaging.first_line(exc)}") from exc
    return Facts(**asdict(header), phash=phash, **marks.as_dict()), kept


def _thumbnail(source: Source, fail_on: str) -> pyvips.Image:
    return imaging.thumbnail(source, _HASH_SIZE, height=_HASH_SIZE, size="force", fail_on=fail_on)


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


_DCT = _dct_matrix(_HASH_SIZE)


def perceptual_hash(image: pyvips.Image) -> str:
    """pHash: DCT of a 32x32 grey image, 8x8 low frequencies compared with their median."""
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    grey = image.colourspace("b-w")[0].cast("float")
    pixels = np.ndarray(
        buffer=grey.write_to_memory(), dtype=np.float32, shape=(grey.height, grey.width)
    ).astype(np.float64)
    coefficients = (_DCT @ pixels @ _DCT.T)[:8, :8].flatten()
    # The DC term is the mean brightness: leaving it out makes the hash ignore exposure.
    median = np.median(coefficients[1:])
    bits = coefficients > median
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:016x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()
