"""The vocabulary of derived images: the Options value and the range of every operation."""

from __future__ import annotations

from dataclasses import dataclass

RESIZE_MODES = ("resize", "fill", "thumbnail", "pad", "stretch")
GRAVITIES = (
    "centre", "north", "south", "east", "west",
    "northeast", "northwest", "southeast", "southwest", "smart", "entropy",
)  # fmt: skip
FORMATS = ("jpeg", "png", "webp", "avif", "gif", "tiff")
FORMAT_ALIASES = {"jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff"}
ANIMATED_FORMATS = frozenset({"gif", "webp"})
ALPHA_FORMATS = frozenset({"png", "webp", "avif", "gif", "tiff"})
# Formats every current browser displays; anything else is converted when no format is asked for.
BROWSER_FORMATS = frozenset({"jpeg", "png", "webp", "avif", "gif"})
MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "avif": "image/avif",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "heic": "image/heic",
    "svg": "image/svg+xml",
}
ROTATIONS = (90, 180, 270)
DPR_RANGE = (1.0, 4.0)
BLUR_RANGE = (0.3, 100.0)
SHARPEN_RANGE = (0.5, 10.0)
QUALITY_RANGE = (1, 100)
DEFAULT_BG = "ffffff"


def normalise_format(name: str) -> str | None:
    """`jpg` -> `jpeg`; None for names that are not output formats."""
    name = name.lower()
    name = FORMAT_ALIASES.get(name, name)
    return name if name in FORMATS else None


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a derived-image URL asks for, already validated and in canonical form.

    Fields that would not change the output (a default gravity, `enlarge` without a resize,
    `bg/ffffff`) are stored as their defaults, so equal images have equal Options.
    """

    crop: tuple[int, int, int, int] | None = None
    rotate: int = 0
    flip: bool = False
    flop: bool = False
    mode: str | None = None
    width: int | None = None
    height: int | None = None
    enlarge: bool = False
    gravity: str | None = None
    dpr: float = 1.0
    blur: float | None = None
    sharpen: float | None = None
    grayscale: bool = False
    bg: str | None = None
    quality: int | None = None
    format: str | None = None
    info: bool = False
    expires: int | None = None

    @property
    def box(self) -> tuple[int | None, int | None]:
        """The resize box in output pixels, with `dpr` applied."""
        return _scaled(self.width, self.dpr), _scaled(self.height, self.dpr)

    @property
    def effective_gravity(self) -> str:
        if self.gravity:
            return self.gravity
        return "smart" if self.mode == "thumbnail" else "centre"

    @property
    def background(self) -> str:
        return self.bg or DEFAULT_BG


def _scaled(value: int | None, dpr: float) -> int | None:
    if value is None:
        return None
    return max(1, round(value * dpr))
