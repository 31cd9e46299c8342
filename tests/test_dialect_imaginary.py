"""The imaginary dialect, checked against imaginary's own tests and README.

imaginary does not install here (Go, libvips through bimg), so its test cases and URL examples
are ported as data: every row names the file of h2non/imaginary it came from, at commit
IMAGINARY (the newest stored snapshot). Parsing rows check the parameters read; endpoint rows
check the native Options they become; HTTP rows check the output size and type a client gets.
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qsl

import pytest
from aiohttp import FormData, web
from yarl import URL

from conftest import decode, gradient
from proxy.arguments import Fit
from proxy.dialects import imaginary as dialect
from proxy.dialects import imaginary_ops as iops
from proxy.dialects import imaginary_params as ip
from proxy.dialects import imaginary_pipeline as pipeline
from proxy.dialects.common import Unsupported

IMAGINARY = "h2non/imaginary@1d4e251cfcd58ea66f8361f8721d7b8cc85002a3"
PARAMS_TEST = f"{IMAGINARY} params_test.go"
IMAGE_TEST = f"{IMAGINARY} image_test.go"
SERVER_TEST = f"{IMAGINARY} server_test.go"
README = f"{IMAGINARY} README.md"
CONTROLLERS = f"{IMAGINARY} controllers.go (formController examples)"
# imaginary's go.mod pins bimg v1.1.7: its resizer decides what a set of flags does.
RESIZER = "h2non/bimg@96a638479771b33eaa444c8bb079937f8707ab2a (v1.1.7) resizer.go"
KEY = "4f46feebafc4b5e988f131c4ff8b5997"  # README.md "URL signature"


# --- parsing: params_test.go, query in, parameters out

INT_ROWS = [  # TestParseParam intCases
    ("1", 1), ("0100", 100), ("-100", 100), ("99.02", 99), ("99.9", 100),
]  # fmt: skip
FLOAT_ROWS = [("1.1", 1.1), ("01.1", 1.1), ("-1.10", 1.10), ("99.999999", 99.999999)]
BOOL_ROWS = [  # TestParseParam boolCases: what is no Go bool is an error read as false
    ("true", True), ("false", False), ("1", True), ("1.1", False), ("-1", False),
    ("0", False), ("0.0", False), ("no", False), ("yes", False),
]  # fmt: skip
COLOUR_ROWS = [  # TestParseColor
    ("200,100,20", (200, 100, 20)), ("0,280,200", (0, 255, 200)),
    (" -1, 256 , 50", (0, 255, 50)), (" a, 20 , &hel0", (0, 20, 0)), ("", ()),
]  # fmt: skip
EXTEND_ROWS = [  # TestParseExtend
    ("white", "white"), ("black", "black"), ("copy", "copy"), ("mirror", "mirror"),
    ("lastpixel", "lastpixel"), ("background", "background"),
    (" BACKGROUND  ", "background"), ("invalid", "mirror"), ("", "mirror"),
]  # fmt: skip
GRAVITY_ROWS = [("foo", "centre"), ("smart", "smart"), ("West", "west")]  # TestGravity


@pytest.mark.parametrize(("text", "value"), INT_ROWS, ids=lambda v: f"{PARAMS_TEST}:{v}")
def test_integers_read_as_imaginary_rounds_them(text, value) -> None:
    assert ip.parse_int(text) == value


@pytest.mark.parametrize(("text", "value"), FLOAT_ROWS)
def test_decimals_read_as_absolute_values(text, value) -> None:  # params_test.go
    assert math.isclose(ip.parse_float(text), value)


@pytest.mark.parametrize(("text", "value"), BOOL_ROWS)
def test_booleans_read_as_go_parsebool(text, value) -> None:  # params_test.go
    try:
        parsed = ip.parse_bool(text)
    except ip.ParamError:
        parsed = False
    assert parsed is value


@pytest.mark.parametrize(("text", "value"), COLOUR_ROWS)
def test_colours_clamp_to_255(text, value) -> None:  # params_test.go TestParseColor
    assert ip.parse_colour(text) == value


@pytest.mark.parametrize(("text", "value"), EXTEND_ROWS)
def test_extend_modes(text, value) -> None:  # params_test.go TestParseExtend
    assert ip.parse_extend(text) == value


@pytest.mark.parametrize(("text", "value"), GRAVITY_ROWS)
def test_gravities_unknown_is_centre(text, value) -> None:  # params_test.go TestGravity
    assert ip.read({"gravity": text})["gravity"] == value


def test_read_params() -> None:  # params_test.go TestReadParams
    p = ip.read({"width": "100", "height": "80", "noreplicate": "1", "opacity": "0.2",
                 "text": "hello", "background": "255,10,20", "interlace": "true"})  # fmt: skip
    assert (p["width"], p["height"], p["noreplicate"], p["text"]) == (100, 80, True, "hello")
    assert math.isclose(p["opacity"], 0.2) and p["background"] == (255, 10, 20)
    assert p["interlace"] is True


def test_read_map_params_from_json() -> None:  # params_test.go TestReadMapParams
    p = ip.read({"width": 100, "opacity": 0.1, "type": "webp", "embed": True,
                 "gravity": "west", "color": "255,200,150"})  # fmt: skip
    assert (p["width"], p["type"], p["embed"], p["gravity"]) == (100, "webp", True, "west")
    assert math.isclose(p["opacity"], 0.1) and p["color"] == (255, 200, 150)


def test_build_params_from_operation() -> None:  # params_test.go TestBuildParamsFromOperation
    p = ip.read({"width": 200, "opacity": 2.2, "force": True, "stripmeta": False,
                 "type": "jpeg", "background": "255,12,3"})  # fmt: skip
    assert p["width"] == 200 and math.isclose(p["opacity"], 2.2)
    assert p["force"] is True and p["stripmeta"] is False and p["background"][0] == 255


COERCE_ROWS = [  # params_test.go TestCoerceTypeFns: JSON values in, value or refusal out
    ("width", "200", 200), ("width", 200, 200), ("width", 200.0, 200), ("width", False, None),
    ("sigma", "200", 200.0), ("sigma", 200, 200.0), ("sigma", False, None),
    ("force", "true", True), ("force", True, True), ("force", "1", True),
    ("force", "bubblegum", None), ("text", "true", "true"), ("text", False, None),
    ("text", 0.0, None), ("text", 0, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "expected"), COERCE_ROWS)
def test_coercions(name, value, expected) -> None:
    if expected is None:
        with pytest.raises(ip.ParamError, match=f'parameter "{name}"'):
            ip.read({name: value})
    else:
        assert ip.read({name: value})[name] == expected


def test_unknown_parameters_are_skipped_as_imaginary_skips_them() -> None:
    assert ip.read({"url": "http://x/a.jpg", "sign": "abc", "field": "file"}).values == {}


def test_operations_json_refuses_unknown_keys_like_go() -> None:
    with pytest.raises(ip.ParamError, match="unknown field"):
        ip.parse_operations('[{"operation": "crop", "parms": {}}]')
    assert ip.parse_operations("x") == []  # params.go: under two characters, no operations


# --- endpoints: query in, native Options fields out (bimg's reading of imaginary's flags)

L, M = (1920, 1080), (550, 740)  # testdata/large.jpg and testdata/imaginary.jpg
ENDPOINT_ROWS = [
    # (source of the case, endpoint, query, source size, expected native fields)
    (SERVER_TEST + " TestCrop", "crop", "width=300", L, {"fit": Fit("fill", 300, 1080)}),
    (SERVER_TEST + " TestResize", "resize", "width=300&nocrop=false", L,
     {"fit": Fit("fill", 300, 1080)}),
    (SERVER_TEST + " TestEnlarge", "enlarge", "width=300&height=200", L,
     {"fit": Fit("fill", 300, 200), "enlarge": True}),
    (SERVER_TEST + " TestExtract", "extract", "top=100&left=100&areawidth=200&areaheight=120",
     L, {"crop": (100, 100, 200, 120)}),
    (SERVER_TEST + " TestFit", "fit", "width=300&height=300", L,
     {"fit": Fit("resize", 300, 300)}),
    (SERVER_TEST + " TestRemoteHTTPSource", "crop", "width=200&height=200", L,
     {"fit": Fit("fill", 200, 200), "enlarge": True}),
    (IMAGE_TEST + " TestImageResize w+h", "resize", "width=300&height=300", M,
     {"fit": Fit("pad", 300, 300)}),
    (IMAGE_TEST + " TestImageResize w", "resize", "width=300", M,
     {"fit": Fit("resize", 300, None)}),
    (IMAGE_TEST + " TestImageResize nocrop=false", "resize", "width=300&nocrop=false", M,
     {"fit": Fit("fill", 300, 740)}),
    (IMAGE_TEST + " TestImageResize nocrop=true", "resize", "width=300&nocrop=true", M,
     {"fit": Fit("resize", 300, None)}),
    (IMAGE_TEST + " TestImageFit", "fit", "width=300&height=300", M,
     {"fit": Fit("resize", 300, 300)}),
    (IMAGE_TEST + " TestImageAutoRotate", "autorotate", "", M, {}),
    (CONTROLLERS + " Force resize", "resize", "width=300&height=200&force=true", L,
     {"fit": Fit("stretch", 300, 200), "enlarge": True}),
    (CONTROLLERS + " Crop", "crop", "width=300&quality=95", L,
     {"fit": Fit("fill", 300, 1080), "quality": 95}),
    (CONTROLLERS + " SmartCrop", "crop", "width=300&height=260&quality=95&gravity=smart", L,
     {"fit": Fit("fill", 300, 260), "enlarge": True, "gravity": "smart", "quality": 95}),
    (CONTROLLERS + " Enlarge", "enlarge", "width=1440&height=900&quality=95", L,
     {"fit": Fit("fill", 1440, 900), "enlarge": True, "quality": 95}),
    (CONTROLLERS + " Rotate", "rotate", "rotate=180", L, {"rotate": 180}),
    (CONTROLLERS + " AutoRotate", "autorotate", "quality=90", L, {"quality": 90}),
    (CONTROLLERS + " Flip", "flip", "", L, {"flip": True}),
    (CONTROLLERS + " Flop", "flop", "", L, {"flop": True}),
    (CONTROLLERS + " Thumbnail", "thumbnail", "width=100", L,
     {"fit": Fit("resize", 100, None), "enlarge": True}),
    (CONTROLLERS + " Color space", "resize", "width=400&height=300&colorspace=bw", L,
     {"fit": Fit("pad", 400, 300), "grayscale": True}),
    (CONTROLLERS + " Convert", "convert", "type=png", L, {"format": "png"}),
    (CONTROLLERS + " Gaussian blur", "blur", "sigma=15.0&minampl=0.2", L, {"blur": 15.0}),
    (README + " /smartcrop", "smartcrop", "width=300&height=260", L,
     {"fit": Fit("fill", 300, 260), "enlarge": True, "gravity": "smart"}),
    (README + " rotate: multiple of 90", "rotate", "rotate=100", L, {"rotate": 90}),
    (README + " aspectratio", "resize", "width=300&aspectratio=16:9", L,
     {"fit": Fit("pad", 300, 162)}),  # 300 // 16 * 9, then embedded
    (README + " extend=background", "resize",
     "width=300&height=300&extend=background&background=250,20,10", M,
     {"fit": Fit("pad", 300, 300), "bg": "fa140a"}),
    (README + " type=auto", "resize", "width=300&type=auto", L,
     {"fit": Fit("resize", 300, None), "format": "auto"}),
    (README + " /zoom factor", "zoom", "factor=2", M,
     {"fit": Fit("stretch", 1100, 1480), "enlarge": True}),
    (README + " /thumbnail w+h (bimg forces both sides)", "thumbnail", "width=100&height=100", L,
     {"fit": Fit("stretch", 100, 100), "enlarge": True}),
    (README + " /watermark", "watermark", "text=Hello&opacity=0.5&color=255,200,50", L,
     {"text": ("Hello", "tile", 0.5, 0.05, "ffc832")}),
    (README + " /watermark noreplicate", "watermark", "text=Hi&noreplicate=true", L,
     {"text": ("Hi", "northwest", 0.25, 0.05, "000000")}),
]  # fmt: skip


def _fields(endpoint: str, query: str, size: tuple[int, int]) -> dict:
    params = ip.read(dict(parse_qsl(query, keep_blank_values=True)))
    bimg, fields = iops.endpoint(endpoint, params)
    return {**iops.native(bimg, size if iops.needs_size(bimg) else None), **fields}


@pytest.mark.parametrize(("cited", "endpoint", "query", "size", "expected"), ENDPOINT_ROWS)
def test_endpoint_parses_to_native_options(cited, endpoint, query, size, expected) -> None:
    assert _fields(endpoint, query, size) == expected, cited


REFUSED_ROWS = [  # (endpoint, query, words of the message): required params and the unmappable
    ("resize", "", iops.Missing, "height or width"),
    ("fit", "width=300", iops.Missing, "height, width"),
    ("enlarge", "height=3", iops.Missing, "height, width"),
    ("extract", "top=10", iops.Missing, "areawidth or areaheight"),
    ("rotate", "", iops.Missing, "rotate"),
    ("zoom", "", iops.Missing, "factor"),
    ("convert", "", iops.Missing, "type"),
    ("blur", "", iops.Missing, "sigma or minampl"),
    ("watermark", "", iops.Missing, "text"),
    ("watermarkimage", "", iops.Missing, "image"),
    ("watermarkimage", "image=http://x/a.png", Unsupported, "'watermarkimage'"),
    ("convert", "type=svg", Unsupported, "'type=svg'"),
    ("convert", "type=bmp", ip.ParamError, "Unsupported output image format"),
    ("resize", "width=3&height=3&extend=mirror", Unsupported, "'extend=mirror'"),
    ("resize", "width=3&compression=9", Unsupported, "'compression'"),
    ("resize", "width=3&interlace=true", Unsupported, "'interlace'"),
    ("resize", "width=3&norotation=true", Unsupported, "'norotation'"),
    ("blur", "minampl=0.5", Unsupported, "'minampl'"),
    ("blur", "sigma=0.1", Unsupported, "'sigma=0.1'"),
    ("watermark", "text=a&font=sans%2012", Unsupported, "'font'"),
    ("watermark", "text=" + "a" * 201, ip.ParamError, "1 to 200 characters"),
    ("watermark", "text=a%0Ab", ip.ParamError, "control"),
    ("zoom", "factor=2&top=80&left=80&areawidth=300", Unsupported, "'zoom with an area'"),
    ("extract", "areawidth=3&areaheight=3&width=9", Unsupported, "'width/height with an area'"),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "query", "error", "words"), REFUSED_ROWS)
def test_what_cannot_be_done_is_refused_by_name(endpoint, query, error, words) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        _fields(endpoint, query, L)


def test_default_blur_amplitude_is_accepted() -> None:  # README: minampl 0.2 is libvips'
    assert _fields("blur", "sigma=2&minampl=0.2", L) == {"blur": 2.0}


# --- /pipeline: one native Options from the sequence, or a 400 naming the step

PIPELINE_ROWS = [
    (IMAGE_TEST + " TestImagePipelineOperations",
     [{"operation": "crop", "params": {"width": 300, "height": 260}},
      {"operation": "convert", "params": {"type": "webp"}}],
     {"fit": Fit("fill", 300, 260), "enlarge": True, "format": "webp"}),
    (CONTROLLERS + " Pipeline",
     [{"operation": "crop", "params": {"width": 300, "height": 260}},
      {"operation": "convert", "params": {"type": "webp"}}],
     {"fit": Fit("fill", 300, 260), "enlarge": True, "format": "webp"}),
    ("native order kept", [{"operation": "rotate", "params": {"rotate": 90}},
                           {"operation": "resize", "params": {"width": 200}},
                           {"operation": "blur", "params": {"sigma": 2}},
                           {"operation": "flop", "params": {}}],
     None),
    ("ignore_failure drops a step that cannot be read",
     [{"operation": "resize", "params": {"width": 200}},
      {"operation": "zoom", "params": {}, "ignore_failure": True}],
     {"fit": Fit("resize", 200, None)}),
    ("first step may depend on the source size",
     [{"operation": "crop", "params": {"width": 300}},
      {"operation": "blur", "params": {"sigma": 3}}],
     {"fit": Fit("fill", 300, 1080), "blur": 3.0}),
]  # fmt: skip


@pytest.mark.parametrize(("cited", "steps", "expected"), PIPELINE_ROWS[:2] + PIPELINE_ROWS[3:])
def test_pipeline_composes_into_one_options(cited, steps, expected) -> None:
    parsed = ip.parse_operations(json.dumps(steps))
    assert pipeline.compose(parsed, lambda n: L if n == 1 else None) == expected, cited


def test_pipeline_refuses_a_step_out_of_the_native_order() -> None:
    steps = ip.parse_operations(json.dumps(PIPELINE_ROWS[2][1]))
    with pytest.raises(Unsupported, match=r"step 4 \(flop\).*'flop' before .*step 3 \(blur\)"):
        pipeline.compose(steps, lambda n: None)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([{"operation": "resize", "params": {"width": 2}},
          {"operation": "resize", "params": {"width": 3}}], r"step 2 \(resize\).*step 1"),
        ([{"operation": "resize", "params": {"width": 2}},
          {"operation": "crop", "params": {"width": 3}}], r"step 2 \(crop\).*put it first"),
        ([{"operation": "sharpen", "params": {}}], "Unsupported operation name: sharpen"),
        ([{"operation": "flip"}] * 11, "Maximum allowed pipeline operations exceeded"),
        ([], "Missing or invalid pipeline operations JSON"),
        ([{"operation": "zoom", "params": {}}], "Missing required param: factor"),
    ],
)  # fmt: skip
def test_pipeline_refusals_name_the_step(steps, words) -> None:
    with pytest.raises((Unsupported, iops.Missing), match=words):
        pipeline.compose(ip.parse_operations(json.dumps(steps)), lambda n: L if n == 1 else None)


# --- signatures: README.md's example, computed independently

# `printf '%s' '/resizefile=image.jpg&height=200&type=jpeg&width=300' |
#  openssl dgst -sha256 -hmac 4f46feebafc4b5e988f131c4ff8b5997 -binary | base64url`
README_SIGNATURE = "ruEWRoFO-ic-L38vTsjqIYE6DLZ532CTaZXOh1gwuVo"


def test_signature_matches_the_readme_example() -> None:
    assert dialect.signature("/resize", "file=image.jpg&height=200&type=jpeg&width=300", KEY) == (
        README_SIGNATURE
    )
    # The query is re-sorted and `sign` left out, as imaginary's middleware does.
    shuffled = "width=300&sign=x&type=jpeg&file=image.jpg&height=200"
    assert dialect.signature("/resize", shuffled, KEY) == README_SIGNATURE


# --- over HTTP: real renders of generated images


def _jpeg(width: int, height: int) -> bytes:
    return gradient(width, height).jpegsave_buffer(Q=90)


@pytest.fixture(scope="module")
def large() -> bytes:
    return _jpeg(*L)


@pytest.fixture(scope="module")
def medium() -> bytes:
    return _jpeg(*M)


def _config(prefix: str = "/imaginary", key: str | None = None) -> dict:
    return {
        "dialects": {"imaginary": {"enabled": True, "prefix": prefix, "key": key}},
        "overlays": {"allow_unsigned_text": True},
        "sources": {"allow_private_networks": True},
    }


async def _stored(client, data: bytes) -> str:
    response = await client.put("/images", data=data)
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _image(response, size: tuple[int, int], fmt: str = "jpeg") -> None:
    body = await response.read()
    assert response.status == 200, body[:300]
    image = decode(body)
    assert (image.width, image.height) == size
    assert image.get("vips-loader").startswith(fmt + "load")


async def _imaginary_error(response, status: int, *words: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"message", "status"} and body["status"] == status
    for word in words:
        assert word in body["message"], body
    return body


HTTP_ROWS = [  # (source of the case, path and query, source image, expected size, type)
    (SERVER_TEST + " TestCrop", "/crop?width=300", "large", (300, 1080), "jpeg"),
    (SERVER_TEST + " TestResize", "/resize?width=300&nocrop=false", "large", (300, 1080), "jpeg"),
    (SERVER_TEST + " TestEnlarge", "/enlarge?width=300&height=200", "large", (300, 200), "jpeg"),
    (SERVER_TEST + " TestExtract", "/extract?top=100&left=100&areawidth=200&areaheight=120",
     "large", (200, 120), "jpeg"),
    (SERVER_TEST + " TestFit", "/fit?width=300&height=300", "large", (300, 169), "jpeg"),
    (IMAGE_TEST + " TestImageResize w+h", "/resize?width=300&height=300", "medium", (300, 300),
     "jpeg"),
    (IMAGE_TEST + " TestImageResize w", "/resize?width=300", "medium", (300, 404), "jpeg"),
    (IMAGE_TEST + " TestImageResize nocrop=false", "/resize?width=300&nocrop=false", "medium",
     (300, 740), "jpeg"),
    (IMAGE_TEST + " TestImageFit", "/fit?width=300&height=300", "medium", (223, 300), "jpeg"),
    (IMAGE_TEST + " TestImageAutoRotate", "/autorotate", "medium", (550, 740), "jpeg"),
    (CONTROLLERS + " Convert format", "/convert?type=png", "medium", (550, 740), "png"),
    (CONTROLLERS + " Rotate", "/rotate?rotate=90&type=webp", "medium", (740, 550), "webp"),
    (README + " /zoom", "/zoom?factor=2", "medium", (1100, 1480), "jpeg"),
    # A source smaller than the box: bimg's no-enlarge guard, its crops and forced sizes.
    (RESIZER + " guard", "/crop?width=300&height=300", "small", (200, 100), "jpeg"),
    (RESIZER + " guard", "/resize?width=300&height=300", "small", (200, 100), "jpeg"),
    (RESIZER + " guard", "/resize?width=3000", "small", (200, 100), "jpeg"),
    (RESIZER + " guard", "/fit?width=900&height=900", "small", (200, 100), "jpeg"),
    (RESIZER + " one side small", "/smartcrop?width=300&height=50", "small", (300, 50), "jpeg"),
    (RESIZER + " one side small", "/resize?width=300&height=50", "small", (300, 50), "jpeg"),
    (RESIZER + " crop to one side", "/crop?width=300", "small", (200, 100), "jpeg"),
    (RESIZER + " crop to one side", "/crop?height=60", "small", (200, 60), "jpeg"),
    (RESIZER + " normalizeOperation", "/thumbnail?width=900&height=900", "small", (900, 900),
     "jpeg"),
    (RESIZER + " rotated first", "/crop?width=50&rotate=90", "small", (50, 200), "jpeg"),
    (RESIZER + " rotation stops the forcing", "/rotate?rotate=90&width=300&height=300",
     "medium", (300, 223), "jpeg"),
]  # fmt: skip


@pytest.mark.parametrize(("cited", "target", "source", "size", "fmt"), HTTP_ROWS)
async def test_post_body_renders_to_imaginarys_sizes(
    app_client, large, medium, cited, target, source, size, fmt
) -> None:
    client = await app_client(**_config())
    body = {"large": large, "medium": medium, "small": _jpeg(200, 100)}[source]
    response = await client.post("/imaginary" + target, data=body,
                                 headers={"Content-Type": "image/jpeg"})  # fmt: skip
    await _image(response, size, fmt)
    assert response.headers["Cache-Control"] == "no-store"


async def test_multipart_file_field_and_stored_file_and_remote_url(
    app_client, aiohttp_server, large, medium
) -> None:
    client = await app_client(**_config())
    # POST multipart with the `file` field (source_body.go).
    form = FormData()
    form.add_field("file", medium, filename="imaginary.jpg", content_type="image/jpeg")
    await _image(await client.post("/imaginary/crop?width=200&height=200", data=form), (200, 200))
    # GET file= a stored id, through the native response path (ETag, Cache-Control).
    image_id = await _stored(client, large)
    response = await client.get(f"/imaginary/crop?width=300&file={image_id}")
    await _image(response, (300, 1080))
    etag = response.headers["ETag"]
    again = await client.get(f"/imaginary/crop?width=300&file={image_id}",
                             headers={"If-None-Match": etag})  # fmt: skip
    assert again.status == 304

    # GET url= from a real origin (server_test.go TestRemoteHTTPSource).
    async def photo(request: web.Request) -> web.Response:
        return web.Response(body=large, content_type="image/jpeg")

    origin = web.Application()
    origin.router.add_get("/a.jpg", photo)
    server = await aiohttp_server(origin, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}/a.jpg"
    response = await client.get("/imaginary/crop", params={"width": 200, "height": 200, "url": url})
    await _image(response, (200, 200))
    response = await client.get("/imaginary/smartcrop", params={"width": 300, "url": url})
    await _image(response, (300, 1080))
    # server_test.go TestInvalidRemoteHTTPSource: the origin answers 404.
    response = await client.get("/imaginary/crop", params={"width": 2, "url": url + "x"})
    await _imaginary_error(response, 404)


async def test_pipeline_over_http(app_client, large) -> None:  # image_test.go pipeline case
    client = await app_client(**_config())
    image_id = await _stored(client, large)
    ops_json = json.dumps(PIPELINE_ROWS[0][1])
    response = await client.get("/imaginary/pipeline", params={"operations": ops_json,
                                                                "file": image_id})  # fmt: skip
    await _image(response, (300, 260), "webp")
    first = json.dumps(PIPELINE_ROWS[4][1])
    response = await client.post("/imaginary/pipeline", params={"operations": first}, data=large)
    await _image(response, (300, 1080))
    wrong = json.dumps(PIPELINE_ROWS[2][1])
    response = await client.get("/imaginary/pipeline", params={"operations": wrong,
                                                                "file": image_id})  # fmt: skip
    await _imaginary_error(response, 400, "pipeline step 4 (flop)")


async def test_watermark_text_and_blur_change_pixels_not_size(app_client, medium) -> None:
    client = await app_client(**_config())
    image_id = await _stored(client, medium)
    plain = await client.get(f"/imaginary/resize?width=200&file={image_id}")
    plain = decode(await plain.read())
    marked = await client.get(
        f"/imaginary/watermark?text=Hello&opacity=1&width=200&file={image_id}"
    )
    await _image(marked, (200, 269))
    assert (decode(await marked.read()) - plain).abs().max() > 50
    blurred = await client.get(f"/imaginary/blur?sigma=5&file={image_id}")
    await _image(blurred, M)


async def test_pixels_land_where_imaginary_puts_them(app_client, medium) -> None:
    # The gradient's red grows left to right and its green top down (conftest.gradient).
    client = await app_client(**_config())
    image_id = await _stored(client, medium)

    async def pixel(target: str, x: int, y: int) -> list[float]:
        response = await client.get(f"/imaginary{target}&file={image_id}")
        assert response.status == 200
        return decode(await response.read())(x, y)

    assert pixel_close(await pixel("/flip?type=png", 0, 0), (0, 255))  # bottom row on top
    assert pixel_close(await pixel("/flop?type=png", 0, 0), (255, 0))  # right edge at left
    # A centred crop keeps the middle: 20x20 around (275, 370) of 550x740.
    assert pixel_close(await pixel("/crop?width=20&height=20&type=png", 10, 10), (128, 128))
    north = await pixel("/crop?width=550&height=100&gravity=north&type=png", 275, 0)
    assert pixel_close(north, (128, 0))
    # /extract takes the area at left/top, unscaled.
    area = await pixel("/extract?left=0&top=0&areawidth=10&areaheight=10&type=png", 0, 0)
    assert pixel_close(area, (0, 0))


# server_test.go TestTypeAuto: (Accept, imaginary's format, ProgImage's). ProgImage's `auto`
# is the native one (AVIF or WebP when Accept names them, else JPEG), whose answers the
# nginx cache classes keep apart; imaginary also picks PNG from Accept.
TYPE_AUTO_ROWS = [
    ("", "jpeg", "jpeg"),
    ("image/webp,*/*", "webp", "webp"),
    ("image/png,*/*", "png", "jpeg"),
    ("image/webp;q=0.8,image/jpeg", "webp", "webp"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,image/apng,*/*;q=0.8",
     "webp", "webp"),
]  # fmt: skip


@pytest.mark.parametrize(("accept", "theirs", "ours"), TYPE_AUTO_ROWS)
async def test_type_auto_negotiates_on_accept(app_client, large, accept, theirs, ours) -> None:
    client = await app_client(**_config())
    response = await client.post("/imaginary/crop?width=300&type=auto", data=large,
                                 headers={"Accept": accept})  # fmt: skip
    await _image(response, (300, 1080), ours)
    assert response.headers["Vary"] == "Accept"


async def test_type_auto_on_get_varies_and_caches_per_format(app_client, medium) -> None:
    client = await app_client(**_config())
    image_id = await _stored(client, medium)
    target = f"/imaginary/resize?width=300&type=auto&file={image_id}"
    webp = await client.get(target, headers={"Accept": "image/webp,*/*"})
    await _image(webp, (300, 404), "webp")
    assert "Accept" in webp.headers["Vary"]
    jpeg = await client.get(target, headers={"Accept": "image/jpeg"})
    await _image(jpeg, (300, 404))
    assert jpeg.headers["ETag"] != webp.headers["ETag"]


def pixel_close(rgb: list[float], red_green: tuple[int, int]) -> bool:
    return abs(rgb[0] - red_green[0]) <= 8 and abs(rgb[1] - red_green[1]) <= 8


async def test_text_follows_the_native_unsigned_text_rule(app_client, medium) -> None:
    client = await app_client(dialects={"imaginary": {"enabled": True}})
    response = await client.post("/imaginary/watermark?text=Hi", data=medium)
    await _imaginary_error(response, 403, "overlays.allow_unsigned_text")


async def test_info_in_imaginarys_shape(app_client, medium, png_alpha_bytes) -> None:
    client = await app_client(**_config())
    image_id = await _stored(client, medium)
    response = await client.get(f"/imaginary/info?file={image_id}")
    assert response.status == 200
    assert await response.json() == {  # README.md "GET | POST /info"
        "width": 550, "height": 740, "type": "jpeg", "space": "srgb", "hasAlpha": False,
        "hasProfile": False, "channels": 3, "orientation": 1,  # libvips writes EXIF
    }  # fmt: skip
    response = await client.post("/imaginary/info", data=png_alpha_bytes)
    info = await response.json()
    assert (info["type"], info["hasAlpha"], info["channels"]) == ("png", True, 4)


async def test_errors_come_in_imaginarys_shape(app_client, large) -> None:
    client = await app_client(**_config())
    image_id = await _stored(client, large)
    cases = [
        (client.get(f"/imaginary/resize?file={image_id}"), 400, "Missing required param"),
        (client.get(f"/imaginary/resize?width=abc&file={image_id}"), 400,
         'Error while processing parameters, error while processing parameter "width"'),
        (client.get("/imaginary/resize?width=20"), 400, "missing or invalid params"),
        (client.get("/imaginary/resize?width=20&file=../../large.jpg"), 400, "stored image id"),
        (client.get("/imaginary/resize?width=20&url=ftp://x/a.jpg"), 400, "Invalid image URL"),
        (client.get(f"/imaginary/resize?width=20&file={'0' * 32}"), 404, ""),
        (client.get(f"/imaginary/convert?type=svg&file={image_id}"), 400, "'type=svg'"),
        (client.get(f"/imaginary/watermarkimage?image=http://x/a.png&file={image_id}"), 400,
         "'watermarkimage'"),
        (client.get(f"/imaginary/resize?width=99999&file={image_id}"), 400, "99999"),
        (client.delete("/imaginary/resize"), 405, "method not allowed"),
        (client.post("/imaginary/resize?width=20", data=b"not an image"), 415, ""),
        (client.get("/imaginary/resize?width=20&url=http://127.0.0.1:9/a.jpg"), 502, ""),
    ]  # fmt: skip
    for request, status, words in cases:
        response = await request
        await _imaginary_error(response, status, words)
        assert response.headers["Cache-Control"] == "no-store"
    # Native routes beside them keep problem+json.
    native = await client.get("/resize/abc/" + image_id)
    assert native.content_type == "application/problem+json"


async def test_private_origins_stay_refused_under_the_native_ssrf_rules(app_client) -> None:
    client = await app_client(dialects={"imaginary": {"enabled": True}})
    response = await client.get("/imaginary/resize?width=20&url=http://127.0.0.1:9/a.jpg")
    await _imaginary_error(response, 403)


async def test_signed_and_keyed_requests(app_client, large) -> None:
    client = await app_client(**_config(key=KEY))
    image_id = await _stored(client, large)
    query = f"file={image_id}&height=200&type=jpeg&width=300"
    sign = dialect.signature("/resize", query, KEY)
    # The path imaginary signed (below the prefix), query in any order.
    ok = await client.get(f"/imaginary/resize?width=300&sign={sign}&height=200&type=jpeg"
                          f"&file={image_id}")  # fmt: skip
    await _image(ok, (300, 200))  # fitted, then embedded into the box
    await _imaginary_error(await client.get(f"/imaginary/resize?{query}&sign={sign[:-2]}AA"),
                           403, "URL signature mismatch")  # fmt: skip
    await _imaginary_error(await client.get(f"/imaginary/resize?{query}"), 403, "signature")
    await _imaginary_error(await client.get(f"/imaginary/resize?{query}&sign=%21%21"), 400,
                           "Invalid URL signature")  # fmt: skip
    # A signature covers the parameters: one more changes the image, so it is refused.
    await _imaginary_error(await client.get(f"/imaginary/resize?{query}&flip=true&sign={sign}"),
                           403)  # fmt: skip
    # The API key, as header or key=, instead of a signature (middleware.go authorizeClient).
    await _image(await client.get(f"/imaginary/resize?{query}", headers={"API-Key": KEY}),
                 (300, 200))  # fmt: skip
    await _image(await client.get(f"/imaginary/resize?{query}&key={KEY}"), (300, 200))
    await _imaginary_error(await client.get(f"/imaginary/resize?{query}&key=nope"), 401,
                           "Invalid or missing API key")  # fmt: skip
    response = await client.post("/imaginary/resize?width=30", data=large,
                                 headers={"API-Key": "nope"})  # fmt: skip
    await _imaginary_error(response, 401)
    response = await client.post("/imaginary/resize?width=30", data=large,
                                 headers={"API-Key": KEY})  # fmt: skip
    await _image(response, (30, 17))


async def test_at_the_root_beside_the_native_urls(app_client, large) -> None:
    client = await app_client(**_config(prefix=""))
    image_id = await _stored(client, large)
    await _image(await client.get(f"/resize?width=300&file={image_id}"), (300, 169))
    head = await client.head(f"/resize?width=300&file={image_id}")  # caches in front use HEAD
    assert head.status == 200 and head.content_type == "image/jpeg"
    await _image(await client.get(f"/resize/300x300/{image_id}"), (300, 169))  # native resize
    await _image(await client.get(f"/fill/100x100/{image_id}"), (100, 100))
    await _image(await client.post("/crop?width=64&height=64", data=large), (64, 64))
    await _image(await client.post("/resize/64x64", data=large), (64, 36))  # native on-demand
    info = await client.get(f"/info?file={image_id}")
    assert (await info.json())["width"] == 1920
    native_info = await client.get(f"/info/{image_id}")
    assert (await native_info.json())["id"] == image_id
    assert (await client.get("/health")).status == 200
    # Under the root, the native 404s stay native.
    assert (await client.get("/imaginary/resize")).content_type == "application/problem+json"


async def test_off_by_default(client, large) -> None:
    response = await client.get(URL("/imaginary/resize?width=2", encoded=True))
    assert response.content_type == "application/problem+json"
