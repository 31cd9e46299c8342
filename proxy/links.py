"""Links to derived images: canonical, optionally signed URLs and `srcset` strings.

    >>> url("9f86d081884c7d659a2feaa0c55ad015", fmt="webp", resize="300x200")
    '/resize/300x200/fmt/webp/9f86d081884c7d659a2feaa0c55ad015'

Operations are keyword arguments named as in the URL (`resize`, `fill`, `q`, `fmt`, …);
flags take True, boxes and crops take a string or a tuple. Every URL goes through
`urls.parse` then `urls.build`, so it is validated and in canonical order, and signatures
are computed over exactly the path the server will check.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from . import ops, signing, urls
from .errors import BadRequest

# The client knows neither the server's limits.max_output_dimension nor its presets: the
# server checks the one and expands the other.
_GRAMMAR = urls.Grammar(max_dimension=999_999_999)
# Characters of a remote source URL kept as they are; anything else is percent-encoded, as
# a browser would do before sending it (the signature must cover what arrives).
_URL_SAFE = "/:?&=%+,;@!$'()*~[]"


def url(
    source: str, *, key: str | Sequence[str] | None = None, base: str = "", **operations: object
) -> str:
    """The canonical URL of `source` (an image id, or an http(s) URL) with `operations`.

    With `key` (or a list of keys: the first signs) the path starts `/sig/{signature}/`.
    `base` ("https://img.example.com") is prepended as given. Raises ValueError for an
    unknown operation or a bad argument, with the server's own message.
    """
    preset = operations.pop("preset", None)
    path, query = _path_and_query(source, operations)
    try:
        options, ref = urls.parse(path, query, _GRAMMAR)
        if preset is not None:  # expanded by the server, which alone knows the definitions
            ops.BY_NAME["preset"].arg.parse(str(preset), 0)
    except BadRequest as exc:
        raise ValueError(exc.detail) from None
    except ValueError as exc:
        raise ValueError(f"'preset/{preset}': {exc}") from None
    canonical = urls.build(options, ref)
    if preset is not None:
        canonical = f"/preset/{preset}{canonical}"
    if isinstance(key, str):
        key = [key]
    if key:
        canonical = signing.signed_path(canonical, key[0])
    return base.rstrip("/") + canonical


def srcset(
    source: str,
    widths: Iterable[int],
    *,
    key: str | Sequence[str] | None = None,
    base: str = "",
    **operations: object,
) -> str:
    """`url1 320w, url2 640w, …`: one candidate per output width.

    The resize family operation given (`resize` by default) gets each width in turn; when
    its box has a height too, the height scales with the width, so every candidate has the
    same shape. `dpr` is left to the browser: the `w` descriptors already cover it.
    """
    if "dpr" in operations:
        raise ValueError("srcset: leave out dpr, the browser picks a width for its density")
    mode = next((m for m in ops.RESIZE_MODES if m in operations), "resize")
    width, height = _box(operations.pop(mode, None), mode)
    candidates = []
    for w in widths:
        if not isinstance(w, int) or w < 1:
            raise ValueError(f"srcset: widths must be positive whole numbers, got {w!r}")
        h = max(1, round(height * w / width)) if width and height else None
        box = f"{w}x{h}" if h else f"{w}x"
        candidates.append(f"{url(source, key=key, base=base, **{mode: box}, **operations)} {w}w")
    if not candidates:
        raise ValueError("srcset: give at least one width")
    return ", ".join(candidates)


def _path_and_query(source: str, operations: dict[str, object]) -> tuple[str, str]:
    parts: list[str] = []
    for name, value in operations.items():
        if name not in ops.BY_NAME:
            raise ValueError(
                f"unknown operation {name!r}: expected one of {', '.join(ops.BY_NAME)}"
            )
        if ops.BY_NAME[name].arity == 0:
            if value is not True and value is not False:
                raise ValueError(f"{name!r} is a flag: give True or False")
            if value:
                parts.append(name)
            continue
        if value is None:
            continue
        parts += [name, _argument(name, value)]
    path, _, query = quote(source.lstrip("/"), safe=_URL_SAFE).partition("?")
    return "/" + "/".join([*parts, path]), query


def _argument(name: str, value: object) -> str:
    if isinstance(value, tuple | list):
        return _box_text(value) if name in ops.RESIZE_MODES else ",".join(str(v) for v in value)
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _box_text(value: Sequence[object]) -> str:
    if len(value) != 2:
        raise ValueError(f"expected a (width, height) box, got {value!r}")
    w, h = value
    return f"{'' if w is None else w}x{'' if h is None else h}"


def _box(value: object, mode: str) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    text = _box_text(value) if isinstance(value, tuple | list) else str(value)
    w, sep, h = text.partition("x")
    if not sep or not (w.isdigit() or w == "") or not (h.isdigit() or h == ""):
        raise ValueError(f"'{mode}/{text}': expected WxH, Wx or xH")
    return (int(w) if w else None), (int(h) if h else None)


# --- the `progimage url` command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `progimage url SOURCE …`: one per operation, named as in the URL."""
    parser.add_argument("source", help="an image id, or an http(s) URL")
    for op in ops.REGISTRY:
        name = op.name
        if op.arity == 0:
            parser.add_argument(f"--{name}", action="store_true", default=None)
        else:
            parser.add_argument(f"--{name}", metavar=name.upper(), help=ARGUMENTS[name])
    parser.add_argument(
        "--widths", help="comma-separated widths: print a srcset instead of one URL"
    )
    parser.add_argument("--base", default="", help="prefix such as https://img.example.com")
    parser.add_argument("--config")


def from_args(args: argparse.Namespace, key: str | None) -> str:
    """The URL, or the srcset when --widths is given, that `progimage url` prints."""
    chosen = {
        op.name: getattr(args, op.name) for op in ops.REGISTRY if getattr(args, op.name) is not None
    }
    if not args.widths:
        return url(args.source, key=key, base=args.base, **chosen)
    try:
        widths = [int(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--widths {args.widths}: expected whole numbers, e.g. 320,640") from None
    return srcset(args.source, widths, key=key, base=args.base, **chosen)


# What each operation's argument looks like, for the service description at GET /.
ARGUMENTS = {op.name: op.arg.describe for op in ops.REGISTRY if op.arity}
