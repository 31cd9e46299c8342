"""The playground's JS URL helper writes operations in the registry's order.

proxy/static/playground/progimage-url.js keeps its own copy of the canonical order (it runs
in the browser, without the server): a registry entry that it does not list would silently
be dropped from every URL the playground composes, so the copy is checked here.
"""

from __future__ import annotations

import json
import re

from conftest import REPO
from proxy import ops

HELPER = REPO / "proxy" / "static" / "playground" / "progimage-url.js"


def _array(name: str) -> list[str]:
    """The array literal `const NAME = [...]` (exported or not) of the helper, parsed."""
    source = HELPER.read_text(encoding="utf-8")
    pattern = rf"^(?:export\s+)?const\s+{name}\s*=\s*(\[[^\]]*\])\s*;"
    found = re.findall(pattern, source, flags=re.MULTILINE)
    assert len(found) == 1, f"expected one `const {name} = [...]` in {HELPER.name}"
    literal = re.sub(r",\s*\]$", "]", found[0])  # a trailing comma is fine in JS, not in JSON
    return json.loads(literal)


def test_order_is_the_registry_order() -> None:
    order = _array("ORDER")
    assert order == [op.name for op in ops.REGISTRY]
    aliases = {alias for op in ops.REGISTRY for alias in op.aliases}
    assert aliases and not aliases & set(order)


def test_modes_are_the_resize_modes() -> None:
    assert _array("MODES") == list(ops.RESIZE_MODES)
