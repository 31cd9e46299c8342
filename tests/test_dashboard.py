"""The Grafana dashboard (grafana/progimage.json) asks only for what the service exports."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO
from proxy.client import Client

DASHBOARD = REPO / "grafana" / "progimage.json"
# Labels Prometheus itself puts on every scraped series.
SCRAPE_LABELS = {"instance", "job"}


def queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    found += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    return found


def test_the_dashboard_is_well_formed() -> None:
    board = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in board["panels"]:
        assert panel["title"] and panel["description"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
    # Balanced brackets and braces in every PromQL expression.
    for expr in queries():
        for left, right in ("()", "{}", "[]"):
            assert expr.count(left) == expr.count(right), expr


def test_the_readme_says_what_each_panel_shows() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("### The Grafana dashboard", 1)[1].split("\n## ", 1)[0]
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert f"**{panel['title']}**" in section, panel["title"]


@pytest.mark.e2e
def test_every_query_names_a_metric_and_labels_the_service_exports(
    start_server, jpeg_bytes
) -> None:
    server = start_server(sources={"allow_private_networks": True})
    # Traffic that makes every labelled series appear: a render (result cache miss, then
    # hit), a remote fetch (the source cache and the fetch histogram).
    with Client(server.url) as images:
        stored = images.upload(jpeg_bytes)
        for _ in range(2):
            images.get(stored.id, resize="50x")
        images.get(f"{server.url}/images/{stored.id}", resize="40x")
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    assert len(queries()) >= 10
    for expr in queries():
        metrics = set(re.findall(r"\bprogimage_[a-z_]+\b", expr))
        assert metrics, f"no metric in {expr}"
        for metric in metrics:
            assert metric in labels, f"{metric} (in {expr}) is not exported"
        named = set()
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            named |= {label.strip() for label in group.split(",")}
        for selector in re.findall(r"\{([^}]*)\}", expr):
            named |= set(re.findall(r"(\w+)\s*[=!]~?", selector))
        for label in named - SCRAPE_LABELS:
            assert any(label in labels[m] for m in metrics), f"label {label} of {expr}"
