"""The rules for the path part of `local:///{path}` and the key of `s3://{bucket}/{key}`.

Both come straight from a URL, so both are hostile until proven otherwise. The path is
percent-decoded exactly once, as bytes, and must then be strict UTF-8: an overlong encoding
(`%c0%ae` for `.`) or any other malformed sequence is refused, never "repaired" into
something a later layer might read as a dot or a slash. What remains must already be in its
one plain spelling: no `.` or `..` segment, no backslash, no NUL or other control character,
no leftover escape (`%252e` decodes once to `%2e`: a second decoder somewhere would see a dot),
and for files no absolute path (`/etc/passwd`, `C:\\…`). Refusals are 403, like every other
source the server will not read; a path that is merely malformed (empty, too long) is 400.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from .config import BUCKET_RE
from .errors import BadRequest, Forbidden

MAX_PATH_BYTES = 4096
MAX_SEGMENT_BYTES = 255
MAX_KEY_BYTES = 1024  # S3's limit for an object key
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def decode_once(raw: str, what: str) -> str:
    """`raw` percent-decoded once as UTF-8 bytes; 403 when the bytes are not strict UTF-8."""
    # Bytes outside ASCII in the request line reach us as surrogate escapes: back to bytes.
    data = unquote_to_bytes(raw.encode("utf-8", "surrogateescape"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Forbidden(f"{what}: not valid UTF-8 (overlong encodings included)") from None


def check_plain(text: str, what: str, *, backslash: bool = False) -> None:
    """403 unless `text` (decoded) is spelled plainly: see the module's rules. `backslash`:
    allowed (S3 keys, where it is an ordinary character, sent encoded)."""
    if _CONTROL_RE.search(text):
        raise Forbidden(f"{what}: control characters (NUL included) are not allowed")
    if "\\" in text and not backslash:
        raise Forbidden(f"{what}: backslashes are not allowed")
    if _ESCAPE_RE.search(text):
        raise Forbidden(f"{what}: percent-encoded twice")
    if any(segment in (".", "..") for segment in text.split("/")):
        raise Forbidden(f"{what}: '.' and '..' segments are not allowed")


def local_path(raw: str) -> str:
    """The relative path of a `local:` source from what follows `local:` in the URL.

    `local:///a/b.jpg` is the file `a/b.jpg` under `sources.local.root`; `local:/a/b.jpg`
    (what a proxy that merges slashes makes of it) is the same file.
    """
    rest = raw.lstrip("/")
    slashes = len(raw) - len(rest)
    if slashes > 3:
        raise Forbidden("local: an absolute path is not allowed (local:///{path under the root})")
    if slashes not in (1, 3):
        raise BadRequest("local: sources are written local:///{path under the root}")
    path = decode_once(rest, "local:")
    check_plain(path, "local:")
    if path.startswith("/") or _DRIVE_RE.match(path):
        raise Forbidden("local: an absolute path is not allowed (local:///{path under the root})")
    encoded = path.encode()
    if not path or path.endswith("/") or "//" in path:
        raise BadRequest("local: the path must name a file (no empty segments)")
    if len(encoded) > MAX_PATH_BYTES or any(
        len(segment.encode()) > MAX_SEGMENT_BYTES for segment in path.split("/")
    ):
        raise BadRequest("local: the path is too long")
    return path


def s3_object(raw: str) -> tuple[str, str]:
    """(bucket, key) from what follows `s3:` in the URL (`//bucket/key`, or `/bucket/key`)."""
    rest = raw.lstrip("/")
    if len(raw) - len(rest) not in (1, 2):
        raise BadRequest("s3: sources are written s3://{bucket}/{key}")
    bucket, _, key_raw = rest.partition("/")
    if not BUCKET_RE.match(bucket):
        raise BadRequest(f"s3://{bucket}: not a valid bucket name")
    # A `..` segment would be resolved away by the HTTP layer under a path-style request,
    # reading another bucket than the one checked against sources.s3.buckets.
    key = decode_once(key_raw, f"s3://{bucket}")
    check_plain(key, f"s3://{bucket}", backslash=True)
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise BadRequest(f"s3://{bucket}/: the key must be 1 to {MAX_KEY_BYTES} bytes")
    return bucket, key
