"""The URL codec: canonical round trips, every operation, and every kind of bad path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import ops
from proxy.errors import BadRequest
from proxy.ops import Options
from proxy.urls import SourceRef, build, normalise, parse, parse_operations

ID = "9f86d081884c7d659a2feaa0c55ad015"

# (path as a user writes it, canonical path)
ROUND_TRIPS = [
    (f"/{ID}", f"/{ID}"),
    (f"/{ID}.webp", f"/fmt/webp/{ID}"),
    (f"/{ID}.jpg", f"/fmt/jpeg/{ID}"),
    (f"/resize/300x300/fmt/webp/{ID}", f"/resize/300x300/fmt/webp/{ID}"),
    (f"/fmt/webp/resize/300x300/{ID}", f"/resize/300x300/fmt/webp/{ID}"),
    (f"/resize/300x/{ID}", f"/resize/300x/{ID}"),
    (f"/resize/x200/{ID}", f"/resize/x200/{ID}"),
    (f"/mirror/{ID}", f"/flop/{ID}"),
    (f"/flop/flip/rotate/90/crop/1,2,3,4/{ID}", f"/crop/1,2,3,4/rotate/90/flip/flop/{ID}"),
    (f"/gravity/north/fill/64x64/{ID}", f"/fill/64x64/gravity/north/{ID}"),
    (f"/fill/64x64/gravity/centre/{ID}", f"/fill/64x64/{ID}"),
    (f"/fill/64x64/gravity/center/{ID}", f"/fill/64x64/{ID}"),
    (f"/thumbnail/64x64/gravity/smart/{ID}", f"/thumbnail/64x64/{ID}"),
    (f"/thumbnail/64x64/gravity/centre/{ID}", f"/thumbnail/64x64/gravity/centre/{ID}"),
    (f"/pad/100x100/gravity/south/bg/FF0000/{ID}", f"/pad/100x100/gravity/south/bg/ff0000/{ID}"),
    (f"/stretch/10x20/enlarge/{ID}", f"/stretch/10x20/enlarge/{ID}"),
    (f"/enlarge/gravity/north/dpr/2/{ID}", f"/{ID}"),  # nothing to enlarge, place or scale
    (f"/resize/100x/dpr/2.50/{ID}", f"/resize/100x/dpr/2.5/{ID}"),
    (f"/resize/100x/dpr/1/{ID}", f"/resize/100x/{ID}"),
    (f"/blur/1.5/sharpen/2/grayscale/{ID}", f"/blur/1.5/sharpen/2/grayscale/{ID}"),
    (f"/bg/ffffff/{ID}", f"/{ID}"),
    (f"/q/75/fmt/jpg/{ID}", f"/q/75/fmt/jpeg/{ID}"),
    (f"/fmt/auto/{ID}", f"/fmt/auto/{ID}"),
    (f"/info/expires/1999999999/{ID}", f"/info/expires/1999999999/{ID}"),
    ("/fill/64x64/https://example.com/cat.jpg", "/fill/64x64/https://example.com/cat.jpg"),
    ("/fill/64x64/https:/example.com/cat.jpg", "/fill/64x64/https://example.com/cat.jpg"),
    ("/resize/10x/https%3A%2F%2Fexample.com%2Fa.jpg", "/resize/10x/https://example.com/a.jpg"),
    ("/HTTP://example.com/x.png", "/http://example.com/x.png"),
]


@pytest.mark.parametrize(("path", "canonical"), ROUND_TRIPS)
def test_parse_then_build_is_canonical(path: str, canonical: str) -> None:
    options, source = parse(path)
    assert build(options, source) == canonical
    assert parse(canonical) == (options, source)


def test_query_string_belongs_to_a_remote_source() -> None:
    _, source = parse("/resize/10x/https://example.com/img", "w=1&h=2")
    assert source == SourceRef("url", "https://example.com/img?w=1&h=2")


def test_query_string_on_a_stored_id_is_a_cache_buster() -> None:
    assert parse(f"/{ID}", "v=2") == parse(f"/{ID}")


def test_every_operation_sets_its_field() -> None:
    options, _ = parse(
        f"/crop/5,6,7,8/rotate/270/flip/flop/fill/30x40/enlarge/gravity/southwest/dpr/1.5"
        f"/blur/2/sharpen/1/grayscale/bg/000000/q/50/fmt/png/info/expires/123/{ID}"
    )
    assert options == Options(
        crop=(5, 6, 7, 8), rotate=270, flip=True, flop=True, mode="fill", width=30, height=40,
        enlarge=True, gravity="southwest", dpr=1.5, blur=2.0, sharpen=1.0, grayscale=True,
        bg="000000", quality=50, format="png", info=True, expires=123,
    )  # fmt: skip
    assert options.box == (45, 60)


BAD_PATHS = [
    ("/", "missing source"),
    ("/resize/300x300", "missing source"),
    ("/resize", "'resize' needs an argument"),
    (f"/resize/300/{ID}", "'resize/300'"),
    (f"/resize/x/{ID}", "'resize/x'"),
    (f"/resize/0x10/{ID}", "'resize/0x10'"),
    (f"/resize/9000x10/{ID}", "'resize/9000x10'"),
    (f"/fill/100x/{ID}", "'fill/100x'"),
    (f"/resize/10x10/fill/10x10/{ID}", "'fill'"),
    (f"/resize/10x10/resize/20x20/{ID}", "'resize'"),
    (f"/flip/flip/{ID}", "'flip'"),
    (f"/flop/mirror/{ID}", "'mirror'"),
    (f"/rotate/45/{ID}", "'rotate/45'"),
    (f"/rotate/0/{ID}", "'rotate/0'"),
    (f"/crop/1,2,3/{ID}", "'crop/1,2,3'"),
    (f"/crop/1,2,0,4/{ID}", "'crop/1,2,0,4'"),
    (f"/crop/-1,2,3,4/{ID}", "'crop/-1,2,3,4'"),
    (f"/gravity/up/fill/1x1/{ID}", "'gravity/up'"),
    (f"/dpr/5/resize/10x/{ID}", "'dpr/5'"),
    (f"/dpr/0.5/resize/10x/{ID}", "'dpr/0.5'"),
    (f"/dpr/abc/{ID}", "'dpr/abc'"),
    (f"/resize/5000x/dpr/2/{ID}", "'dpr/2'"),
    (f"/blur/0.1/{ID}", "'blur/0.1'"),
    (f"/blur/101/{ID}", "'blur/101'"),
    (f"/sharpen/11/{ID}", "'sharpen/11'"),
    (f"/bg/red/{ID}", "'bg/red'"),
    (f"/bg/fff/{ID}", "'bg/fff'"),
    (f"/q/0/{ID}", "'q/0'"),
    (f"/q/101/{ID}", "'q/101'"),
    (f"/q/high/{ID}", "'q/high'"),
    (f"/fmt/bmp/{ID}", "'fmt/bmp'"),
    (f"/expires/soon/{ID}", "'expires/soon'"),
    (f"/fmt/png/{ID}.jpg", "'.jpg'"),
    (f"/{ID}.bmp", "'.bmp'"),
    ("/resize/10x/abc", "'abc'"),
    (f"/sepia/{ID}", "'sepia'"),
    (f"/resize/10x/{ID.upper()}", f"'{ID.upper()}'"),
    ("/resize/10x/ftp://example.com/a.png", "'ftp:'"),
    ("/resize/10x/https://", "no host"),
    ("/resize/10x/file:///etc/passwd", "'file:'"),
]


@pytest.mark.parametrize(("path", "named"), BAD_PATHS)
def test_bad_paths_are_400_naming_the_segment(path: str, named: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(path)
    assert caught.value.status == 400
    assert named in caught.value.detail


def test_max_dimension_is_configurable() -> None:
    parse(f"/resize/100x/{ID}", max_dimension=100)
    with pytest.raises(BadRequest, match="between 1 and 99"):
        parse(f"/resize/100x/{ID}", max_dimension=99)


def test_operations_without_source_for_post() -> None:
    assert parse_operations("/resize/10x/fmt/png") == Options(mode="resize", width=10, format="png")
    assert parse_operations("/") == Options()
    with pytest.raises(BadRequest, match="'abc'"):
        parse_operations("/resize/10x/abc")


# --- property-based: any valid options survive build -> parse unchanged

dims = st.integers(1, 4000)
options_strategy = st.builds(
    lambda crop, rotate, flip, flop, mode, w, h, enlarge, gravity, dpr, blur, sharpen, grey,
    bg, q, fmt, info, expires: normalise(
        Options(
            crop=crop, rotate=rotate, flip=flip, flop=flop, mode=mode,
            width=w if mode else None,
            height=(h if mode != "resize" or w is None else h) if mode else None,
            enlarge=enlarge, gravity=gravity, dpr=dpr, blur=blur, sharpen=sharpen,
            grayscale=grey, bg=bg, quality=q, format=fmt, info=info, expires=expires,
        )
    ),
    st.none() | st.tuples(st.integers(0, 5000), st.integers(0, 5000), dims, dims),
    st.sampled_from([0, 90, 180, 270]),
    st.booleans(), st.booleans(),
    st.none() | st.sampled_from(ops.RESIZE_MODES),
    st.none() | st.integers(1, 2000), st.integers(1, 2000),
    st.booleans(),
    st.none() | st.sampled_from(ops.GRAVITIES),
    st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 1.25]),
    st.none() | st.floats(0.3, 100, allow_nan=False).map(lambda v: round(v, 3)),
    st.none() | st.floats(0.5, 10, allow_nan=False).map(lambda v: round(v, 3)),
    st.booleans(),
    st.none() | st.from_regex(r"[0-9a-f]{6}", fullmatch=True),
    st.none() | st.integers(1, 100),
    st.none() | st.sampled_from([*ops.FORMATS, "auto"]),
    st.booleans(),
    st.none() | st.integers(0, 10**11),
)  # fmt: skip
sources = st.sampled_from([SourceRef("id", ID), SourceRef("url", "https://example.com/a.jpg?x=1")])


def _valid(o: Options) -> bool:
    if o.mode and o.mode != "resize" and (o.width is None or o.height is None):
        return False
    if o.mode == "resize" and o.width is None and o.height is None:
        return False
    return all(v is None or v <= 8192 for v in o.box)


@settings(max_examples=300, deadline=None)
@given(options_strategy, sources)
def test_parse_of_build_is_identity(options: Options, source: SourceRef) -> None:
    if not _valid(options):
        return
    assert parse(*_split(build(options, source))) == (options, source)


@settings(max_examples=300, deadline=None)
@given(options_strategy, sources, st.randoms())
def test_any_operation_order_gives_the_canonical_path(options, source, rnd) -> None:
    if not _valid(options):
        return
    canonical = build(options, source)
    segments = build(options, SourceRef("id", ID)).strip("/").split("/")[:-1]
    pairs, i = [], 0
    while i < len(segments):  # group each operation with its argument, then shuffle the groups
        name = segments[i]
        size = 2 if name not in ("flip", "flop", "enlarge", "grayscale", "info") else 1
        pairs.append(segments[i : i + size])
        i += size
    rnd.shuffle(pairs)
    shuffled = "/" + "/".join([*(s for pair in pairs for s in pair), source.value])
    assert build(*parse(*_split(shuffled))) == canonical


def _split(path: str) -> tuple[str, str]:
    head, _, query = path.partition("?")
    return head, query
