"""proxy/embedded.py: what metadata each `meta/` mode lets through, read back from encoded bytes.

The source EXIF is built by hand (libvips cannot write maker notes or a thumbnail IFD), the
rest with pyvips; outputs are read back with the small independent parsers below, so the
module is not checked against itself.
"""

from __future__ import annotations

import random
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import pyvips

from proxy import embedded, imaging

IMAGES = Path(__file__).parent / "images"
Keep = pyvips.enums.ForeignKeep

ASCII, SHORT, LONG, RATIONAL, UNDEFINED, BYTE = 2, 3, 4, 5, 7, 1
SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}
ARTIST, COPYRIGHT, MAKE, MODEL, ORIENTATION = 0x013B, 0x8298, 0x010F, 0x0110, 0x0112
EXIF_IFD, GPS_IFD, INTEROP_IFD, MAKER_NOTE = 0x8769, 0x8825, 0xA005, 0x927C
DATE_ORIGINAL = 0x9003
# What libvips' saver adds to any EXIF it writes (see the module docstring).
LIBVIPS_IFD0 = {ORIENTATION, 0x011A, 0x011B, 0x0128, 0x0213, EXIF_IFD}
LIBVIPS_EXIF = {0x9000, 0x9101, 0xA000, 0xA001, 0xA002, 0xA003}

ARTIST_TEXT = "Ann Example"
COPYRIGHT_TEXT = "(c) 2024 Ann Example"
# Strings that must never reach an output, or only with `keep`, searched in the raw bytes.
NEVER = (b"MAKERNOTE-SECRET", b"THUMBNAIL-SECRET", b"GPS")
KEEP_ONLY = (b"ACME-MAKE", b"MODEL-X", b"XMP-DESCRIPTION", b"IPTC-CAPTION", b"London")

NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "exifEX": "http://cipa.jp/exif/1.0/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
}
XMP = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="test">
 <rdf:RDF xmlns:rdf="{NS["rdf"]}">
  <rdf:Description rdf:about="" xmlns:dc="{NS["dc"]}" xmlns:xmp="{NS["xmp"]}"
    xmlns:exif="{NS["exif"]}" xmlns:exifEX="{NS["exifEX"]}"
    xmp:CreatorTool="TOOL-Z" exif:GPSLongitude="0,7.66W" exifEX:GPSHPositioningError="5/1">
   <dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{COPYRIGHT_TEXT}</rdf:li></rdf:Alt></dc:rights>
   <dc:creator><rdf:Seq><rdf:li>{ARTIST_TEXT}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">XMP-DESCRIPTION &amp; more</rdf:li>
   </rdf:Alt></dc:description>
   <exif:GPSLatitude>51,30.44N</exif:GPSLatitude>
   <xmp:Thumbnails><rdf:Alt><rdf:li rdf:parseType="Resource">
    <xmp:format>JPEG</xmp:format></rdf:li></rdf:Alt></xmp:Thumbnails>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{NS["Iptc4xmpExt"]}" xmlns:exif="{NS["exif"]}">
   <Iptc4xmpExt:LocationCreated><rdf:Bag><rdf:li rdf:parseType="Resource">
    <Iptc4xmpExt:City>London</Iptc4xmpExt:City><exif:GPSLatitude>51,30.44N</exif:GPSLatitude>
   </rdf:li></rdf:Bag></Iptc4xmpExt:LocationCreated>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>""".encode()

IIM = [
    ((1, 90), b"\x1b%G"),  # UTF-8
    ((2, 0), b"\x00\x04"),
    ((2, 80), ARTIST_TEXT.encode()),
    ((2, 116), COPYRIGHT_TEXT.encode()),
    ((2, 120), b"IPTC-CAPTION of the picture"),
]


# --- building sources ------------------------------------------------------------------


def dataset(key: tuple[int, int], value: bytes) -> bytes:
    return bytes((0x1C, *key)) + struct.pack(">H", len(value)) + value


def photoshop(resources: list[tuple[int, bytes]]) -> bytes:
    body = b""
    for rid, data in resources:
        body += b"8BIM" + struct.pack(">HHI", rid, 0, len(data)) + data + b"\0" * (len(data) & 1)
    return b"Photoshop 3.0\0" + body


IPTC = photoshop(
    [(0x040C, b"PS-THUMBNAIL-SECRET GPS"), (0x0404, b"".join(dataset(k, v) for k, v in IIM))]
)


def ascii_(text: str) -> tuple[int, int, bytes]:
    data = text.encode() + b"\0"
    return ASCII, len(data), data


def short(order: str, value: int) -> tuple[int, int, bytes]:
    return SHORT, 1, struct.pack(order + "H", value)


def rationals(order: str, *pairs: tuple[int, int]) -> tuple[int, int, bytes]:
    return RATIONAL, len(pairs), b"".join(struct.pack(order + "II", n, d) for n, d in pairs)


def pack_ifd(order: str, entries: dict, start: int, following: int) -> bytes:
    data_at = start + 6 + 12 * len(entries)
    table, data = struct.pack(order + "H", len(entries)), b""
    for tag in sorted(entries):
        kind, count, value = entries[tag]
        if len(value) <= 4:
            field = value.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", data_at + len(data))
            data += value + b"\0" * (len(value) & 1)
        table += struct.pack(order + "HHI", tag, kind, count) + field
    return table + struct.pack(order + "I", following) + data


def ifd_size(entries: dict) -> int:
    return (
        6
        + 12 * len(entries)
        + sum(len(v) + len(v) % 2 for _, _, v in entries.values() if len(v) > 4)
    )


def exif_block(order: str, thumbnail: bytes) -> bytes:
    """A camera-like EXIF: IFD0, Exif (with a maker note), Interop, GPS and a thumbnail IFD1."""
    tables = {
        "ifd0": {
            MAKE: ascii_("ACME-MAKE"),
            MODEL: ascii_("MODEL-X"),
            ORIENTATION: short(order, 6),
            0x011A: rationals(order, (72, 1)),
            0x011B: rationals(order, (72, 1)),
            0x0128: short(order, 2),
            0x0131: ascii_("Software 1.0"),
            ARTIST: ascii_(ARTIST_TEXT),
            COPYRIGHT: ascii_(COPYRIGHT_TEXT),
            0x02BC: (BYTE, 14, b"<GPS-in-IFD0/>"),  # XMP inside EXIF
        },
        "exif": {
            0x9000: (UNDEFINED, 4, b"0231"),
            DATE_ORIGINAL: ascii_("2024:01:02 03:04:05"),
            MAKER_NOTE: (UNDEFINED, 24, b"MAKERNOTE-SECRET\0\0\0\0\0\0\0\0"),
        },
        "interop": {0x0001: ascii_("R98"), 0x0002: (UNDEFINED, 4, b"0100")},
        "gps": {
            0x0000: (BYTE, 4, b"\x02\x02\x00\x00"),
            0x0001: ascii_("N"),
            0x0002: rationals(order, (51, 1), (30, 1), (2640, 100)),
            0x0003: ascii_("W"),
            0x0004: rationals(order, (0, 1), (7, 1), (3960, 100)),
        },
        "ifd1": {
            0x0103: short(order, 6),
            0x011A: rationals(order, (72, 1)),
            0x011B: rationals(order, (72, 1)),
            0x0128: short(order, 2),
        },
    }
    long_ = lambda v: (LONG, 1, struct.pack(order + "I", v))  # noqa: E731
    for name, tag in (("ifd0", EXIF_IFD), ("ifd0", GPS_IFD), ("exif", INTEROP_IFD)):
        tables[name][tag] = long_(0)
    tables["ifd1"][0x0201] = tables["ifd1"][0x0202] = long_(0)
    at, offsets = 8, {}
    for name, entries in tables.items():
        offsets[name], at = at, at + ifd_size(entries)
    tables["ifd0"][EXIF_IFD] = long_(offsets["exif"])
    tables["ifd0"][GPS_IFD] = long_(offsets["gps"])
    tables["exif"][INTEROP_IFD] = long_(offsets["interop"])
    tables["ifd1"][0x0201], tables["ifd1"][0x0202] = long_(at), long_(len(thumbnail))
    body = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
    for name, entries in tables.items():
        body += pack_ifd(order, entries, offsets[name], offsets["ifd1"] if name == "ifd0" else 0)
    return b"Exif\0\0" + body + thumbnail


def with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    return (
        jpeg[:2] + bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
    )


def small_jpeg(comment: bytes = b"") -> bytes:
    body = (pyvips.Image.black(8, 8) + 128).cast("uchar").jpegsave_buffer(keep=Keep.NONE)
    return with_segment(body, 0xFE, comment) if comment else body


@pytest.fixture(scope="module")
def profile() -> bytes:
    """libvips' built-in Display P3 profile, as a saver embeds it."""
    rgb = pyvips.Image.black(8, 8, bands=3).copy(interpretation="srgb")
    body = rgb.jpegsave_buffer(profile="p3", keep=Keep.ICC)
    return pyvips.Image.new_from_buffer(body, "").get("icc-profile-data")


@pytest.fixture(scope="module", params=["<", ">"], ids=["intel", "motorola"])
def source(request, profile) -> bytes:
    """A 64x48 JPEG with every kind of metadata, stored turned (Orientation 6)."""
    rgb = (pyvips.Image.black(64, 48, bands=3) + [40, 80, 120]).cast("uchar")
    rgb = rgb.copy(interpretation="srgb")
    for name, value in (("xmp-data", XMP), ("iptc-data", IPTC), ("icc-profile-data", profile)):
        rgb.set_type(pyvips.GValue.blob_type, name, value)
    body = rgb.jpegsave_buffer(keep=Keep.XMP | Keep.IPTC | Keep.ICC)
    thumbnail = small_jpeg(b"THUMBNAIL-SECRET")
    return with_segment(body, 0xE1, exif_block(request.param, thumbnail))


def render(original: pyvips.Image, mode: str, fmt: str = "jpeg") -> bytes:
    """What the pipeline does: upright, resized pixels, then `carry`, then the encoder."""
    out = original.autorot().resize(0.5)
    img, flags = embedded.carry(out, original, mode)
    return imaging.encode(img, fmt, 80, keep=flags)


# --- reading outputs back --------------------------------------------------------------


def segments(jpeg: bytes) -> list[tuple[int, bytes]]:
    found, at = [], 2
    while at + 4 <= len(jpeg) and jpeg[at] == 0xFF and jpeg[at + 1] != 0xDA:
        (size,) = struct.unpack_from(">H", jpeg, at + 2)
        found.append((jpeg[at + 1], jpeg[at + 4 : at + 2 + size]))
        at += 2 + size
    return found


def read_exif(block: bytes) -> tuple[str, dict[str, dict[int, bytes]]]:
    """The byte order and the tags of each IFD reached from IFD0."""
    tiff = block[6:] if block.startswith(b"Exif\0\0") else block
    order = "<" if tiff[:2] == b"II" else ">"

    def ifd(offset: int) -> tuple[dict[int, bytes], int]:
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        entries = {}
        for at in range(offset + 2, offset + 2 + 12 * count, 12):
            tag, kind, n, field = struct.unpack_from(order + "HHI4s", tiff, at)
            size = SIZES[kind] * n
            start = struct.unpack(order + "I", field)[0] if size > 4 else None
            entries[tag] = field[:size] if start is None else tiff[start : start + size]
        return entries, struct.unpack_from(order + "I", tiff, offset + 2 + 12 * count)[0]

    ifd0, following = ifd(struct.unpack_from(order + "I", tiff, 4)[0])
    found = {"ifd0": ifd0}
    if following:
        found["ifd1"] = ifd(following)[0]
    for name, parent, tag in (("exif", "ifd0", EXIF_IFD), ("gps", "ifd0", GPS_IFD)):
        if tag in found.get(parent, {}):
            found[name] = ifd(struct.unpack(order + "I", found[parent][tag])[0])[0]
    if INTEROP_IFD in found.get("exif", {}):
        found["interop"] = ifd(struct.unpack(order + "I", found["exif"][INTEROP_IFD])[0])[0]
    return order, found


def read_iptc(block: bytes) -> list[tuple[tuple[int, int], bytes]]:
    assert block.startswith(b"Photoshop 3.0\0")
    at = block.index(b"8BIM\x04\x04")
    at += 6 + 2  # empty Pascal name, padded
    (size,) = struct.unpack_from(">I", block, at)
    iim, found, at = block[at + 4 : at + 4 + size], [], 0
    while at < len(iim):
        (size,) = struct.unpack_from(">H", iim, at + 3)
        found.append(((iim[at + 1], iim[at + 2]), iim[at + 5 : at + 5 + size]))
        at += 5 + size
    return found


def blobs(body: bytes) -> dict[str, bytes]:
    reloaded = pyvips.Image.new_from_buffer(body, "")
    names = ("exif-data", "xmp-data", "iptc-data", "icc-profile-data")
    return {n: reloaded.get(n) for n in names if reloaded.get_typeof(n)}


def texts(xmp: bytes, path: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(xmp.decode()).iterfind(path, NS)]


# --- checks shared by the formats ------------------------------------------------------


def check_copyright_exif(block: bytes) -> None:
    order, ifds = read_exif(block)
    assert set(ifds) == {"ifd0", "exif"}  # no GPS, no IFD1, no Interop
    assert set(ifds["ifd0"]) <= LIBVIPS_IFD0 | {ARTIST, COPYRIGHT}
    assert ifds["ifd0"][ARTIST] == ARTIST_TEXT.encode() + b"\0"
    assert ifds["ifd0"][COPYRIGHT] == COPYRIGHT_TEXT.encode() + b"\0"
    assert ifds["ifd0"][ORIENTATION] == struct.pack(order + "H", 1)
    assert set(ifds["exif"]) <= LIBVIPS_EXIF


def check_keep_exif(block: bytes) -> None:
    order, ifds = read_exif(block)
    assert set(ifds) == {"ifd0", "exif", "interop"}
    ifd0, exif = ifds["ifd0"], ifds["exif"]
    assert ifd0[MAKE] == b"ACME-MAKE\0" and ifd0[MODEL] == b"MODEL-X\0"
    assert ifd0[ARTIST] == ARTIST_TEXT.encode() + b"\0"
    assert ifd0[ORIENTATION] == struct.pack(order + "H", 1)  # the pixels are upright already
    assert GPS_IFD not in ifd0 and 0x02BC not in ifd0
    assert exif[DATE_ORIGINAL] == b"2024:01:02 03:04:05\0"
    assert MAKER_NOTE not in exif
    assert ifds["interop"][0x0001] == b"R98\0"


def check_copyright_xmp(xmp: bytes) -> None:
    assert texts(xmp, ".//dc:rights/rdf:Alt/rdf:li") == [COPYRIGHT_TEXT]
    assert texts(xmp, ".//dc:creator/rdf:Seq/rdf:li") == [ARTIST_TEXT]
    properties = {e.tag for d in ET.fromstring(xmp).iterfind(".//rdf:Description", NS) for e in d}
    assert properties == {f"{{{NS['dc']}}}rights", f"{{{NS['dc']}}}creator"}


def check_keep_xmp(xmp: bytes) -> None:
    assert texts(xmp, ".//dc:rights/rdf:Alt/rdf:li") == [COPYRIGHT_TEXT]
    assert texts(xmp, ".//dc:description/rdf:Alt/rdf:li")[0].startswith("XMP-DESCRIPTION & more")
    assert texts(xmp, ".//Iptc4xmpExt:City") == ["London"]
    root = ET.fromstring(xmp)
    assert root.find(".//rdf:Description[@xmp:CreatorTool='TOOL-Z']", NS) is not None
    assert b"xmp:Thumbnails" not in xmp and b"xmlns:exifEX" not in xmp  # nothing left in it
    assert b"xmlns:dc=" in xmp and b"<dc:rights>" in xmp  # the source's own prefixes


def check_never(body: bytes) -> None:
    for secret in NEVER:
        assert secret not in body, secret


# --- the modes, JPEG -------------------------------------------------------------------


def test_source_holds_everything(source, profile):
    """The fixture really has what the other tests expect to see removed."""
    original = pyvips.Image.new_from_buffer(source, "")
    assert original.get("orientation") == 6
    assert original.get("exif-ifd3-GPSLatitude").startswith("51/1 30/1 2640/100")
    assert original.get_typeof("exif-ifd2-MakerNote")
    assert b"THUMBNAIL-SECRET" in original.get("jpeg-thumbnail-data")
    assert original.get("icc-profile-data") == profile
    assert b"GPSLatitude" in original.get("xmp-data")
    assert b"IPTC-CAPTION" in original.get("iptc-data")


def test_strip_carries_nothing(source):
    body = render(pyvips.Image.new_from_buffer(source, ""), "strip")
    assert blobs(body) == {}
    assert {marker for marker, _ in segments(body)} <= {0xDB, 0xC0, 0xC2, 0xC4, 0xDD}
    for secret in (*NEVER, *KEEP_ONLY, b"Ann Example"):
        assert secret not in body


def test_copyright_carries_only_author_and_rights(source):
    body = render(pyvips.Image.new_from_buffer(source, ""), "copyright")
    found = blobs(body)
    assert set(found) == {"exif-data", "xmp-data", "iptc-data"}
    check_copyright_exif(found["exif-data"])
    check_copyright_xmp(found["xmp-data"])
    assert read_iptc(found["iptc-data"]) == [d for d in IIM if d[0] != (2, 120)]
    check_never(body)
    for secret in KEEP_ONLY:
        assert secret not in body, secret


def test_keep_carries_all_but_location_thumbnails_and_maker_notes(source, profile):
    body = render(pyvips.Image.new_from_buffer(source, ""), "keep")
    found = blobs(body)
    assert set(found) == {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"}
    check_keep_exif(found["exif-data"])
    check_keep_xmp(found["xmp-data"])
    assert read_iptc(found["iptc-data"]) == IIM
    assert b"PS-THUMBNAIL" not in found["iptc-data"]  # only the IPTC resource passes
    assert found["icc-profile-data"] == profile
    reloaded = pyvips.Image.new_from_buffer(body, "")
    assert reloaded.get("orientation") == 1
    assert (reloaded.width, reloaded.height) == (24, 32)
    assert not [f for f in reloaded.get_fields() if f.startswith(("exif-ifd1", "exif-ifd3"))]
    check_never(body)


# --- the other formats -----------------------------------------------------------------

CARRIES = {
    "jpeg": {"exif-data", "xmp-data", "iptc-data", "icc-profile-data"},
    "webp": {"exif-data", "xmp-data", "icc-profile-data"},
    "png": {"exif-data", "xmp-data", "icc-profile-data"},
    "avif": {"exif-data", "xmp-data", "icc-profile-data"},
    "tiff": {"xmp-data", "icc-profile-data"},  # and a damaged IPTC, see the module docstring
    "gif": set(),
}


@pytest.mark.parametrize("fmt", list(CARRIES))
def test_what_each_format_carries(source, fmt):
    found = blobs(render(pyvips.Image.new_from_buffer(source, ""), "keep", fmt))
    assert set(found) - {"iptc-data" if fmt == "tiff" else ""} == CARRIES[fmt]
    if "exif-data" in found:
        check_keep_exif(found["exif-data"])
    if "xmp-data" in found:
        check_keep_xmp(found["xmp-data"])


@pytest.mark.parametrize("fmt", ["webp", "png", "avif"])
def test_copyright_in_other_formats(source, fmt):
    body = render(pyvips.Image.new_from_buffer(source, ""), "copyright", fmt)
    found = blobs(body)
    assert set(found) == {"exif-data", "xmp-data"}
    check_copyright_exif(found["exif-data"])
    check_copyright_xmp(found["xmp-data"])


# --- real files ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", embedded.MODES)
@pytest.mark.parametrize("fmt", ["jpeg", "webp", "png"])
def test_real_gps_never_leaks(mode, fmt):
    original = pyvips.Image.new_from_file(IMAGES / "photo-gps.jpg")
    assert original.get_typeof("exif-ifd3-GPSLatitude")
    found = blobs(render(original, mode, fmt))
    if "exif-data" in found:
        assert mode == "keep"  # the file has no Artist or Copyright
        _, ifds = read_exif(found["exif-data"])
        assert "gps" not in ifds and GPS_IFD not in ifds["ifd0"]


def test_orientation_is_written_as_1():
    original = pyvips.Image.new_from_file(IMAGES / "portrait-exif6.jpg")
    reloaded = pyvips.Image.new_from_buffer(render(original, "keep"), "")
    assert reloaded.get("orientation") == 1
    assert (reloaded.width, reloaded.height) == (150, 200)


# --- colour profiles -------------------------------------------------------------------


def test_profile_is_dropped_when_the_pixels_left_it(source):
    """A converted image (16-bit or CMYK sources go to sRGB) must not claim the old space."""
    original = pyvips.Image.new_from_buffer(source, "")
    converted = original.icc_transform("srgb", embedded=True)
    img, flags = embedded.carry(converted, original, "keep")
    assert not flags & Keep.ICC and not img.get_typeof("icc-profile-data")
    assert flags & Keep.EXIF and flags & Keep.XMP


# --- hostile and broken metadata -------------------------------------------------------


def with_blobs(**named: bytes) -> pyvips.Image:
    img = pyvips.Image.black(16, 16, bands=3).copy(interpretation="srgb")
    for name, value in named.items():
        img.set_type(pyvips.GValue.blob_type, name.replace("_", "-"), value)
    return img


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", ["copyright", "keep"])
def test_random_blobs_are_absent(seed, mode):
    noise = random.Random(seed).randbytes
    original = with_blobs(
        exif_data=b"Exif\0\0" + (b"II*\0", b"MM\0*")[seed % 2] + noise(200),
        iptc_data=b"Photoshop 3.0\x008BIM\x04\x04" + noise(200),
        xmp_data=noise(200),
    )
    img, flags = embedded.carry(original.copy(), original, mode)
    assert flags == Keep.NONE
    body = imaging.encode(img, "jpeg", 80, keep=flags)
    assert {marker for marker, _ in segments(body)}.isdisjoint({0xE1, 0xED})


def test_truncated_blobs_never_raise(source):
    """Every prefix of real blobs: parsed, or treated as absent."""
    original = pyvips.Image.new_from_buffer(source, "")
    exif, iptc, xmp = (original.get(n) for n in ("exif-data", "iptc-data", "xmp-data"))
    for keep in (False, True):
        for parse, blob in ((embedded._exif, exif), (embedded._iptc, iptc), (embedded._xmp, xmp)):
            for end in range(len(blob)):
                result = parse(blob[:end], keep=keep)
                assert result is None or isinstance(result, bytes)


@pytest.mark.parametrize(
    "xmp",
    [
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]><r>&b;</r>',
        XMP.replace(b"<dc:creator>", b"<dc:creator>" + b"<rdf:Seq>" * 200),
        XMP.replace(b"</dc:rights>", b""),  # not well-formed
        XMP.decode().encode("utf-16"),
    ],
    ids=["external-entity", "entity-expansion", "deep", "malformed", "utf-16"],
)
@pytest.mark.parametrize("mode", ["copyright", "keep"])
def test_unparsed_xmp_is_dropped(xmp, mode):
    original = with_blobs(xmp_data=xmp)
    img, flags = embedded.carry(original, original, mode)
    assert flags == Keep.NONE and not img.get_typeof("xmp-data")


def test_out_metadata_is_ignored():
    """`out` may carry the unfiltered original's fields (a thumbnail keeps them all)."""
    out = with_blobs(xmp_data=XMP, iptc_data=IPTC)
    out.set_type(pyvips.GValue.gstr_type, "exif-ifd3-GPSLatitude", "51/1 30/1 2640/100")
    out.set_type(pyvips.GValue.gint_type, "orientation", 6)
    img, flags = embedded.carry(out, with_blobs(), "keep")
    assert flags == Keep.NONE
    # Even a saver told to keep everything finds nothing of it: the EXIF it makes is its own.
    found = blobs(imaging.encode(img, "jpeg", 80, keep=Keep.ALL))
    assert set(found) == {"exif-data"}
    _, ifds = read_exif(found["exif-data"])
    assert "gps" not in ifds and ifds["ifd0"][ORIENTATION] == b"\1\0"


def test_non_ascii_exif_text_survives():
    """Writers put UTF-8 in EXIF ASCII tags; libvips' saver compares its own rendering of
    each string tag with the field, and rewrites the tag when they differ."""
    artist = "Ånn Ëxample 写真".encode() + b"\0"
    ifd0 = {ARTIST: (ASCII, len(artist), artist), COPYRIGHT: ascii_(COPYRIGHT_TEXT)}
    block = b"Exif\0\0II*\0" + struct.pack("<I", 8) + pack_ifd("<", ifd0, 8, 0)
    original = pyvips.Image.new_from_buffer(with_segment(small_jpeg(), 0xE1, block), "")
    for mode in ("copyright", "keep"):
        _, ifds = read_exif(blobs(render(original, mode))["exif-data"])
        assert ifds["ifd0"][ARTIST] == artist


def test_raw_iim_from_a_tiff_becomes_a_photoshop_block():
    raw = b"".join(dataset(k, v) for k, v in IIM) + b"\0\0"
    img, flags = embedded.carry(with_blobs(), with_blobs(iptc_data=raw), "copyright")
    assert flags == Keep.IPTC
    assert read_iptc(img.get("iptc-data")) == [d for d in IIM if d[0] != (2, 120)]


def test_copyright_without_any_author_or_rights_is_empty():
    original = pyvips.Image.new_from_file(IMAGES / "photo-gps.jpg")
    plain = XMP.replace(b"<dc:rights>", b"<dc:x>").replace(b"</dc:rights>", b"</dc:x>")
    plain = plain.replace(b"dc:creator>", b"dc:y>")
    original = original.copy()
    original.set_type(pyvips.GValue.blob_type, "xmp-data", plain)
    original.set_type(
        pyvips.GValue.blob_type, "iptc-data", photoshop([(0x0404, dataset((2, 5), b"T"))])
    )
    assert embedded.carry(original, original, "copyright")[1] == Keep.NONE


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown metadata mode"):
        embedded.carry(with_blobs(), with_blobs(), "all")
