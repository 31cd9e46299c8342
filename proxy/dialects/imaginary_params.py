"""imaginary's query parameters, read as imaginary reads them (its params.go): integers are
rounded absolute values, booleans are Go's ParseBool, colours are `R,G,B` decimals clamped to
255, unknown gravities are the centre. Values come from a query string or, in `/pipeline`,
from JSON (numbers and booleans as themselves)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

INTS = frozenset({
    "width", "height", "quality", "top", "left", "areawidth", "areaheight", "compression",
    "rotate", "margin", "factor", "dpi", "textwidth", "speed",
})  # fmt: skip
FLOATS = frozenset({"opacity", "sigma", "minampl"})
BOOLS = frozenset({
    "flip", "flop", "nocrop", "noprofile", "norotation", "noreplicate", "force", "embed",
    "stripmeta", "interlace", "palette",
})  # fmt: skip
STRINGS = frozenset({"text", "image", "font", "type", "aspectratio"})
COLOURS = frozenset({"color", "background"})
# Read as strings, mapped onto names (their own coercions in params.go).
NAMED = frozenset({"gravity", "extend", "colorspace", "operations"})
KNOWN = INTS | FLOATS | BOOLS | STRINGS | COLOURS | NAMED

GRAVITIES = {"north": "north", "south": "south", "east": "east", "west": "west",
             "smart": "smart"}  # fmt: skip
EXTENDS = ("white", "black", "copy", "background", "lastpixel")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class ParamError(ValueError):
    """A value imaginary itself refuses (400 'Error while processing parameters, …')."""


@dataclass(frozen=True)
class Params:
    """The coerced parameters; `given` holds every known name the request carried."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name, _ZERO.get(name))

    def given(self, name: str) -> bool:
        return name in self.values


def _zero(name: str) -> Any:
    if name in INTS:
        return 0
    if name in FLOATS:
        return 0.0
    if name in BOOLS:
        return False
    if name in COLOURS:
        return ()
    if name == "gravity":
        return "centre"
    if name == "extend":
        return "copy"  # buildParamsFromQuery's default
    if name == "operations":
        return []
    return ""


_ZERO = {name: _zero(name) for name in KNOWN}


def parse_float(text: str) -> float:
    if text == "":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise ParamError("invalid syntax") from None
    if math.isnan(value) or math.isinf(value):
        raise ParamError("invalid syntax")
    return abs(value)


def parse_int(text: str) -> int:
    return math.floor(parse_float(text) + 0.5)


def parse_bool(text: str) -> bool:
    if text == "":
        return False
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ParamError("invalid syntax")


def parse_colour(text: str) -> tuple[int, ...]:
    """`R,G,B` decimals; what is no number in 0–255 is 0 or clamped, as Go's ParseUint
    leaves it (params_test.go TestParseColor)."""
    if text == "":
        return ()
    out = []
    for part in text.split(","):
        part = part.strip(" ")
        out.append(min(int(part), 255) if part.isdigit() else 0)
    return tuple(out)


def parse_gravity(text: str) -> str:
    return GRAVITIES.get(text.strip().lower(), "centre")


def parse_extend(text: str) -> str:
    text = text.strip().lower()
    return text if text in EXTENDS else "mirror"


def _coerce(name: str, value: Any) -> Any:
    if isinstance(value, bool) and name not in BOOLS:
        raise ParamError("unsupported value")
    if name in INTS:
        if isinstance(value, int | float):
            return int(value)  # JSON numbers are truncated, as coerceTypeInt does
        if isinstance(value, str):
            return parse_int(value)
        raise ParamError("unsupported value")
    if name in FLOATS:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return parse_float(value)
        raise ParamError("unsupported value")
    if name in BOOLS:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return parse_bool(value)
        raise ParamError("unsupported value")
    if not isinstance(value, str):
        raise ParamError("unsupported value")
    if name in COLOURS:
        return parse_colour(value)
    if name == "gravity":
        return parse_gravity(value)
    if name == "extend":
        return parse_extend(value)
    if name == "colorspace":
        return "bw" if value == "bw" else "srgb"
    if name == "operations":
        return parse_operations(value)
    return value


def read(source: Mapping[str, Any]) -> Params:
    """Known parameters coerced; unknown ones skipped, as imaginary skips them."""
    values: dict[str, Any] = {}
    for name, value in source.items():
        if name not in KNOWN:
            continue
        try:
            values[name] = _coerce(name, value)
        except ParamError as exc:
            raise ParamError(
                f'error while processing parameter "{name}" with value "{value}", error: {exc}'
            ) from None
    return Params(values)


@dataclass(frozen=True)
class Step:
    """One `/pipeline` operation: its name, params, and whether a failure may be skipped."""

    name: str
    params: Mapping[str, Any]
    ignore_failure: bool = False


_STEP_KEYS = frozenset({"operation", "params", "ignore_failure"})


def parse_operations(text: str) -> list[Step]:
    """The `operations` JSON array; unknown keys are refused as Go's DisallowUnknownFields
    does. Fewer than two characters is no operation at all (params.go)."""
    if len(text) < 2:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ParamError(f"invalid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ParamError("expected a JSON array of operations")
    steps = []
    for item in data:
        if not isinstance(item, dict):
            raise ParamError("each operation must be a JSON object")
        unknown = set(item) - _STEP_KEYS
        if unknown:
            raise ParamError(f'json: unknown field "{sorted(unknown)[0]}"')
        name, params = item.get("operation", ""), item.get("params") or {}
        ignore = item.get("ignore_failure", False)
        if not isinstance(name, str) or not isinstance(params, dict):
            raise ParamError("'operation' must be a string and 'params' an object")
        if not isinstance(ignore, bool):
            raise ParamError("'ignore_failure' must be true or false")
        steps.append(Step(name, params, ignore))
    return steps
