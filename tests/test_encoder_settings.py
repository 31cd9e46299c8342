"""output.effort: the encoders' CPU-for-bytes knob (JPEG, WebP, AVIF, JPEG XL), from config
to the bytes."""

from __future__ import annotations

import pytest

from conftest import decode, gradient
from proxy import imaging
from proxy.config import ConfigError, EffortConfig, from_mapping, load


def test_effort_defaults_favour_speed_for_avif() -> None:
    assert from_mapping({}).output.effort == EffortConfig(webp=4, avif=0)


def test_effort_is_read_from_file_and_environment() -> None:
    env = {"PROGIMAGE_OUTPUT__EFFORT__WEBP": "6"}
    cfg = from_mapping({"output": {"effort": {"avif": 5}}}, env)
    assert cfg.output.effort == EffortConfig(webp=6, avif=5)


@pytest.mark.parametrize(
    ("effort", "key"),
    [({"avif": 10}, "output.effort.avif"), ({"webp": -1}, "output.effort.webp"),
     ({"webp": 7}, "output.effort.webp"), ({"jpeg": 3}, "output.effort.jpeg"),
     ({"jpeg": -1}, "output.effort.jpeg")],
)  # fmt: skip
def test_effort_out_of_range_is_refused(effort: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        from_mapping({"output": {"effort": effort}})


@pytest.mark.parametrize("fmt", ["avif", "webp"])
def test_effort_reaches_the_encoder(fmt: str) -> None:
    # Noise has detail an encoder can spend effort on; a gradient alone may not tell.
    image = gradient(256, 192).add(pyvips_noise(256, 192)).cast("uchar")
    fast = imaging.encode(image, fmt, 60, effort=0)
    slow = imaging.encode(image, fmt, 60, effort=5)
    assert fast != slow
    for body in (fast, slow):
        assert (decode(body).width, decode(body).height) == (256, 192)


def _frame_markers(body: bytes) -> set[int]:
    """The start-of-frame markers of a JPEG: 0xC0/0xC1 baseline, 0xC2 progressive."""
    found, pos = set(), 2
    while pos + 4 <= len(body) and body[pos] == 0xFF:
        marker, length = body[pos + 1], int.from_bytes(body[pos + 2 : pos + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            found.add(marker)
        if marker == 0xDA:  # the scan data follows: no more headers to read
            break
        pos += 2 + length
    return found


def test_jpeg_is_baseline_by_default_and_progressive_from_effort_1() -> None:
    image = gradient(320, 240).add(pyvips_noise(320, 240)).cast("uchar")
    assert from_mapping({}).output.effort.jpeg == 0
    baseline = imaging.encode(image, "jpeg", 80)
    progressive = imaging.encode(image, "jpeg", 80, effort=1)
    trellis = imaging.encode(image, "jpeg", 80, effort=2)
    assert _frame_markers(baseline) <= {0xC0, 0xC1} and _frame_markers(baseline)
    assert _frame_markers(progressive) == {0xC2} == _frame_markers(trellis)
    # progressive is the same coefficients in another order: the same pixels, fewer bytes
    assert (decode(baseline) - decode(progressive)).abs().max() == 0
    assert len(progressive) < len(baseline)
    assert len(trellis) < len(progressive)


def pyvips_noise(width: int, height: int):
    import pyvips

    return pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)


async def upload(client, data: bytes) -> str:
    response = await client.put("/images", data=data)
    assert response.status in (200, 201), await response.text()  # the apps share a store
    return (await response.json())["id"]


async def test_configured_effort_changes_the_bytes_and_the_etag(app_client) -> None:
    data = gradient(640, 480).add(pyvips_noise(640, 480)).cast("uchar").jpegsave_buffer(Q=92)
    answers = []
    for effort in (0, 6):
        client = await app_client(output={"effort": {"avif": effort}})
        image_id = await upload(client, data)
        response = await client.get(f"/resize/200x150/fmt/avif/{image_id}")
        assert response.status == 200, await response.text()
        assert response.content_type == "image/avif"
        body = await response.read()
        assert (decode(body).width, decode(body).height) == (200, 150)
        answers.append((body, response.headers["ETag"]))
    (fast, fast_tag), (slow, slow_tag) = answers
    assert fast != slow
    # A cache that revalidates with the old ETag must not be told its copy is current.
    assert fast_tag != slow_tag


async def test_quality_default_is_part_of_the_etag(app_client, jpeg_bytes) -> None:
    tags = []
    for quality in (50, 90):
        client = await app_client(output={"quality": {"jpeg": quality}})
        image_id = await upload(client, jpeg_bytes)
        response = await client.get(f"/resize/100x75/{image_id}")
        assert response.status == 200
        tags.append(response.headers["ETag"])
    assert tags[0] != tags[1]


def _av1_chroma(body: bytes) -> tuple[int, int, int]:
    """(seq_profile, chroma_subsampling_x, chroma_subsampling_y) from an AVIF's av1C box."""
    at = body.index(b"av1C") + 4
    profile = body[at + 1] >> 5
    flags = body[at + 2]
    return profile, (flags >> 3) & 1, (flags >> 2) & 1


def test_chroma_defaults_to_full_resolution_and_is_checked() -> None:
    assert from_mapping({}).output.chroma.avif == "4:4:4"
    assert from_mapping({"output": {"chroma": {"avif": "4:2:0"}}}).output.chroma.avif == "4:2:0"
    with pytest.raises(ConfigError, match="output.chroma.avif"):
        from_mapping({"output": {"chroma": {"avif": "4:2:2"}}})


async def test_configured_chroma_reaches_the_avif_and_its_etag(app_client) -> None:
    import pyvips

    # One-pixel columns of red and blue: colour detail that 4:2:0 halves, 4:4:4 keeps.
    red_blue = pyvips.Image.black(2, 1).new_from_image([0, 0, 255]).copy()
    stripes = red_blue.draw_rect([255, 0, 0], 0, 0, 1, 1).replicate(120, 240)
    data = stripes.pngsave_buffer()
    answers = {}
    for chroma in ("4:4:4", "4:2:0"):
        config = {"chroma": {"avif": chroma}} if chroma != "4:4:4" else {}
        client = await app_client(output=config)
        image_id = await upload(client, data)
        response = await client.get(f"/fmt/avif/q/80/{image_id}")
        assert response.status == 200, await response.text()
        body = await response.read()
        image = decode(body)
        assert (image.width, image.height) == (240, 240)
        # mean distance from the true colours (red in even columns, blue in odd ones)
        error = (image.cast("float") - stripes.cast("float")).abs().avg()
        answers[chroma] = (_av1_chroma(body), error, response.headers["ETag"])
    assert answers["4:4:4"][0] == (1, 0, 0)  # High profile, no subsampling
    assert answers["4:2:0"][0] == (0, 1, 1)  # Main profile, both halved
    assert answers["4:4:4"][1] < 10 < answers["4:2:0"][1]
    assert answers["4:4:4"][2] != answers["4:2:0"][2]


@pytest.mark.parametrize("written", ["avif: 4:2:0", "avif: '4:2:0'", 'avif: "4:2:0"'])
def test_chroma_is_read_as_written_in_yaml(tmp_path, written: str) -> None:
    # YAML 1.1 reads an unquoted 4:2:0 as the base-60 integer 14520.
    path = tmp_path / "config.yaml"
    path.write_text(f"output:\n  chroma:\n    {written}\n")
    assert load(path, env={}).output.chroma.avif == "4:2:0"


@pytest.mark.parametrize("value", ["4:2:0", "4:4:4", "auto"])
def test_chroma_is_read_from_the_environment(value: str) -> None:
    cfg = from_mapping({}, {"PROGIMAGE_OUTPUT__CHROMA__AVIF": value})
    assert cfg.output.chroma.avif == value


def test_chroma_auto_is_libvips_rule_full_from_quality_90() -> None:
    image = gradient(64, 48).add(pyvips_noise(64, 48)).cast("uchar")
    assert _av1_chroma(imaging.encode(image, "avif", 60, chroma="auto")) == (0, 1, 1)
    assert _av1_chroma(imaging.encode(image, "avif", 95, chroma="auto")) == (1, 0, 0)
    assert _av1_chroma(imaging.encode(image, "avif", 95, chroma="4:2:0")) == (0, 1, 1)
    assert _av1_chroma(imaging.encode(image, "avif", 60)) == (1, 0, 0)  # the default
