"""Argument grammars: how one URL segment becomes a value, and how a value is written back.

Each kind is a pure pair, `parse(text, limit) -> value` and `format(value) -> text`, with
`format(parse(t))` canonical and `parse(format(v)) == v`. `limit` is the server's
`limits.max_output_dimension`, for arguments measured in output pixels. A bad argument raises
ValueError with a message that says what was expected; the URL codec names the segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote, unquote

_UINT_RE = re.compile(r"^[0-9]{1,9}$")
_DECIMAL_RE = re.compile(r"^[0-9]{1,5}(\.[0-9]{1,6})?$")
# A fraction is told from a pixel count by its decimal point: `1` is one pixel, `1.0` all.
_FRACTION_RE = re.compile(r"^(0?\.[0-9]{1,6}|[01]\.[0-9]{0,6})$")
_BOX_RE = re.compile(r"^([0-9]{1,9})?x([0-9]{1,9})?$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]{6}$")


def number_text(value: float) -> str:
    """`2.0` -> `2`, `1.5` -> `1.5`: the canonical spelling of a decimal argument."""
    return str(int(value)) if value == int(value) else repr(value)


def fraction_text(value: float) -> str:
    """Always with a decimal point (and never in exponent form), so that it reads back as a
    fraction, never as pixels."""
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


class Fit(NamedTuple):
    """The resize family's one value: which mode, and the box it was given."""

    mode: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class Flag:
    """An operation without argument: present or not."""

    describe: str = "–"


@dataclass(frozen=True)
class Integer:
    low: int
    high: int
    signed: bool = False

    @property
    def describe(self) -> str:
        return f"{self.low}–{self.high}"

    def parse(self, text: str, limit: int) -> int:
        digits = len(str(max(abs(self.low), abs(self.high))))
        sign = "-?" if self.signed else ""
        if not re.fullmatch(f"{sign}[0-9]{{1,{digits}}}", text) or not (
            self.low <= int(text) <= self.high
        ):
            raise ValueError(f"expected a whole number from {self.low} to {self.high}")
        return int(text)

    def format(self, value: int) -> str:
        return str(value)


@dataclass(frozen=True)
class Decimal:
    low: float
    high: float
    words: tuple[str, ...] = ()  # literal alternatives such as `auto`

    @property
    def describe(self) -> str:
        return "|".join([f"{number_text(self.low)}–{number_text(self.high)}", *self.words])

    def parse(self, text: str, limit: int) -> float | str:
        if text in self.words:
            return text
        if not _DECIMAL_RE.match(text) or not self.low <= float(text) <= self.high:
            extra = "".join(f" or {w}" for w in self.words)
            raise ValueError(
                f"expected a number from {number_text(self.low)} to {number_text(self.high)}"
                + extra
            )
        return float(text)

    def format(self, value: float | str) -> str:
        return value if isinstance(value, str) else number_text(value)


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)
    lower: bool = False

    @property
    def describe(self) -> str:
        return "|".join(self.values)

    def parse(self, text: str, limit: int) -> str:
        if self.lower:
            text = text.lower()
        text = self.aliases.get(text, text)
        if text not in self.values:
            raise ValueError(f"expected one of {', '.join(self.values)}")
        return text

    def format(self, value: str) -> str:
        return value


@dataclass(frozen=True)
class Box:
    """`WxH`, and for `resize` also `Wx` and `xH`, in output pixels up to the limit."""

    mode: str
    partial: bool = False

    @property
    def describe(self) -> str:
        return "WxH, Wx or xH" if self.partial else "WxH"

    def parse(self, text: str, limit: int) -> Fit:
        match = _BOX_RE.match(text)
        if not match or not (match[1] or match[2]):
            raise ValueError("expected WxH, Wx or xH")
        width = int(match[1]) if match[1] else None
        height = int(match[2]) if match[2] else None
        if not self.partial and (width is None or height is None):
            raise ValueError(f"{self.mode} needs both width and height (WxH)")
        for value in (width, height):
            if value is not None and not 1 <= value <= limit:
                raise ValueError(f"dimensions must be between 1 and {limit}")
        return Fit(self.mode, width, height)

    def format(self, value: Fit) -> str:
        return f"{value.width or ''}x{value.height or ''}"


@dataclass(frozen=True)
class Colour:
    describe: str = "RRGGBB"

    def parse(self, text: str, limit: int) -> str:
        if not _HEX_RE.match(text):
            raise ValueError("expected a colour as RRGGBB hex")
        return text.lower()

    def format(self, value: str) -> str:
        return value


def _pixels_or_fraction(text: str) -> int | float | None:
    if _UINT_RE.match(text):
        return int(text)
    if _FRACTION_RE.match(text) and float(text) <= 1.0:
        value = float(text)
        return 0 if value == 0 else value  # no offset is no offset, in either unit
    return None


@dataclass(frozen=True)
class Region:
    """`x,y,w,h`: each whole source pixels, or a fraction 0–1 of the upright source."""

    describe: str = "x,y,w,h (pixels, or fractions such as 0.25)"

    def parse(self, text: str, limit: int) -> tuple[int | float, ...]:
        values = [_pixels_or_fraction(v) for v in text.split(",")]
        if len(values) != 4 or any(v is None for v in values):
            raise ValueError(
                "expected x,y,w,h as four whole numbers or fractions from 0 to 1 (0.25)"
            )
        if any(v <= 0 for v in values[2:]):  # type: ignore[operator]
            raise ValueError("width and height must be more than 0")
        return tuple(values)  # type: ignore[arg-type]

    def format(self, value: tuple[int | float, ...]) -> str:
        return ",".join(fraction_text(v) if isinstance(v, float) else str(v) for v in value)


@dataclass(frozen=True)
class Anchor:
    """A gravity name, or a focal point `X,Y` as two fractions of the upright source."""

    names: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @property
    def describe(self) -> str:
        return "|".join(self.names) + "|X,Y (fractions, e.g. 0.3,0.7)"

    def parse(self, text: str, limit: int) -> str | tuple[float, float]:
        if "," in text:
            parts = text.split(",")
            if len(parts) == 2 and all(_FRACTION_RE.match(p) and float(p) <= 1 for p in parts):
                return float(parts[0]), float(parts[1])
            raise ValueError("expected a focal point X,Y as two fractions from 0.0 to 1.0")
        name = self.aliases.get(text, text)
        if name not in self.names:
            raise ValueError(f"expected one of {', '.join(self.names)}, or X,Y")
        return name

    def format(self, value: str | tuple[float, float]) -> str:
        if isinstance(value, tuple):
            return ",".join(fraction_text(v) for v in value)
        return value


@dataclass(frozen=True)
class Sides:
    """`T,R,B,L`, or one value for all four, in output pixels up to the limit."""

    describe: str = "T,R,B,L or one value"

    def parse(self, text: str, limit: int) -> tuple[int, int, int, int]:
        parts = text.split(",")
        if len(parts) not in (1, 4) or not all(_UINT_RE.match(p) for p in parts):
            raise ValueError("expected T,R,B,L or one value, in whole pixels")
        values = [int(p) for p in parts]
        if any(v > limit for v in values):
            raise ValueError(f"each side must be at most {limit} pixels")
        top, right, bottom, left = values * 4 if len(values) == 1 else values
        return top, right, bottom, left

    def format(self, value: tuple[int, int, int, int]) -> str:
        if len(set(value)) == 1:
            return str(value[0])
        return ",".join(str(v) for v in value)


@dataclass(frozen=True)
class Radius:
    """Corner radius in output pixels, or `max` for the ellipse inscribed in the output."""

    high: int = 4096

    @property
    def describe(self) -> str:
        return f"1–{self.high}|max"

    def parse(self, text: str, limit: int) -> int | str:
        if text == "max":
            return text
        if not _UINT_RE.match(text) or not 1 <= int(text) <= self.high:
            raise ValueError(f"expected a radius from 1 to {self.high} pixels, or max")
        return int(text)

    def format(self, value: int | str) -> str:
        return str(value)


@dataclass(frozen=True)
class Name:
    pattern: str
    describe: str

    def parse(self, text: str, limit: int) -> str:
        if not re.fullmatch(self.pattern, text):
            raise ValueError(f"expected {self.describe}")
        return text

    def format(self, value: str) -> str:
        return value


def names(values: Iterable[str]) -> str:
    return ", ".join(values)


_GRAVITY_NAMES = (
    "centre", "north", "south", "east", "west",
    "northeast", "northwest", "southeast", "southwest",
)  # fmt: skip
_POSITIONS = (*_GRAVITY_NAMES, "tile")
_UNIT_RE = re.compile(r"^(0|1|0?\.[0-9]{1,4}|[01]\.[0-9]{0,4})$")


def _unit(text: str, low: float, what: str) -> float:
    if not _UNIT_RE.match(text) or not low <= float(text) <= 1.0:
        raise ValueError(f"{what} must be a number from {number_text(low)} to 1")
    return float(text)


def _placement(fields: list[str]) -> tuple[str, float]:
    """The position and opacity fields that both overlays share, after their first."""
    position = fields[1] if len(fields) > 1 else "southeast"
    position = {"center": "centre"}.get(position, position)
    if position not in _POSITIONS:
        raise ValueError(f"position must be one of {', '.join(_POSITIONS)}")
    opacity = _unit(fields[2], 0.0, "opacity") if len(fields) > 2 else 1.0
    return position, opacity


def _trimmed(fields: list[str], defaults: tuple[str, ...]) -> list[str]:
    """Trailing fields at their defaults are dropped: the shorter URL is the same image."""
    while len(fields) > 1 and fields[-1] == defaults[len(fields) - 2]:
        fields.pop()
    return fields


@dataclass(frozen=True)
class Overlay:
    """`{id}[,{position}[,{opacity}[,{size}]]]`: a stored image over the output."""

    describe: str = "{id}[,position[,opacity[,size]]]"

    def parse(self, text: str, limit: int) -> tuple[str, str, float, float]:
        fields = text.split(",")
        if len(fields) > 4 or not re.fullmatch(r"[0-9a-f]{32}", fields[0]):
            raise ValueError("expected {id}[,position[,opacity[,size]]] with a stored image id")
        position, opacity = _placement(fields)
        size = _unit(fields[3], 0.01, "size") if len(fields) > 3 else 0.25
        return fields[0], position, opacity, size

    def format(self, value: tuple[str, str, float, float]) -> str:
        image, position, opacity, size = value
        fields = [image, position, number_text(opacity), number_text(size)]
        return ",".join(_trimmed(fields, ("southeast", "1", "0.25")))


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Caption:
    """`{text}[,{position}[,{opacity}[,{size}[,{RRGGBB}]]]]`, the text percent-encoded UTF-8
    (a literal comma is %2C). Takes the segment still encoded: the commas that separate the
    fields are told from the text's own only there."""

    raw = True
    describe: str = "{text}[,position[,opacity[,size[,RRGGBB]]]]"

    def parse(self, text: str, limit: int) -> tuple[str, str, float, float, str]:
        fields = text.split(",")
        if len(fields) > 5:
            raise ValueError("expected text[,position[,opacity[,size[,RRGGBB]]]] (a comma is %2C)")
        try:
            words = unquote(fields[0], errors="strict")
        except UnicodeDecodeError:
            raise ValueError("the text is not percent-encoded UTF-8") from None
        if not 1 <= len(words) <= 200:
            raise ValueError("the text must have 1 to 200 characters")
        if _CONTROL_RE.search(words):
            raise ValueError("the text may not hold control or direction characters")
        position, opacity = _placement(fields)
        if len(fields) > 3:
            if not _UNIT_RE.match(fields[3]) or not 0.01 <= float(fields[3]) <= 0.5:
                raise ValueError("size must be a number from 0.01 to 0.5")
            size = float(fields[3])
        else:
            size = 0.05
        colour = fields[4].lower() if len(fields) > 4 else "ffffff"
        if not _HEX_RE.match(colour):
            raise ValueError("the colour must be RRGGBB hex")
        return words, position, opacity, size, colour

    def format(self, value: tuple[str, str, float, float, str]) -> str:
        words, position, opacity, size, colour = value
        fields = [quote(words, safe=""), position, number_text(opacity), number_text(size), colour]
        return ",".join(_trimmed(fields, ("southeast", "1", "0.05", "ffffff")))
