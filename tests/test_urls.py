"""The URL codec: canonical round trips, every operation, and every kind of bad path."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import arguments, ops
from proxy.errors import BadRequest
from proxy.ops import Options
from proxy.urls import (
    Grammar,
    SourceRef,
    build,
    compile_presets,
    normalise,
    parse,
    parse_operations,
)

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
        crop=(5, 6, 7, 8), rotate=270, flip=True, flop=True, fit=ops.fit("fill", 30, 40),
        enlarge=True, gravity="southwest", dpr=1.5, blur=2.0, sharpen=1.0, grayscale=True,
        bg="000000", quality=50, format="png", info=True, expires=123,
    )  # fmt: skip
    assert options.box == (45, 60)


def test_the_new_vocabulary_sets_its_fields() -> None:
    options, _ = parse(
        f"/page/3/crop/0.25,0,0.5,1.0/trim/12/rotate/33/fill/30x40/gravity/0.31,0.72"
        f"/padding/1,2,3,4/brightness/-20/contrast/15/saturation/-100/hue/180/pixelate/8"
        f"/round/max/lossless/fmt/webp/meta/copyright/download/cat-1/{ID}"
    )
    assert options == Options(
        page=3, crop=(0.25, 0, 0.5, 1.0), trim=12, rotate=33, fit=ops.fit("fill", 30, 40),
        gravity=(0.31, 0.72), padding=(1, 2, 3, 4), brightness=-20, contrast=15,
        saturation=-100, hue=180, pixelate=8, round="max", lossless=True, format="webp",
        meta="copyright", download="cat-1",
    )  # fmt: skip


NEW_ROUND_TRIPS = [
    (f"/padding/5,5,5,5/{ID}", f"/padding/5/{ID}"),
    (f"/padding/0/{ID}", f"/{ID}"),
    (f"/rotate/0/{ID}", f"/{ID}"),
    (f"/hue/0/brightness/0/{ID}", f"/{ID}"),
    (f"/crop/0.0,.5,1.0,0.50/{ID}", f"/crop/0,0.5,1.0,0.5/{ID}"),
    (f"/fill/10x10/gravity/0.5,0.5/{ID}", f"/fill/10x10/{ID}"),
    (f"/pad/10x10/gravity/0.2,0.5/{ID}", f"/pad/10x10/{ID}"),
    (f"/dpr/auto/resize/100x/{ID}", f"/resize/100x/dpr/auto/{ID}"),
    (f"/dpr/auto/{ID}", f"/{ID}"),
    (f"/meta/keep/maxbytes/20000/palette/16/{ID}", f"/palette/16/maxbytes/20000/meta/keep/{ID}"),
    (f"/round/12/{ID}", f"/round/12/{ID}"),
    ("/b64:aHR0cHM6Ly9leGFtcGxlLmNvbS9hIGIuanBnP3g9MQ", "/https://example.com/a%20b.jpg?x=1"),
    ("/b64:aHR0cHM6Ly9leGFtcGxlLmNvbS9hLmpwZw==.webp", "/fmt/webp/https://example.com/a.jpg"),
    (f"/b64:{__import__('base64').urlsafe_b64encode(ID.encode()).decode()}", f"/{ID}"),
]


@pytest.mark.parametrize(("path", "canonical"), NEW_ROUND_TRIPS)
def test_new_operations_have_one_canonical_form(path: str, canonical: str) -> None:
    options, source = parse(path)
    assert build(options, source) == canonical


def test_presets_expand_and_the_url_wins() -> None:
    presets = compile_presets({"avatar": "/fill/128x128/gravity/north/fmt/webp"}, 8192)
    grammar = Grammar(presets=presets)
    options, source = parse(f"/preset/avatar/{ID}", "", grammar)
    assert build(options, source) == f"/fill/128x128/gravity/north/fmt/webp/{ID}"
    options, source = parse(f"/fmt/png/resize/64x/preset/avatar/{ID}", "", grammar)
    assert build(options, source) == f"/resize/64x/fmt/png/{ID}"  # gravity: idle for resize
    with pytest.raises(BadRequest, match="'preset/nope'"):
        parse(f"/preset/nope/{ID}", "", grammar)


def test_presets_only_closes_the_set() -> None:
    presets = compile_presets({"small": "/resize/100x"}, 8192)
    grammar = Grammar(presets=presets, presets_only=True)
    assert parse(f"/preset/small/{ID}", "", grammar)[0].width == 100
    for path in (f"/{ID}", f"/preset/small/fmt/webp/{ID}", f"/resize/100x/{ID}"):
        with pytest.raises(BadRequest, match="presets only"):
            parse(path, "", grammar)


@pytest.mark.parametrize(
    "definition", ["/resize/abc", "/preset/other", "/resize/10x/9f86d081884c7d659a2feaa0c55ad015"]
)
def test_bad_preset_definitions_are_refused(definition: str) -> None:
    with pytest.raises(ValueError, match="^p: "):
        compile_presets({"p": definition}, 8192)


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
    (f"/rotate/360/{ID}", "'rotate/360'"),
    (f"/rotate/-90/{ID}", "'rotate/-90'"),
    (f"/rotate/1.5/{ID}", "'rotate/1.5'"),
    (f"/crop/0.5,0,1.5,1/{ID}", "'crop/0.5,0,1.5,1'"),
    (f"/crop/0,0,0.0,1/{ID}", "'crop/0,0,0.0,1'"),
    (f"/crop/1e-3,0,1,1/{ID}", "'crop/1e-3,0,1,1'"),
    (f"/gravity/0.5/fill/1x1/{ID}", "'gravity/0.5'"),
    (f"/gravity/1.5,0.5/fill/1x1/{ID}", "'gravity/1.5,0.5'"),
    (f"/gravity/1,0/fill/1x1/{ID}", "'gravity/1,0'"),
    (f"/trim/0/{ID}", "'trim/0'"),
    (f"/trim/256/{ID}", "'trim/256'"),
    (f"/padding/1,2/{ID}", "'padding/1,2'"),
    (f"/padding/9000/{ID}", "'padding/9000'"),
    (f"/padding/-1/{ID}", "'padding/-1'"),
    (f"/page/0/{ID}", "'page/0'"),
    (f"/page/10001/{ID}", "'page/10001'"),
    (f"/brightness/101/{ID}", "'brightness/101'"),
    (f"/contrast/-101/{ID}", "'contrast/-101'"),
    (f"/saturation/+5/{ID}", "'saturation/+5'"),
    (f"/hue/360/{ID}", "'hue/360'"),
    (f"/pixelate/1/{ID}", "'pixelate/1'"),
    (f"/pixelate/101/{ID}", "'pixelate/101'"),
    (f"/round/0/{ID}", "'round/0'"),
    (f"/round/min/{ID}", "'round/min'"),
    (f"/round/4097/{ID}", "'round/4097'"),
    (f"/meta/all/{ID}", "'meta/all'"),
    (f"/maxbytes/1023/{ID}", "'maxbytes/1023'"),
    (f"/maxbytes/52428801/{ID}", "'maxbytes/52428801'"),
    (f"/palette/1/{ID}", "'palette/1'"),
    (f"/palette/257/{ID}", "'palette/257'"),
    (f"/download/a%20b/{ID}", "'download/a%20b'"),
    (f"/download/{'a' * 101}/{ID}", "'download/"),
    (f"/dpr/automatic/{ID}", "'dpr/automatic'"),
    (f"/preset/a.b/{ID}", "'preset/a.b'"),
    (f"/preset/none/{ID}", "'preset/none': no such preset"),
    (f"/lossless/lossless/{ID}", "'lossless'"),
    ("/b64:!!!", "'b64:!!!'"),
    ("/b64:Zm9vYmFy", "'b64:Zm9vYmFy'"),  # "foobar": neither a URL nor an id
    ("/b64:ZmlsZTovLy9ldGMvcGFzc3dk", "'b64:ZmlsZTovLy9ldGMvcGFzc3dk'"),  # file:///etc/passwd
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
    parse(f"/resize/100x/{ID}", "", Grammar(max_dimension=100))
    with pytest.raises(BadRequest, match="between 1 and 99"):
        parse(f"/resize/100x/{ID}", "", Grammar(max_dimension=99))
    with pytest.raises(BadRequest, match="at most 99"):
        parse(f"/padding/100/{ID}", "", Grammar(max_dimension=99))


def test_operations_without_source_for_post() -> None:
    expected = Options(fit=ops.fit("resize", 10), format="png")
    assert parse_operations("/resize/10x/fmt/png") == expected
    assert parse_operations("/") == Options()
    with pytest.raises(BadRequest, match="'abc'"):
        parse_operations("/resize/10x/abc")


# --- property-based: any valid options, over the whole registry, survive build -> parse

_fraction = st.integers(0, 10**6).map(lambda n: n / 10**6)


_position = st.sampled_from(("centre", "north", "southeast", "southwest", "tile"))
# Any printable text, commas, slashes and percent signs included: they must survive encoding.
_words = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Cf"), blacklist_characters="\u2028\u2029"),
    min_size=1,
    max_size=200,
)


def _unit(low: int, high: int = 10000) -> st.SearchStrategy:
    return st.integers(low, high).map(lambda n: n / 10000)


def _value(op: ops.Operation) -> st.SearchStrategy:
    """Values of one operation, from its argument kind: a new operation is covered as is."""
    arg = op.arg
    if isinstance(arg, arguments.Flag):
        return st.booleans()
    if isinstance(arg, arguments.Integer):
        return st.integers(arg.low, arg.high)
    if isinstance(arg, arguments.Decimal):
        number = st.floats(arg.low, arg.high, allow_nan=False).map(lambda v: round(v, 3))
        number = number.filter(lambda v: arg.low <= v <= arg.high)
        return number | st.sampled_from(arg.words) if arg.words else number
    if isinstance(arg, arguments.Choice):
        return st.sampled_from(arg.values)
    if isinstance(arg, arguments.Colour):
        return st.from_regex(r"[0-9a-f]{6}", fullmatch=True)
    if isinstance(arg, arguments.Region):
        either = st.integers(0, 5000) | _fraction
        size = st.integers(1, 5000) | _fraction.filter(lambda v: v > 0)
        return st.tuples(either, either, size, size).map(
            lambda t: tuple(0 if v == 0 else v for v in t)
        )
    if isinstance(arg, arguments.Anchor):
        return st.sampled_from(arg.names) | st.tuples(_fraction, _fraction)
    if isinstance(arg, arguments.Sides):
        return st.tuples(*[st.integers(0, 2000)] * 4)
    if isinstance(arg, arguments.Radius):
        return st.integers(1, arg.high) | st.just("max")
    if isinstance(arg, arguments.Name):
        return st.from_regex(arg.pattern, fullmatch=True)
    if isinstance(arg, arguments.Overlay):
        return st.tuples(
            st.from_regex(r"[0-9a-f]{32}", fullmatch=True), _position, _unit(0), _unit(100)
        )
    if isinstance(arg, arguments.Caption):
        return st.tuples(
            _words,
            _position,
            _unit(0),
            _unit(100, 5000),
            st.from_regex(r"[0-9a-f]{6}", fullmatch=True),
        )
    raise AssertionError(f"no strategy for {op.name}'s argument {arg!r}")


_box = st.tuples(st.none() | st.integers(1, 2000), st.integers(1, 2000))
_fits = st.sampled_from(ops.RESIZE_MODES).flatmap(
    lambda mode: _box.map(lambda b: ops.fit(mode, b[0], b[1]) if mode == "resize" or b[0] else None)
)


@st.composite
def options_strategy(draw) -> Options:
    fields = {}
    for name, op in ops.FIELDS.items():
        if draw(st.booleans()):
            continue  # left at its default
        fields[name] = draw(_fits if name == "fit" else _value(op))
    return normalise(Options(**fields))


sources = st.sampled_from([SourceRef("id", ID), SourceRef("url", "https://example.com/a.jpg?x=1")])


def _valid(o: Options) -> bool:
    return all(v is None or v <= 8192 for v in o.box)


@settings(max_examples=400, deadline=None)
@given(options_strategy(), sources)
def test_parse_of_build_is_identity(options: Options, source: SourceRef) -> None:
    if not _valid(options):
        return
    path = build(options, source)
    assert parse(*_split(path)) == (options, source)
    assert build(*parse(*_split(path))) == path


@settings(max_examples=300, deadline=None)
@given(options_strategy(), sources, st.randoms())
def test_any_operation_order_gives_the_canonical_path(options, source, rnd) -> None:
    if not _valid(options):
        return
    canonical = build(options, source)
    segments = build(options, SourceRef("id", ID)).strip("/").split("/")[:-1]
    pairs, i = [], 0
    while i < len(segments):  # group each operation with its argument, then shuffle the groups
        size = 1 + ops.BY_NAME[segments[i]].arity
        pairs.append(segments[i : i + size])
        i += size
    rnd.shuffle(pairs)
    shuffled = "/" + "/".join([*(s for pair in pairs for s in pair), source.value])
    assert build(*parse(*_split(shuffled))) == canonical


def _split(path: str) -> tuple[str, str]:
    head, _, query = path.partition("?")
    return head, query
