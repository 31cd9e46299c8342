"""The registry is the one description of the vocabulary: everything else follows it."""

from __future__ import annotations

import importlib.util
import json
import re

from conftest import REPO
from proxy import arguments, links, ops, steps

_spec = importlib.util.spec_from_file_location("sync_docs", REPO / "scripts" / "sync_docs.py")
sync_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_docs)

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_readme_table_is_the_registry() -> None:
    assert sync_docs.readme_with_table(README) == README, "run python scripts/sync_docs.py"


def test_openapi_table_is_the_registry() -> None:
    document = json.loads(sync_docs.OPENAPI.read_text(encoding="utf-8"))
    expected = sync_docs.openapi_with_table(json.loads(json.dumps(document)))
    assert expected == document, "run python scripts/sync_docs.py"
    parameter = document["paths"]["/{path}"]["get"]["parameters"][0]
    assert ops.markdown_table() in parameter["description"]


def test_every_operation_has_a_readme_example() -> None:
    for op in ops.REGISTRY:
        assert re.search(r"`[^`\n]*/" + op.name + r"(/|`)", README), op.name


def test_steps_and_registry_name_each_other() -> None:
    named = {op.step for op in ops.REGISTRY if op.step}
    assert named == set(steps.STEPS)
    # The pipeline runs them in registry order, after the conversion to sRGB.
    order = [steps.STEPS[name] for name in dict.fromkeys(op.step for op in ops.REGISTRY if op.step)]
    assert [steps.srgb, *order] == steps.ORDER


def test_names_are_unique_and_fields_are_shared_only_by_a_family() -> None:
    names = [name for op in ops.REGISTRY for name in op.names]
    assert len(names) == len(set(names))
    by_field: dict[str, set] = {}
    for op in ops.REGISTRY:
        if op.field:
            by_field.setdefault(op.field, set()).add(op.family or op.name)
    assert all(len(owners) == 1 for owners in by_field.values())


def test_links_and_the_service_description_follow_the_registry() -> None:
    assert set(links.ARGUMENTS) == {op.name for op in ops.REGISTRY if op.arity}
    assert all(isinstance(op.arg, arguments.Flag) == (op.arity == 0) for op in ops.REGISTRY)
