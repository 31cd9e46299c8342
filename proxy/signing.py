"""URL signatures: HMAC-SHA256 over the path (and query), base64url without padding."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from .errors import Forbidden


def sign(path_and_query: str, key: str) -> str:
    """The signature of `/ops/…/source[?query]` (the path after the `/sig/{signature}` part)."""
    mac = hmac.new(key.encode(), path_and_query.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signed_path(path_and_query: str, key: str) -> str:
    if not path_and_query.startswith("/"):
        path_and_query = "/" + path_and_query
    return f"/sig/{sign(path_and_query, key)}{path_and_query}"


def split(raw_path: str) -> tuple[str | None, str]:
    """('signature', '/rest') for `/sig/{signature}/rest`, else (None, raw_path)."""
    if raw_path.startswith("/sig/"):
        _, _, signature_and_rest = raw_path.partition("/sig/")
        signature, slash, rest = signature_and_rest.partition("/")
        return signature, slash + rest
    return None, raw_path


def check(raw_path: str, query: str, keys: Sequence[str]) -> str:
    """Verify (when keys are configured) and strip the signature; returns the rest of the path."""
    signature, rest = split(raw_path)
    if not keys:
        return rest
    if signature is None:
        raise Forbidden("this server requires signed URLs: /sig/{signature}/…")
    message = rest + (f"?{query}" if query else "")
    # Every key is tried, each in constant time: rotation must not leak which key matched.
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(sign(message, key), signature)
    if not valid:
        raise Forbidden("the URL signature does not match")
    return rest
