"""The README's before/after of `thumbnail` with `smart` and with `face`: renders of
tests/images/astronaut.jpg written to docs/ (tests/test_faces.py checks they are current).

    .venv/bin/python scripts/faces_pictures.py
"""

from __future__ import annotations

from pathlib import Path

from proxy import pipeline, urls

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "tests" / "images" / "astronaut.jpg"
PICTURES = {
    "docs/thumbnail-smart.jpg": "/thumbnail/400x100/gravity/smart/",
    "docs/thumbnail-face.jpg": "/thumbnail/400x100/gravity/face/",
}


def render(path: str) -> bytes:
    options = urls.parse_operations(path)
    quality = {"jpeg": 80, "webp": 80, "avif": 60}
    result = pipeline.render(
        SOURCE, options, requested_format="jpeg", quality=quality, max_pixels=10**8
    )
    return result.body


if __name__ == "__main__":
    for name, path in PICTURES.items():
        (REPO / name).write_bytes(render(path))
        print(name, path)
