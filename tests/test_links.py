"""proxy.links: canonical and signed URLs, srcset strings, and `progimage url`."""

from __future__ import annotations

import pytest

from proxy import cli, links, ops, signing, urls
from proxy.links import srcset, url

ID = "9f86d081884c7d659a2feaa0c55ad015"


@pytest.mark.parametrize(
    ("operations", "expected"),
    [
        ({}, f"/{ID}"),
        ({"resize": "300x200", "fmt": "webp"}, f"/resize/300x200/fmt/webp/{ID}"),
        # canonical order and arguments, whatever order the keywords come in
        ({"fmt": "jpg", "q": 70, "crop": (0, 0, 10, 10)}, f"/crop/0,0,10,10/q/70/fmt/jpeg/{ID}"),
        ({"fill": (300, 200), "gravity": "center"}, f"/fill/300x200/{ID}"),
        ({"resize": (300, None), "dpr": 2.0}, f"/resize/300x/dpr/2/{ID}"),
        ({"grayscale": True, "flip": False, "mirror": True}, f"/flop/grayscale/{ID}"),
        ({"blur": 1.5, "bg": "FF0000", "pad": "10x10"}, f"/pad/10x10/blur/1.5/bg/ff0000/{ID}"),
        ({"q": None}, f"/{ID}"),
    ],
)
def test_url_is_canonical(operations: dict, expected: str) -> None:
    assert url(ID, **operations) == expected


def test_url_round_trips_through_the_codec() -> None:
    built = url(ID, thumbnail="64x64", rotate=90, sharpen=1, fmt="auto")
    assert urls.build(*urls.parse(built)) == built


def test_url_with_a_base() -> None:
    assert url(ID, base="https://img.example.com/", fmt="png") == (
        f"https://img.example.com/fmt/png/{ID}"
    )


def test_signed_url_verifies_with_the_server_check() -> None:
    signed = url(ID, key="secret", resize="100x")
    signature, rest = signing.split(signed)
    assert signature and rest == f"/resize/100x/{ID}"
    assert signing.check(signed, "", ["secret"]) == rest
    # rotation: a list of keys signs with the first
    assert url(ID, key=["secret", "old"], resize="100x") == signed


def test_remote_source_keeps_its_query_and_is_encoded_as_sent() -> None:
    source = "https://example.com/photos/a b.jpg?size=large&v=2"
    built = url(source, key="k", fill="30x20")
    signature, rest = signing.split(built)
    path, _, query = rest.partition("?")
    assert path == "/fill/30x20/https://example.com/photos/a%20b.jpg"
    assert query == "size=large&v=2"
    # the server verifies over the raw path and the query string it receives
    assert signing.check(f"/sig/{signature}{path}", query, ["k"]) == path


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ({"resize": "big"}, "resize/big"),
        ({"zoom": 2}, "unknown operation 'zoom'"),
        ({"grayscale": "yes"}, "'grayscale' is a flag"),
        ({"q": 101}, "q/101"),
        ({"resize": "10x10", "fill": "10x10"}, "only one"),
    ],
)
def test_bad_operations_raise_value_error(operations: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        url(ID, **operations)


def test_srcset_one_candidate_per_width_keeping_the_shape() -> None:
    assert srcset(ID, [320, 640], fill="300x200", fmt="webp") == (
        f"/fill/320x213/fmt/webp/{ID} 320w, /fill/640x427/fmt/webp/{ID} 640w"
    )
    assert srcset(ID, [100]) == f"/resize/100x/{ID} 100w"


def test_srcset_signs_every_candidate() -> None:
    candidates = srcset(ID, [100, 200], key="secret", base="https://cdn.example", fmt="avif")
    for candidate in candidates.split(", "):
        address, descriptor = candidate.split(" ")
        path = address.removeprefix("https://cdn.example")
        assert signing.check(path, "", ["secret"]).endswith(f"/fmt/avif/{ID}")
        assert descriptor in ("100w", "200w")


@pytest.mark.parametrize(
    ("widths", "operations"), [([], {}), ([0], {}), ([100], {"dpr": 2}), (["100"], {})]
)
def test_srcset_refuses_what_it_cannot_express(widths: list, operations: dict) -> None:
    with pytest.raises(ValueError):
        srcset(ID, widths, **operations)


def test_arguments_describe_every_operation_with_one() -> None:
    with_argument = {op.name for op in ops.REGISTRY if op.arity == 1}
    assert set(links.ARGUMENTS) == with_argument


# --- the command line


def test_cli_prints_a_url(capsys, monkeypatch) -> None:
    monkeypatch.delenv("PROGIMAGE_SIGNING__KEY", raising=False)
    assert cli.main(["url", ID, "--resize", "300x200", "--fmt", "webp", "--grayscale"]) == 0
    assert capsys.readouterr().out.strip() == f"/resize/300x200/grayscale/fmt/webp/{ID}"


def test_cli_prints_a_signed_srcset_with_the_configured_key(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PROGIMAGE_SIGNING__KEY", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("signing: {key: [new, old]}\n")
    argv = ["url", ID, "--resize", "300x200", "--fmt", "webp", "--widths", "320,640,1280"]
    assert cli.main([*argv, "--config", str(config)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == srcset(ID, [320, 640, 1280], key="new", resize="300x200", fmt="webp")
    assert out.count("/sig/") == 3


@pytest.mark.parametrize("argv", [["--resize", "3"], ["--widths", "a,b"], ["--q", "0"]])
def test_cli_reports_bad_arguments(argv: list[str], capsys, monkeypatch) -> None:
    monkeypatch.delenv("PROGIMAGE_SIGNING__KEY", raising=False)
    assert cli.main(["url", ID, *argv]) == 2
    assert capsys.readouterr().err.startswith("progimage: ")
