"""Write the operations table (proxy.ops.markdown_table) into README.md and the OpenAPI
document, so the documents follow the registry: `python scripts/sync_docs.py`.
tests/test_registry.py fails when either has drifted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy import ops  # noqa: E402

README = ROOT / "README.md"
OPENAPI = ROOT / "proxy" / "static" / "openapi.json"
BEGIN = "<!-- operations table: written by scripts/sync_docs.py from proxy/ops.py -->"
END = "<!-- end of operations table -->"
HEADER = "| operation | argument | meaning |"


def readme_with_table(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{ops.markdown_table()}\n{text[end:]}"


def description_with_table(text: str) -> str:
    start = text.index(HEADER)
    end = text.find("\n\n", start)
    return text[:start] + ops.markdown_table() + (text[end:] if end >= 0 else "")


def openapi_with_table(document: dict) -> dict:
    parameter = next(p for p in document["paths"]["/{path}"]["get"]["parameters"])
    parameter["description"] = description_with_table(parameter["description"])
    return document


def main() -> None:
    README.write_text(readme_with_table(README.read_text(encoding="utf-8")), encoding="utf-8")
    document = openapi_with_table(json.loads(OPENAPI.read_text(encoding="utf-8")))
    OPENAPI.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
