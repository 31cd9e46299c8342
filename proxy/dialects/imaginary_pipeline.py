"""imaginary's `/pipeline`: its operations, each read as its endpoint reads its query, composed
into one set of native fields. Native operations run in one fixed order (SPEC §9.6), so a
sequence is accepted where it follows that order and sets each operation once; otherwise the
400 names the step that cannot follow the ones before it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import ops
from .common import Unsupported
from .imaginary_ops import DIALECT, ENDPOINTS, Missing, endpoint, native, needs_size
from .imaginary_params import ParamError, Step, read

MAX_PIPELINE = 10  # image.go: "Maximum allowed pipeline operations exceeded"
# image.go's OperationsMap: the names /pipeline accepts (watermarkImage in camel case there).
PIPELINE_NAMES = {
    **{name: name for name in ENDPOINTS if name != "watermarkimage"},
    "watermarkImage": "watermarkimage",
}


def _rank(name: str) -> int:
    if name == "flop":
        name = "flip"  # they commute: either order gives the same pixels
    return next(i for i, op in enumerate(ops.REGISTRY) if op.field == name)


# Settings read with the geometry or by the encoder: they have no place in the order.
_UNORDERED = frozenset({"quality", "format", "meta", "palette", "bg", "gravity", "enlarge"})


@dataclass
class Composed:
    """Native fields gathered step by step, with who set each (for the 400s)."""

    fields: dict[str, Any]
    setters: dict[str, tuple[int, str]]
    last: tuple[int, int, str] | None = None  # rank, step number, step name


def compose(steps: list[Step], size: Callable[[int], tuple[int, int] | None]) -> dict[str, Any]:
    """One set of native fields from imaginary's operations, or a 400 naming the step that
    cannot follow the ones before it. `size(i)` is the source size for step i, known for
    the first step only (a later step would need the size of the image in between)."""
    if not steps:
        raise Missing("Missing or invalid pipeline operations JSON")
    if len(steps) > MAX_PIPELINE:
        raise Missing("Maximum allowed pipeline operations exceeded")
    out = Composed({}, {})
    for number, step in enumerate(steps, 1):
        name = PIPELINE_NAMES.get(step.name)
        if name is None:
            raise Missing(f"Unsupported operation name: {step.name}")
        try:
            fields = _step_fields(number, name, step, size)
        except (Missing, ParamError, Unsupported):
            if step.ignore_failure:
                continue
            raise
        _merge(out, number, step.name, fields)
    return out.fields


def _step_fields(
    number: int, name: str, step: Step, size: Callable[[int], tuple[int, int] | None]
) -> dict[str, Any]:
    b, fields = endpoint(name, read(step.params))
    if needs_size(b):
        known = size(number)
        if known is None:
            raise Unsupported(
                DIALECT,
                f"pipeline step {number} ({step.name})",
                "it needs the size of the image the steps before it make; put it first",
            )
        return {**native(b, known), **fields}
    return {**native(b, None), **fields}


def _merge(out: Composed, number: int, name: str, fields: dict[str, Any]) -> None:
    label = f"pipeline step {number} ({name})"
    for key, value in fields.items():
        if key in out.fields and out.fields[key] != value:
            first = out.setters[key]
            raise Unsupported(
                DIALECT,
                label,
                f"step {first[0]} ({first[1]}) already sets "
                f"'{ops.FIELDS[key].name}'; ProgImage applies each operation once",
            )
    ordered = [k for k in fields if k not in _UNORDERED]
    if ordered and out.last is not None:
        low = min(ordered, key=_rank)
        if _rank(low) < out.last[0] and low not in out.fields:
            raise Unsupported(
                DIALECT,
                label,
                f"ProgImage applies '{ops.FIELDS[low].name}' before what "
                f"step {out.last[1]} ({out.last[2]}) does",
            )
    for key, value in fields.items():
        out.fields[key] = value
        out.setters.setdefault(key, (number, name))
    if ordered:
        high = max(_rank(k) for k in ordered)
        if out.last is None or high >= out.last[0]:
            out.last = (high, number, name)
