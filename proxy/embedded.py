"""Which metadata of the original an output carries: the `meta/{strip|copyright|keep}` operation.

- `strip`: none.
- `copyright`: who made the image and who owns it, nothing else: EXIF Artist (0x013B) and
  Copyright (0x8298) of IFD0; IPTC by-line (2:80) and copyright notice (2:116), with the
  record version (2:00) and the coded character set (1:90) that says how they are spelt;
  XMP dc:creator and dc:rights.
- `keep`: EXIF (IFD0, the Exif sub-IFD and its Interoperability IFD), XMP, IPTC (the IIM
  only) and the source's ICC profile (unless the pixels were converted out of it, see
  `_profile`).

Never, in any mode:

- GPS: the EXIF GPS IFD (0x8825) and every XMP property named GPS* (exif:, exifEX:, and
  the exif: ones inside Iptc4xmpExt locations). Where a photo was taken is often where its
  author lives, and publishing an image is not consent to publishing that.
- Thumbnails: EXIF IFD1 with its JPEG, and xmp:Thumbnails. A thumbnail shows the whole
  original frame and outlives a crop, a blur or a redaction made by the render.
- Maker notes (0x927C): undocumented vendor blobs with serial numbers (some with
  locations), and full of offsets into the original block, so they cannot be moved safely.
- Orientation: the pixels are already upright (the pipeline applies it), so libvips writes
  Orientation = 1; keeping the original's would turn the image twice.
- Other Photoshop resources than IPTC (0x0404), and TIFF structure, XMP, IPTC and ICC tags
  inside IFD0: they hold thumbnails and second copies of metadata this filter would miss.

Each blob is parsed and rebuilt by hand; one that cannot be parsed is treated as absent.

How libvips 8.18 handles metadata (its foreign/exif.c and foreign.c, and experiment):

- A loader sets `exif-data` (JPEG, WebP: "Exif\\0\\0" then TIFF; PNG: TIFF alone) and one
  `exif-ifdN-Name` string field per tag (N: 0 IFD0, 1 thumbnail, 2 Exif, 3 GPS, 4 Interop),
  `xmp-data`, `iptc-data` (JPEG: the APP13 "Photoshop 3.0" payload; TIFF: raw IIM, read
  back at a quarter of its length, a libvips bug), `icc-profile-data`, `orientation`.
- A saver given ForeignKeep.EXIF rebuilds the block from the fields: a tag of `exif-data`
  with no `exif-ifdN-*` field is deleted, a field with no tag is added, and Orientation
  (from `orientation`, else 1), resolution and PixelX/YDimension are written from the
  image; libexif adds the tags EXIF requires (ExifVersion, FlashpixVersion, ColorSpace,
  ComponentsConfiguration, YCbCrPositioning, resolution), so even `copyright` EXIF has
  those. A filtered blob alone therefore comes out empty: its fields come from libvips
  parsing it (`_libvips_fields`), and `out`'s own fields are removed first.
- With a keep bit set but no blob, EXIF is made from scratch: bits are set only for blobs
  there are. A profile that does not fit the pixels is dropped silently by the saver.

What each output format carries (libvips 8.18.7 as bundled by pyvips-binary):

    format  EXIF  XMP  IPTC  ICC
    jpeg    yes   yes  yes   yes   (XMP over 60000 bytes is dropped; EXIF over 64 KiB too)
    webp    yes   yes  no    yes   (the EXIF chunk keeps the "Exif\\0\\0" prefix)
    png     yes   yes  no    yes   (eXIf chunk, iTXt XML:com.adobe.xmp, iCCP)
    avif    yes   yes  no    yes
    tiff    no    yes  bad   yes   (IPTC written in the JPEG form to the raw-IIM tag)
    gif     no    no   no    no
"""

from __future__ import annotations

import copy
import functools
import struct
import xml.etree.ElementTree as ET
from typing import NamedTuple
from xml.sax.saxutils import escape, quoteattr

import pyvips

MODES = ("strip", "copyright", "keep")

_Keep = pyvips.enums.ForeignKeep

# Fields whose content this module decides; removed from `out` before anything is set.
_DECIDED = (
    "exif-data",
    "jpeg-thumbnail-data",
    "xmp-data",
    "iptc-data",
    "ipct-data",  # libvips' old misspelling, still set by its loaders
    "photoshop-data",
    "icc-profile-data",
    "orientation",
)


def carry(out: pyvips.Image, original: pyvips.Image, mode: str) -> tuple[pyvips.Image, int]:
    """`out` (the rendered image, whose own metadata fields are to be ignored) with the
    metadata of `original` (a lazily opened header-only pyvips image of the source file)
    that `mode` allows set on it, and the `keep` flags (pyvips.enums.ForeignKeep bit values)
    to pass to the saver, e.g. out.jpegsave_buffer(keep=flags)."""
    if mode not in MODES:
        raise ValueError(f"unknown metadata mode {mode!r}")
    img = _bare(out)
    if mode == "strip":
        return img, _Keep.NONE
    keep = mode == "keep"
    flags = _Keep.NONE
    exif = _exif(_blob(original, "exif-data"), keep=keep)
    fields = _libvips_fields(exif) if exif else None
    if exif and fields is not None:
        img.set_type(pyvips.GValue.blob_type, "exif-data", exif)
        for name, value in fields.items():
            img.set_type(pyvips.GValue.gstr_type, name, value)
        flags |= _Keep.EXIF
    blobs = (
        ("xmp-data", _Keep.XMP, _xmp(_blob(original, "xmp-data"), keep=keep)),
        ("iptc-data", _Keep.IPTC, _iptc(_blob(original, "iptc-data"), keep=keep)),
        ("icc-profile-data", _Keep.ICC, _profile(out, original) if keep else None),
    )
    for name, flag, data in blobs:
        if data:
            img.set_type(pyvips.GValue.blob_type, name, data)
            flags |= flag
    return img, flags


def _bare(out: pyvips.Image) -> pyvips.Image:
    """A copy of `out` without metadata of its own: what a loader or thumbnail left on it
    is the unfiltered original's, and the saver would write it back."""
    img = out.copy()
    for name in img.get_fields():
        if name.startswith("exif-") or name in _DECIDED:
            img.remove(name)
    return img


def _blob(img: pyvips.Image, name: str) -> bytes | None:
    if img.get_typeof(name) != pyvips.GValue.blob_type:
        return None
    return bytes(img.get(name)) or None


class _Bad(Exception):
    """Metadata that cannot be parsed: the caller treats it as absent."""


# --- EXIF ------------------------------------------------------------------------------

_EXIF_HEADER = b"Exif\0\0"
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_LONG = 4
_ARTIST, _COPYRIGHT = 0x013B, 0x8298
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
_MAKER_NOTE = 0x927C
# IFD0 tags that describe the original's encoding (sizes, strips, tiles, sub-images), point
# at data left behind, or are second copies of XMP, IPTC, ICC and Photoshop resources.
_IFD0_DROPPED = frozenset(
    {0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0112, 0x0115, 0x0116, 0x0117, 0x011C}
    | {0x0142, 0x0143, 0x0144, 0x0145, 0x014A, 0x0201, 0x0202, 0x0212, 0x02BC, 0x83BB}
    | {0x8649, 0x8773, 0x935C, _EXIF_IFD, _GPS_IFD, _INTEROP_IFD, _MAKER_NOTE}
)
# The Exif IFD: maker notes, the Interop pointer (rebuilt) and the original's pixel size.
_EXIF_DROPPED = frozenset({_MAKER_NOTE, _INTEROP_IFD, _GPS_IFD, 0xA002, 0xA003})
# One JPEG APP1 segment: the most the JPEG saver, and the parsing in _libvips_fields, take.
_MAX_EXIF = 65533


class _Entry(NamedTuple):
    tag: int
    type: int
    count: int
    value: bytes  # in the block's byte order, unpadded


def _exif(blob: bytes | None, *, keep: bool) -> bytes | None:
    """The filtered EXIF block ("Exif\\0\\0" then TIFF), or None."""
    if not blob:
        return None
    try:
        tiff, order = _tiff(blob)
        ifd0 = _read_ifd(tiff, order, struct.unpack_from(order + "I", tiff, 4)[0])
    except (_Bad, struct.error):
        return None
    if keep:
        exif = _sub_ifd(tiff, order, ifd0, _EXIF_IFD)
        interop = _sub_ifd(tiff, order, exif, _INTEROP_IFD)
        tables = [
            [e for e in ifd0 if e.tag not in _IFD0_DROPPED],
            [e for e in exif if e.tag not in _EXIF_DROPPED],
            interop,
        ]
    else:
        tables = [[e for e in ifd0 if e.tag in (_ARTIST, _COPYRIGHT)]]
    block = _EXIF_HEADER + _pack_tiff(order, tables) if any(tables) else None
    return block if block and len(block) <= _MAX_EXIF else None


def _tiff(blob: bytes) -> tuple[bytes, str]:
    tiff = blob[len(_EXIF_HEADER) :] if blob.startswith(_EXIF_HEADER) else blob
    orders = {b"II*\0": "<", b"MM\0*": ">"}
    if len(tiff) < 8 or tiff[:4] not in orders:
        raise _Bad("not a TIFF header")
    return tiff, orders[tiff[:4]]


def _read_ifd(tiff: bytes, order: str, offset: int) -> list[_Entry]:
    """The entries of the IFD at `offset`, values copied out; entries whose values lie
    outside the block, or whose type is unknown (so their size is too), are left out."""
    if offset < 8 or offset + 2 > len(tiff):
        raise _Bad("IFD outside the block")
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    end = offset + 2 + 12 * count
    if end > len(tiff):
        raise _Bad("truncated IFD")
    entries: dict[int, _Entry] = {}
    for at in range(offset + 2, end, 12):
        tag, kind, n, field = struct.unpack_from(order + "HHI4s", tiff, at)
        size = _TYPE_SIZES.get(kind, 0) * n
        if size <= 4:
            value = field[:size]
        else:
            (start,) = struct.unpack(order + "I", field)
            value = tiff[start : start + size]
        if size and len(value) == size and tag not in entries:
            entries[tag] = _Entry(tag, kind, n, value)
    return list(entries.values())


def _sub_ifd(tiff: bytes, order: str, entries: list[_Entry], pointer: int) -> list[_Entry]:
    """The IFD that the `pointer` tag of `entries` leads to; none when it is missing or bad."""
    for e in entries:
        if e.tag == pointer and e.type in (_LONG, 13) and e.count == 1:
            try:
                return _read_ifd(tiff, order, struct.unpack(order + "I", e.value)[0])
            except (_Bad, struct.error):
                return []
    return []


def _pack_tiff(order: str, tables: list[list[_Entry]]) -> bytes:
    """A TIFF block of IFD0 then the sub-IFDs in `tables`, each pointed to from the one
    before (Exif from IFD0, Interop from Exif), and no IFD1."""
    while len(tables) > 1 and not tables[-1]:
        tables = tables[:-1]
    pointers = (_EXIF_IFD, _INTEROP_IFD)[: len(tables) - 1]  # each table points to the next
    linked = [t + [_Entry(p, _LONG, 1, bytes(4))] for t, p in zip(tables, pointers, strict=False)]
    linked.append(tables[-1])
    offsets = [8]
    for table in linked[:-1]:
        offsets.append(offsets[-1] + _ifd_size(table))
    for table, target in zip(linked, offsets[1:], strict=False):
        table[-1] = table[-1]._replace(value=struct.pack(order + "I", target))
    header = (b"II*\0" if order == "<" else b"MM\0*") + struct.pack(order + "I", 8)
    return header + b"".join(_pack_ifd(t, at, order) for t, at in zip(linked, offsets, strict=True))


def _ifd_size(entries: list[_Entry]) -> int:
    return 6 + 12 * len(entries) + sum(_even(len(e.value)) for e in entries if len(e.value) > 4)


def _even(n: int) -> int:
    return n + (n & 1)  # TIFF values start on a word boundary


def _pack_ifd(entries: list[_Entry], start: int, order: str) -> bytes:
    entries = sorted(entries)  # TIFF wants tags in ascending order
    data_at = start + 6 + 12 * len(entries)
    table, data = bytearray(struct.pack(order + "H", len(entries))), bytearray()
    for e in entries:
        if len(e.value) <= 4:
            field = e.value.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", data_at + len(data))
            data += e.value.ljust(_even(len(e.value)), b"\0")
        table += struct.pack(order + "HHI", e.tag, e.type, e.count) + field
    return bytes(table + b"\0" * 4 + data)  # next-IFD offset 0: no IFD1


@functools.cache
def _blank_jpeg() -> bytes:
    return pyvips.Image.black(1, 1).jpegsave_buffer(keep=_Keep.NONE)


def _libvips_fields(block: bytes) -> dict[str, str] | None:
    """The `exif-ifdN-*` fields libvips makes of `block`, which its saver keeps in step with
    the block (see the module docstring). There is no call that parses a block on its own:
    libvips reads it from a 1x1 JPEG carrying it."""
    jpeg = _blank_jpeg()
    segment = b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block
    try:
        parsed = pyvips.Image.jpegload_buffer(jpeg[:2] + segment + jpeg[2:])
        return {f: parsed.get(f) for f in parsed.get_fields() if f.startswith("exif-ifd")}
    except pyvips.Error:
        return None


# --- IPTC ------------------------------------------------------------------------------

_PHOTOSHOP = b"Photoshop 3.0\0"
_RESOURCE_SIGNATURES = (b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa")
_IPTC_RESOURCE = 0x0404
# By-line and copyright notice, with the record version and the character set (1:90, e.g.
# UTF-8) without which their bytes cannot be read.
_COPYRIGHT_DATASETS = frozenset({(1, 90), (2, 0), (2, 80), (2, 116)})


def _iptc(blob: bytes | None, *, keep: bool) -> bytes | None:
    """A fresh "Photoshop 3.0" block holding only the filtered IIM, or None."""
    if not blob:
        return None
    try:
        datasets = _datasets(_iim(blob))
    except _Bad:
        return None
    if not keep:
        if not any(key in ((2, 80), (2, 116)) for key, _ in datasets):
            return None
        datasets = [(key, v) for key, v in datasets if key in _COPYRIGHT_DATASETS]
    iim = b"".join(_pack_dataset(key, value) for key, value in datasets)
    resource = b"8BIM" + struct.pack(">HHI", _IPTC_RESOURCE, 0, len(iim)) + iim
    return _PHOTOSHOP + resource.ljust(_even(len(resource)), b"\0")


def _iim(blob: bytes) -> bytes:
    """The IIM: resource 0x0404 of a JPEG's Photoshop block, or the raw IIM from a TIFF."""
    if blob[:1] == b"\x1c":
        return blob
    if not blob.startswith(_PHOTOSHOP):
        raise _Bad("not a Photoshop block")
    at = len(_PHOTOSHOP)
    while at + 12 <= len(blob) and blob[at : at + 4] in _RESOURCE_SIGNATURES:
        (rid,) = struct.unpack_from(">H", blob, at + 4)
        at += 6 + _even(blob[at + 6] + 1)  # a Pascal name, padded to even length
        if at + 4 > len(blob):
            raise _Bad("truncated resource")
        (size,) = struct.unpack_from(">I", blob, at)
        at += 4
        if at + size > len(blob):
            raise _Bad("truncated resource")
        if rid == _IPTC_RESOURCE:
            return blob[at : at + size]
        at += _even(size)
    raise _Bad("no IPTC resource")


def _datasets(iim: bytes) -> list[tuple[tuple[int, int], bytes]]:
    found = []
    at = 0
    while at < len(iim):
        if iim[at] != 0x1C:
            if iim[at:].strip(b"\0"):
                raise _Bad("not an IIM dataset")
            break  # padding
        if at + 5 > len(iim):
            raise _Bad("truncated dataset")
        record, number, size = iim[at + 1], iim[at + 2], int.from_bytes(iim[at + 3 : at + 5])
        at += 5
        if size & 0x8000:  # extended: the low bits count the length's own bytes
            width = size & 0x7FFF
            if width > 4:
                raise _Bad("dataset too long")
            size, at = int.from_bytes(iim[at : at + width]), at + width
        if at + size > len(iim):
            raise _Bad("truncated dataset")
        found.append(((record, number), iim[at : at + size]))
        at += size
    if not found:
        raise _Bad("no datasets")
    return found


def _pack_dataset(key: tuple[int, int], value: bytes) -> bytes:
    if len(value) < 0x8000:
        size = struct.pack(">H", len(value))
    else:  # extended: 0x8000 plus the count of length bytes that follow
        size = b"\x80\x04" + struct.pack(">I", len(value))
    return bytes((0x1C, *key)) + size + value


# --- XMP -------------------------------------------------------------------------------

_X = "adobe:ns:meta/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_DC = "http://purl.org/dc/elements/1.1/"
_XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
_XML = "http://www.w3.org/XML/1998/namespace"
_PACKET = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n{}\n<?xpacket end="w"?>'
_MAX_DEPTH = 64  # real packets nest about 8 deep; the tree walks below are recursive


def _xmp(blob: bytes | None, *, keep: bool) -> bytes | None:
    """A fresh XMP packet: the source's without GPS and thumbnails (`keep`), or only its
    dc:rights and dc:creator; None when the source has none or cannot be parsed."""
    parsed = _parse_xmp(blob) if blob else None
    if parsed is None:
        return None
    root, prefixes = parsed
    if not keep:
        root = _copyright_xmp(root)
        if root is None:
            return None
    for parent in list(root.iter()):
        for name in [a for a in parent.attrib if _never(a)]:
            del parent.attrib[name]
        for child in [c for c in parent if _never(c.tag)]:
            parent.remove(child)
    return _PACKET.format(_serialise(root, prefixes)).encode()


def _parse_xmp(blob: bytes) -> tuple[ET.Element, dict[str, str]] | None:
    """The packet's root element and the prefix it declared for each namespace.

    A DTD is refused outright: entities are how XML is made to expand without bound or to
    read files, and XMP has no use for them. XMP in JPEG, PNG and WebP is UTF-8."""
    try:
        text = blob.decode().lstrip("\ufeff").rstrip("\0 \t\r\n")
    except UnicodeDecodeError:
        return None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None
    parser = ET.XMLPullParser(events=("start", "end", "start-ns"))
    try:
        parser.feed(text)
        parser.close()
    except (ET.ParseError, ValueError):
        return None
    root, prefixes, depth = None, {}, 0
    for event, item in parser.read_events():
        if event == "start-ns":
            prefixes.setdefault(item[1], item[0])
        elif event == "start":
            root = item if root is None else root
            depth += 1
            if depth > _MAX_DEPTH:
                return None
        else:
            depth -= 1
    if root is None or _rdf(root) is None:
        return None
    return root, prefixes


def _rdf(root: ET.Element) -> ET.Element | None:
    return root if root.tag == f"{{{_RDF}}}RDF" else root.find(f".//{{{_RDF}}}RDF")


def _copyright_xmp(root: ET.Element) -> ET.Element | None:
    """A new x:xmpmeta with the first dc:rights and dc:creator of the source's descriptions."""
    found: dict[str, ET.Element] = {}
    for description in _rdf(root).findall(f"{{{_RDF}}}Description"):
        for name in (f"{{{_DC}}}rights", f"{{{_DC}}}creator"):
            if name in found:
                continue
            element = description.find(name)
            if element is not None:
                found[name] = copy.deepcopy(element)
                found[name].tail = None  # the source's indentation, out of place here
            elif name in description.attrib:  # the shorthand some writers use
                found[name] = ET.Element(name)
                found[name].text = description.attrib[name]
    if not found:
        return None
    meta = ET.Element(f"{{{_X}}}xmpmeta")
    rdf = ET.SubElement(meta, f"{{{_RDF}}}RDF")
    description = ET.SubElement(rdf, f"{{{_RDF}}}Description", {f"{{{_RDF}}}about": ""})
    description.extend(found.values())
    return meta


def _never(name: str) -> bool:
    """GPS properties in any namespace (exif:, exifEX:, vendors' own), and thumbnails."""
    uri, _, local = name[1:].partition("}") if name.startswith("{") else ("", "", name)
    return local.lower().startswith("gps") or (uri == _XMP_BASIC and local == "Thumbnails")


def _serialise(root: ET.Element, declared: dict[str, str]) -> str:
    """XML of `root` with the source's own prefixes, all declared on the root: ElementTree's
    serialiser would rename them ns0, ns1... unless registered process-wide."""
    prefixes = {_XML: "xml"}
    for element in root.iter():
        for name in (element.tag, *element.attrib):
            uri = name[1:].partition("}")[0] if name.startswith("{") else None
            if uri is not None and uri not in prefixes:
                wanted = declared.get(uri) or {_X: "x", _RDF: "rdf", _DC: "dc"}.get(uri)
                prefixes[uri] = _free_prefix(wanted, set(prefixes.values()))
    xmlns = "".join(f" xmlns:{p}={quoteattr(u)}" for u, p in prefixes.items() if u != _XML)
    return _element(root, prefixes, xmlns)


def _free_prefix(wanted: str | None, taken: set[str]) -> str:
    if wanted and wanted not in taken:
        return wanted
    return next(f"ns{i}" for i in range(len(taken) + 1) if f"ns{i}" not in taken)


def _element(element: ET.Element, prefixes: dict[str, str], extra: str = "") -> str:
    tag = _qname(element.tag, prefixes)
    attrs = "".join(f" {_qname(k, prefixes)}={quoteattr(v)}" for k, v in element.attrib.items())
    body = escape(element.text or "") + "".join(
        _element(child, prefixes) + escape(child.tail or "") for child in element
    )
    return f"<{tag}{extra}{attrs}>{body}</{tag}>"


def _qname(name: str, prefixes: dict[str, str]) -> str:
    if not name.startswith("{"):
        return name
    uri, _, local = name[1:].partition("}")
    return f"{prefixes[uri]}:{local}"


# --- ICC -------------------------------------------------------------------------------


def _profile(out: pyvips.Image, original: pyvips.Image) -> bytes | None:
    """The source's profile, unless `out` carries another one: then the pipeline converted
    the pixels into that (to sRGB, for a 16-bit or CMYK source) and the source's would
    misname their colours. A profile that does not fit the pixels' bands is dropped by
    the saver itself."""
    source = _blob(original, "icc-profile-data")
    own = _blob(out, "icc-profile-data")
    return source if own is None or own == source else None
