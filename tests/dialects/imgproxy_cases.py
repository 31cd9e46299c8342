"""imgproxy's own parsing cases and documentation URLs, as data: a path (after the signature
segment) and what ProgImage makes of it.

Each row: (origin, path, expected). `origin` names the file, the test or line, and the commit
the case came from. `expected` is either the native fields that differ from their defaults
plus "source" (the SourceRef value), or REFUSED with words the 400's detail must contain.
imgproxy's parsing tests check its own option keys; the rows say the same settings in
native terms. Where imgproxy's case sets nothing visible (a gravity with no resize to crop),
a second row adds a resize so the mapping shows; its origin says "(with …)".

Presets in imgproxy's cases are written in imgproxy's syntax; ProgImage's presets are native
operations (presets.definitions), so PRESETS holds native stand-ins of the same intent.
"""

from __future__ import annotations

import base64

from proxy.arguments import Fit

IMGPROXY = "imgproxy/imgproxy@eef3b31299727e05cb7d35c02cfbb009666dafa6"
TESTS = f"{IMGPROXY}:options/parser/processing_options_test.go"
PARSER = f"{IMGPROXY}:options/parser/processing_options.go"
SIGNATURE_TESTS = f"{IMGPROXY}:security/signature_test.go"
DOCS = "imgproxy/imgproxy-docs@752e7bb7af3b8436de1799eb162bafb56f505913"
PROCESSING = f"{DOCS}:docs/usage/processing.mdx"

REFUSED = "refused"
LOREM = "http://images.dev/lorem/ipsum.jpg"
LOREM_QUERY = "http://images.dev/lorem/ipsum.jpg?param=value"
CURIOSITY = "http://example.com/images/curiosity.jpg"
STORED = "0123456789abcdef0123456789abcdef"
WATERMARK = STORED  # the settings' dialects.imgproxy.watermark in these rows


def b64(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).rstrip(b"=").decode()


PRESETS = {
    "test1": "/fill/120x80",  # imgproxy's test1: resizing_type:fill
    "test2": "/blur/0.5/q/50",  # imgproxy's test2: blur:0.2/quality:50 (0.2 is below 0.3)
    "sharp": "/sharpen/1.5",  # the docs' `sharp`, left undefined there
}
DEFAULT_PRESET = {"default": "/fill/120x80/blur/0.5/q/50"}  # TestParsePathPresetDefault's

# (origin, path after the signature, expected)
PARSING = [
    (f"{TESTS} TestParseBase64URL", f"/size:100:100/{b64(LOREM_QUERY)}.png",
     {"fit": Fit("resize", 100, 100), "format": "png", "source": LOREM_QUERY}),
    (f"{TESTS} TestParseBase64URLWithoutExtension", f"/size:100:100/{b64(LOREM_QUERY)}",
     {"fit": Fit("resize", 100, 100), "source": LOREM_QUERY}),
    (f"{TESTS} TestParsePlainURL", f"/size:100:100/plain/{LOREM}@png",
     {"fit": Fit("resize", 100, 100), "format": "png", "source": LOREM}),
    (f"{TESTS} TestParsePlainURLWithoutExtension", f"/size:100:100/plain/{LOREM}",
     {"fit": Fit("resize", 100, 100), "source": LOREM}),
    # url.PathEscape escapes '/', ';', ',' and '?'
    (f"{TESTS} TestParsePlainURLEscaped",
     "/size:100:100/plain/http:%2F%2Fimages.dev%2Florem%2Fipsum.jpg%3Fparam=value@png",
     {"fit": Fit("resize", 100, 100), "format": "png", "source": LOREM_QUERY}),
    (f"{TESTS} TestParsePathFormat", f"/format:webp/plain/{LOREM}",
     {"format": "webp", "source": LOREM}),
    (f"{TESTS} TestParsePathResize", f"/resize:fill:100:200:1/plain/{LOREM}",
     {"fit": Fit("fill", 100, 200), "enlarge": True, "source": LOREM}),
    # A resizing type without a size resizes nothing.
    (f"{TESTS} TestParsePathResizingType", f"/resizing_type:fill/plain/{LOREM}",
     {"source": LOREM}),
    (f"{TESTS} TestParsePathResizingType (with w:100:h:50)",
     f"/resizing_type:fill/w:100/h:50/plain/{LOREM}",
     {"fit": Fit("fill", 100, 50), "source": LOREM}),
    (f"{TESTS} TestParsePathSize", f"/size:100:200:1/plain/{LOREM}",
     {"fit": Fit("resize", 100, 200), "enlarge": True, "source": LOREM}),
    (f"{TESTS} TestParsePathWidth", f"/width:100/plain/{LOREM}",
     {"fit": Fit("resize", 100, None), "source": LOREM}),
    (f"{TESTS} TestParsePathHeight", f"/height:100/plain/{LOREM}",
     {"fit": Fit("resize", None, 100), "source": LOREM}),
    (f"{TESTS} TestParsePathEnlarge", f"/enlarge:1/plain/{LOREM}", {"source": LOREM}),
    (f"{TESTS} TestParsePathEnlarge (with w:100)", f"/enlarge:1/w:100/plain/{LOREM}",
     {"fit": Fit("resize", 100, None), "enlarge": True, "source": LOREM}),
    (f"{TESTS} TestParsePathExtend", f"/extend:1:so:10:20/plain/{LOREM}",
     (REFUSED, "so:10:20", "offsets")),
    (f"{TESTS} TestParsePathExtend (without offsets, with rs:fit:100:80)",
     f"/rs:fit:100:80/extend:1:so/plain/{LOREM}",
     {"fit": Fit("pad", 100, 80), "gravity": "south", "source": LOREM}),
    (f"{TESTS} TestParsePathExtendSmartGravity", f"/extend:1:sm/plain/{LOREM}",
     (REFUSED, "extend:sm")),
    (f"{TESTS} TestParsePathExtendReplicateGravity", f"/extend:1:re/plain/{LOREM}",
     (REFUSED, "extend:re")),
    (f"{TESTS} TestParsePathGravity", f"/gravity:soea/plain/{LOREM}", {"source": LOREM}),
    (f"{TESTS} TestParsePathGravity (with rs:fill:50:50)",
     f"/rs:fill:50:50/gravity:soea/plain/{LOREM}",
     {"fit": Fit("fill", 50, 50), "gravity": "southeast", "source": LOREM}),
    (f"{TESTS} TestParsePathGravityFocusPoint (with rs:fill:50:50)",
     f"/rs:fill:50:50/gravity:fp:0.5:0.75/plain/{LOREM}",
     {"fit": Fit("fill", 50, 50), "gravity": (0.5, 0.75), "source": LOREM}),
    (f"{TESTS} TestParsePathGravityReplicate", f"/gravity:re/plain/{LOREM}",
     (REFUSED, "gravity:re")),
    # A centred crop in pixels: placed from the source's size (4000×3000 in these rows).
    (f"{TESTS} TestParsePathCrop", f"/crop:100:200/plain/{LOREM}",
     {"crop": (1950, 1400, 100, 200), "source": LOREM}),
    (f"{TESTS} TestParsePathCrop (at nowe)", f"/crop:100:200:nowe/plain/{LOREM}",
     {"crop": (0, 0, 100, 200), "source": LOREM}),
    (f"{TESTS} TestParsePathCropGravity", f"/crop:100:200:nowe:10:20/plain/{LOREM}",
     (REFUSED, "nowe:10:20", "offsets")),
    (f"{TESTS} TestParsePathCropGravityReplicate", f"/crop:100:200:re/plain/{LOREM}",
     (REFUSED, "crop:re")),
    (f"{TESTS} TestParsePathQuality", f"/quality:55/plain/{LOREM}",
     {"quality": 55, "source": LOREM}),
    (f"{TESTS} TestParsePathBackground", f"/background:128:129:130/plain/{LOREM}",
     {"bg": "808182", "source": LOREM}),
    (f"{TESTS} TestParsePathBackgroundHex", f"/background:ffddee/plain/{LOREM}",
     {"bg": "ffddee", "source": LOREM}),
    (f"{TESTS} TestParsePathBackgroundDisable",
     f"/background:fff/background:/plain/{LOREM}", {"source": LOREM}),
    (f"{TESTS} TestParsePathBlur", f"/blur:0.2/plain/{LOREM}",
     (REFUSED, "blur:0.2", "0.3")),
    (f"{TESTS} TestParsePathSharpen", f"/sharpen:0.2/plain/{LOREM}",
     (REFUSED, "sharpen:0.2", "0.5")),
    (f"{TESTS} TestParsePathDpr (with rs:fit:100:100)", f"/rs:fit:100:100/dpr:2/plain/{LOREM}",
     {"fit": Fit("resize", 100, 100), "dpr": 2.0, "source": LOREM}),
    (f"{TESTS} TestParsePathWatermark", f"/watermark:0.5:soea:10:20:0.6/plain/{LOREM}",
     (REFUSED, "watermark:0.5:soea:10:20:0.6", "offsets")),
    (f"{TESTS} TestParsePathWatermark (without offsets)",
     f"/watermark:0.5:soea:0:0:0.6/plain/{LOREM}",
     {"watermark": (WATERMARK, "southeast", 0.5, 0.6),
      "source": LOREM}),
    (f"{TESTS} TestParsePathPreset", f"/preset:test1:test2/plain/{LOREM}",
     {"fit": Fit("fill", 120, 80), "blur": 0.5, "quality": 50, "source": LOREM}),
    (f"{TESTS} TestParsePathCachebuster", f"/cachebuster:123/plain/{LOREM}",
     {"source": LOREM}),
    # imgproxy's keep_copyright defaults to true.
    (f"{TESTS} TestParsePathStripMetadata", f"/strip_metadata:true/plain/{LOREM}",
     {"meta": "copyright", "source": LOREM}),
    (f"{TESTS} TestParsePathPreserveHDR", f"/ph:1/plain/{LOREM}", (REFUSED, "ph:1", "HDR")),
    (f"{TESTS} TestParsePathWebpDetection", f"/plain/{LOREM}", {"source": LOREM}),
    (f"{TESTS} TestParsePathWebpEnforce", f"/plain/{LOREM}@png",
     {"format": "png", "source": LOREM}),
    (f"{TESTS} TestParsePathClientHintsRedefine", f"/width:150/dpr:3.0/plain/{LOREM}@png",
     {"fit": Fit("resize", 150, None), "dpr": 3.0, "format": "png", "source": LOREM}),
    (f"{TESTS} TestParseSkipProcessing", f"/skp:jpg:png/plain/{LOREM}",
     (REFUSED, "skp:jpg:png")),
    (f"{TESTS} TestParseExpires", f"/exp:32503669200/plain/{LOREM}",
     {"expires": 32503669200, "source": LOREM}),
    # Parsed; the native path answers 403 once the time has passed (tested over HTTP).
    (f"{TESTS} TestParseExpiresExpired", f"/exp:1609448400/plain/{LOREM}",
     {"expires": 1609448400, "source": LOREM}),
    # Without presets.only, a presets-only URL names options that do not exist.
    (f"{TESTS} TestParsePathOnlyPresets (without presets.only)", f"/test1:test2/plain/{LOREM}@png",
     (REFUSED, "test1", "not an imgproxy option")),
    (f"{TESTS} TestParseAllowedOptions", f"/w:100/h:200/{b64(LOREM_QUERY)}.png",
     {"fit": Fit("resize", 100, 200), "format": "png", "source": LOREM_QUERY}),
    # --- the documentation's URLs
    (f"{PROCESSING}:1361", f"/preset:sharp/resize:fill:300:400:0/gravity:sm/plain/{CURIOSITY}@png",
     {"fit": Fit("fill", 300, 400), "gravity": "smart", "sharpen": 1.5, "format": "png",
      "source": CURIOSITY}),
    (f"{PROCESSING}:1367", f"/pr:sharp/rs:fill:300:400:0/g:sm/plain/{CURIOSITY}@png",
     {"fit": Fit("fill", 300, 400), "gravity": "smart", "sharpen": 1.5, "format": "png",
      "source": CURIOSITY}),
    (f"{PROCESSING}:1373",
     "/pr:sharp/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
     {"fit": Fit("fill", 300, 400), "gravity": "smart", "sharpen": 1.5, "format": "png",
      "source": CURIOSITY}),
    (f"{DOCS}:docs/usage/signing_url.mdx:47",
     "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
     {"fit": Fit("fill", 300, 400), "gravity": "smart", "format": "png", "source": CURIOSITY}),
    (f"{DOCS}:docs/image_sources/local_files.mdx:33",
     "/rs:fit:300:200/plain/local:///logos/imgproxy.png@jpg",
     {"fit": Fit("resize", 300, 200), "format": "jpeg", "source": "local:///logos/imgproxy.png"}),
    (f"{DOCS}:docs/usage/encrypting_source_url.mdx:104",
     "/rs:fit:300:300/enc/p5VjorNdhs7mRRw8gA9TWoRlGci3l1kuzqN43UQlRaRIQ0qtBKW3qFABIsx-ZRz",
     (REFUSED, "enc", "encrypted")),
    (f"{DOCS}:docs/usage/presets.mdx:34",
     f"/thumbnail:blurry:watermarked/plain/{CURIOSITY}@png", (REFUSED, "thumbnail")),
    # --- each option of the documentation's list, by its long and short names
    (f"{PROCESSING}:58", f"/resize:force:100:50/plain/{LOREM}",
     {"fit": Fit("stretch", 100, 50), "source": LOREM}),
    (f"{PROCESSING}:59", f"/rs:fill-down:100:50/plain/{LOREM}",
     {"fit": Fit("fill", 100, 50), "source": LOREM}),
    (f"{PROCESSING}:67", f"/size:100:0/plain/{LOREM}",
     {"fit": Fit("resize", 100, None), "source": LOREM}),
    (f"{PROCESSING}:68", f"/s:0:100:1:1/plain/{LOREM}",
     {"fit": Fit("fill", 133, 100), "source": LOREM}),
    (f"{PROCESSING}:77", f"/rt:auto/w:100/h:100/plain/{LOREM}",
     {"fit": Fit("fill", 100, 100), "source": LOREM}),
    (f"{PROCESSING}:77 (auto with one side)", f"/rt:auto/w:100/plain/{LOREM}",
     {"fit": Fit("resize", 100, None), "source": LOREM}),
    (f"{PROCESSING}:105", f"/w:0/h:0/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:126", f"/min-width:100/plain/{LOREM}", (REFUSED, "min-width:100")),
    (f"{PROCESSING}:157", f"/z:2/plain/{LOREM}", (REFUSED, "z:2", "zooming")),
    (f"{PROCESSING}:176", f"/rs:fit:100:100/dpr:0.5/plain/{LOREM}",
     (REFUSED, "dpr:0.5", "1 to 4")),
    (f"{PROCESSING}:191", f"/el:t/rs:fill:10:10/plain/{LOREM}",
     {"fit": Fit("fill", 10, 10), "enlarge": True, "source": LOREM}),
    (f"{PROCESSING}:202", f"/rs:fill:100:100/ex:1/plain/{LOREM}",
     {"fit": Fit("fill", 100, 100), "source": LOREM}),
    (f"{PROCESSING}:202 (fill, enlarged)", f"/rs:fill:100:100:1/ex:1/plain/{LOREM}",
     {"fit": Fit("fill", 100, 100), "enlarge": True, "source": LOREM}),
    (f"{PROCESSING}:215", f"/exar:1/plain/{LOREM}", (REFUSED, "exar:1")),
    (f"{PROCESSING}:227", f"/rs:fill:50:50/g:no/plain/{LOREM}",
     {"fit": Fit("fill", 50, 50), "gravity": "north", "source": LOREM}),
    (f"{PROCESSING}:227 (offsets of 0)", f"/rs:fill:50:50/g:we:0:0/plain/{LOREM}",
     {"fit": Fit("fill", 50, 50), "gravity": "west", "source": LOREM}),
    (f"{PROCESSING}:251 (obj, an imgproxy Pro gravity)", f"/g:obj:face/plain/{LOREM}",
     (REFUSED, "g:obj:face")),
    (f"{PROCESSING}:288", f"/c:0.5:0.5/plain/{LOREM}",
     {"crop": (0.25, 0.25, 0.5, 0.5), "source": LOREM}),
    (f"{PROCESSING}:288 (fractions at soea)", f"/c:0.5:0.25:soea/plain/{LOREM}",
     {"crop": (0.5, 0.75, 0.5, 0.25), "source": LOREM}),
    (f"{PROCESSING}:288 (0 is the whole side)", f"/c:0:100:no/plain/{LOREM}",
     {"crop": (0, 0, 1.0, 100), "source": LOREM}),
    (f"{PROCESSING}:288 (a focus point)", f"/c:0.5:0.5:fp:0.9:0.1/plain/{LOREM}",
     {"crop": (0.5, 0, 0.5, 0.5), "source": LOREM}),
    (f"{PROCESSING}:288 (smart)", f"/c:0.5:0.5:sm/plain/{LOREM}",
     (REFUSED, "crop gravity sm")),
    (f"{PROCESSING}:288 (turned)", f"/c:0.5:0.5/rot:90/plain/{LOREM}",
     (REFUSED, "crop", "rotate or flip")),
    (f"{PROCESSING}:319", f"/trim:10/plain/{LOREM}", {"trim": 10, "source": LOREM}),
    (f"{PROCESSING}:320", f"/t:10:FF00FF/plain/{LOREM}", (REFUSED, "t:10:FF00FF", "colour")),
    (f"{PROCESSING}:320 (equal sides)", f"/t:10::1/plain/{LOREM}", (REFUSED, "equally")),
    (f"{PROCESSING}:349", f"/padding:10/plain/{LOREM}",
     {"padding": (10, 10, 10, 10), "source": LOREM}),
    (f"{PROCESSING}:350", f"/pd:1:2/plain/{LOREM}", {"padding": (1, 2, 1, 2), "source": LOREM}),
    (f"{PROCESSING}:350 (four sides)", f"/pd:1:2:3:4/plain/{LOREM}",
     {"padding": (1, 2, 3, 4), "source": LOREM}),
    (f"{PROCESSING}:371", f"/auto_rotate:1/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:372", f"/ar:0/plain/{LOREM}", (REFUSED, "ar:0", "orientation")),
    (f"{PROCESSING}:380", f"/rotate:90/plain/{LOREM}", {"rotate": 90, "source": LOREM}),
    (f"{PROCESSING}:381", f"/rot:-90/plain/{LOREM}", {"rotate": 270, "source": LOREM}),
    (f"{PROCESSING}:381 (not a multiple of 90)", f"/rot:45/plain/{LOREM}",
     (REFUSED, "rot:45", "multiple of 90")),
    (f"{PROCESSING}:395", f"/flip:1:0/plain/{LOREM}", {"flop": True, "source": LOREM}),
    (f"{PROCESSING}:396", f"/fl::true/plain/{LOREM}", {"flip": True, "source": LOREM}),
    (f"{PROCESSING}:410", f"/bg:0:0:255/plain/{LOREM}", {"bg": "0000ff", "source": LOREM}),
    (f"{PROCESSING}:413", f"/bg:f0a/plain/{LOREM}", {"bg": "ff00aa", "source": LOREM}),
    (f"{PROCESSING}:426 (background_alpha, Pro)", f"/bga:0.5/plain/{LOREM}",
     (REFUSED, "bga")),
    (f"{PROCESSING}:506", f"/blur:2/plain/{LOREM}", {"blur": 2.0, "source": LOREM}),
    (f"{PROCESSING}:507 (0 is none)", f"/bl:0/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:518", f"/sh:1.5/plain/{LOREM}", {"sharpen": 1.5, "source": LOREM}),
    (f"{PROCESSING}:530", f"/pixelate:8/plain/{LOREM}", {"pixelate": 8, "source": LOREM}),
    (f"{PROCESSING}:531", f"/pix:1/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:663", f"/wm:1:re:0:0:0.2/plain/{LOREM}",
     {"watermark": (WATERMARK, "tile", 1.0, 0.2), "source": LOREM}),
    (f"{PROCESSING}:663 (own size)", f"/wm:0.5:ce/plain/{LOREM}",
     (REFUSED, "wm:0.5:ce", "own size")),
    (f"{PROCESSING}:663 (0 opacity is none)", f"/wm:0/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:771", f"/strip_metadata:false/plain/{LOREM}",
     {"meta": "keep", "source": LOREM}),
    (f"{PROCESSING}:781", f"/sm:1/kcr:0/plain/{LOREM}", {"meta": "strip", "source": LOREM}),
    (f"{PROCESSING}:804", f"/scp:1/plain/{LOREM}", (REFUSED, "scp:1")),
    (f"{PROCESSING}:858", f"/quality:0/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:870", f"/fq:jpeg:80/plain/{LOREM}", (REFUSED, "fq:jpeg:80")),
    (f"{PROCESSING}:891", f"/max_bytes:20000/plain/{LOREM}",
     {"maxbytes": 20000, "source": LOREM}),
    (f"{PROCESSING}:892 (below the native 1024)", f"/mb:500/plain/{LOREM}",
     (REFUSED, "mb:500", "1024")),
    (f"{PROCESSING}:946", f"/format:jpg/plain/{LOREM}", {"format": "jpeg", "source": LOREM}),
    (f"{PROCESSING}:947", f"/f:jxl/plain/{LOREM}", {"format": "jxl", "source": LOREM}),
    (f"{PROCESSING}:947 (a format ProgImage does not write)", f"/f:ico/plain/{LOREM}",
     (REFUSED, "f:ico", "output formats")),
    (f"{PROCESSING}:948 (the extension wins)", f"/ext:webp/plain/{LOREM}@avif",
     {"format": "avif", "source": LOREM}),
    (f"{PROCESSING}:959 (page, Pro)", f"/pg:2/plain/{LOREM}", (REFUSED, "pg")),
    (f"{PROCESSING}:1173", f"/fn:my-photo/att:1/plain/{LOREM}",
     {"download": "my-photo", "source": LOREM}),
    (f"{PROCESSING}:1173 (base64)", f"/fn:{b64('cat.png')}:1/att:true/plain/{LOREM}",
     {"download": "cat", "source": LOREM}),
    (f"{PROCESSING}:1187", f"/att:1/plain/{LOREM}",
     {"download": "ipsum", "source": LOREM}),
    (f"{PROCESSING}:1172 (without attachment)", f"/fn:my-photo/plain/{LOREM}",
     (REFUSED, "filename", "return_attachment")),
    (f"{PROCESSING}:1125", f"/cb:v2/plain/{LOREM}", {"source": LOREM}),
    (f"{PROCESSING}:1294 (a stored image id)", f"/rs:fit:50:50/plain/{STORED}",
     {"fit": Fit("resize", 50, 50), "source": STORED}),
    (f"{PROCESSING}:1294 (a URL without scheme)", "/plain/example.com/a.jpg",
     {"source": "https://example.com/a.jpg"}),
    (f"{PARSER} parsePathOptions (the basic URL format)",
     f"/fill/300/400/sm/0/{b64(CURIOSITY)}.png", (REFUSED, "fill", "basic URL")),
    (f"{PARSER} applyURLOption (an unknown option)", f"/frobnicate:1/plain/{LOREM}",
     (REFUSED, "frobnicate", "not an imgproxy option")),
]  # fmt: skip

# Parsed with presets.only set (imgproxy's IMGPROXY_ONLY_PRESETS).
ONLY_PRESETS = [
    (f"{TESTS} TestParsePathOnlyPresets", f"/test1:test2/plain/{LOREM}@png",
     {"fit": Fit("fill", 120, 80), "blur": 0.5, "quality": 50, "format": "png",
      "source": LOREM}),
    (f"{TESTS} TestParseBase64URLOnlyPresets", f"/test1:test2/{b64(LOREM_QUERY)}.png",
     {"fit": Fit("fill", 120, 80), "blur": 0.5, "quality": 50, "format": "png",
      "source": LOREM_QUERY}),
    (f"{DOCS}:docs/usage/presets.mdx:34", f"/thumbnail:blurry:watermarked/plain/{CURIOSITY}@png",
     (REFUSED, "preset:thumbnail", "no such preset")),
    (f"{TESTS} TestParsePathOnlyPresets (an option where presets go)",
     f"/w:100/plain/{LOREM}", (REFUSED, "preset:w", "no such preset")),
    (f"{TESTS} TestParsePathOnlyPresets (one preset)", f"/test1/plain/{LOREM}",
     {"fit": Fit("fill", 120, 80), "source": LOREM}),
]  # fmt: skip

# (origin, key hex, salt hex, path after the signature, signature)
SIGNATURES = [
    (f"{SIGNATURE_TESTS} TestVerifySignature", b"test-key".hex(), b"test-salt".hex(),
     "/asd", "oWaL7QoW5TsgbuiS9-5-DI8S3Ibbo1gdB2SteJh3a20"),
    (f"{DOCS}:docs/usage/signing_url.mdx:73", "736563726574", "68656c6c6f",
     "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
     "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"),
]  # fmt: skip

# imgproxy's own result sizes: processing/processing_test.go resizes its 200×100
# testdata/geometry.png with `resize:{type}:{w}:{h}` (+ `enlarge:1`, `extend:1`). Each row:
# (origin, type, enlarge, extend, width, height, imgproxy's size).
PROCESSING_TESTS = f"{IMGPROXY}:processing/processing_test.go"


def _table(test: str, rt: str, enlarge: bool, extend: bool, rows) -> list[tuple]:
    return [
        (f"{PROCESSING_TESTS} {test} {w}x{h}", rt, enlarge, extend, w, h, size)
        for w, h, size in rows
    ]


SIZES = [
    *_table("TestResizeToFit", "fit", False, False, [
        (50, 50, (50, 25)), (50, 20, (40, 20)), (20, 50, (20, 10)),
        (300, 300, (200, 100)), (300, 50, (100, 50)), (100, 300, (100, 50)),
        (0, 50, (100, 50)), (50, 0, (50, 25)), (0, 200, (200, 100)),
        (300, 0, (200, 100)),
    ]),
    *_table("TestResizeToFitEnlarge", "fit", True, False, [
        (50, 50, (50, 25)), (50, 20, (40, 20)), (20, 50, (20, 10)),
        (300, 300, (300, 150)), (300, 125, (250, 125)),
        (250, 300, (250, 125)), (0, 50, (100, 50)), (50, 0, (50, 25)),
        (0, 200, (400, 200)), (300, 0, (300, 150)),
    ]),
    *_table("TestResizeToFitExtend", "fit", False, True, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (300, 300)), (300, 125, (300, 125)),
        (250, 300, (250, 300)),
        (0, 50, (100, 50)), (50, 0, (50, 25)), (0, 200, (200, 200)),
        (300, 0, (300, 100)),
    ]),
    *_table("TestResizeToFill", "fill", False, False, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (200, 100)), (300, 50, (200, 50)),
        (100, 300, (100, 100)),
        (0, 50, (100, 50)), (50, 0, (50, 25)), (0, 200, (200, 100)),
        (300, 0, (200, 100)),
    ]),
    *_table("TestResizeToFillEnlarge", "fill", True, False, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (300, 300)), (300, 125, (300, 125)),
        (250, 300, (250, 300)), (0, 50, (100, 50)), (50, 0, (50, 25)),
        (0, 200, (400, 200)), (300, 0, (300, 150)),
    ]),
    *_table("TestResizeToFillExtend", "fill", False, True, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (300, 300)), (300, 125, (300, 125)),
        (250, 300, (250, 300)), (300, 50, (300, 50)),
        (100, 300, (100, 300)), (0, 50, (100, 50)),
        (50, 0, (50, 25)), (0, 200, (200, 200)),
        (300, 0, (300, 100)),
    ]),
    *_table("TestResizeToFillDown", "fill-down", False, False, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (100, 100)), (300, 125, (200, 83)), (250, 300, (83, 100)),
        (0, 50, (100, 50)), (50, 0, (50, 25)), (0, 200, (200, 100)),
        (300, 0, (200, 100)),
    ]),
    *_table("TestResizeToFillDownEnlarge", "fill-down", True, False, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (300, 300)), (300, 125, (300, 125)),
        (250, 300, (250, 300)), (0, 50, (100, 50)), (50, 0, (50, 25)),
        (0, 200, (400, 200)), (300, 0, (300, 150)),
    ]),
    *_table("TestResizeToFillDownExtend", "fill-down", False, True, [
        (50, 50, (50, 50)), (50, 20, (50, 20)), (20, 50, (20, 50)),
        (300, 300, (300, 300)), (300, 125, (300, 125)),
        (250, 300, (250, 300)), (300, 50, (300, 50)),
        (100, 300, (100, 300)), (0, 50, (100, 50)),
        (50, 0, (50, 25)), (0, 200, (200, 200)),
        (300, 0, (300, 100)),
    ]),
]  # fmt: skip
# Not ported: the ExtendAR tables and TestResultSizeLimit need `extend_aspect_ratio` and
# `max_result_dimension`, which the dialect refuses by name (rows in PARSING above).
