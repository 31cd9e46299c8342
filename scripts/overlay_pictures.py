"""Render the README's overlay pictures (docs/watermark.jpg, docs/text.jpg) with the pipeline.

    .venv/bin/python scripts/overlay_pictures.py

The photograph is tests/images/photo.jpg; the logo is drawn here, with the font that ships with
the project, so the pictures are made from nothing but the repository.
"""

from __future__ import annotations

from pathlib import Path

import pyvips

from proxy import config, overlays, pipeline, urls
from proxy.renderer import quality_table

REPO = Path(__file__).resolve().parent.parent
PICTURES = {
    "watermark.jpg": "/resize/480x/watermark/{logo},southeast,0.85,0.35",
    "watermark-tile.jpg": "/resize/480x/watermark/{logo},tile,0.35,0.2",
    "text.jpg": "/resize/480x/text/%C2%A9%20Jane%20Doe%2C%202026,southwest,1,0.06",
    "text-tile.jpg": "/resize/480x/text/PROOF,tile,0.45,0.07,ff3030",
}


def logo() -> bytes:
    """White "ProgImage" on a translucent dark pill, with alpha around it."""
    words = pyvips.Image.text(
        "ProgImage", font="Noto Sans Bold 64px", fontfile=overlays.font_file()
    )
    pad = 28
    width, height = words.width + 2 * pad, words.height + 2 * pad
    xy = pyvips.Image.xyz(width, height)
    radius = height / 2
    # The pill's distance field: from the segment joining the centres of its two round ends.
    cx = (xy[0] < radius).ifthenelse(
        radius, (xy[0] > width - radius).ifthenelse(width - radius, xy[0])
    )
    dist = ((xy[0] - cx) ** 2 + (xy[1] - radius) ** 2) ** 0.5
    pill = ((radius - dist).clamp(min=0, max=1) * 170).cast("uchar")
    ink = words.embed(pad, pad, width, height)
    alpha = (pill.cast("int") + ink.cast("int")).clamp(max=255).cast("uchar")
    rgb = (ink.cast("float") / 255 * 235 + 20).cast("uchar")
    image = rgb.bandjoin([rgb, rgb, alpha]).copy(interpretation="srgb")
    return image.pngsave_buffer()


def main() -> None:
    overlays.setup_fonts()  # as the service does: the shipped font only
    settings = config.Config()
    photo = (REPO / "tests" / "images" / "photo.jpg").read_bytes()
    mark = pipeline.Overlay("0" * 32, logo())
    for name, path in PICTURES.items():
        options = urls.parse_operations(path.replace("{logo}", mark.identity), urls.Grammar())
        result = pipeline.render(
            photo,
            options,
            requested_format="jpeg",
            quality=quality_table(settings),
            max_pixels=settings.limits.max_pixels,
            overlay=mark,
        )
        (REPO / "docs" / name).write_bytes(result.body)
        print(name, result.width, result.height, len(result.body))


if __name__ == "__main__":
    main()
