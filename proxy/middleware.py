"""Cross-cutting request handling: problem+json errors, write tokens, common headers."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Sequence

from aiohttp import web

from .errors import Forbidden, ProxyError, Unauthorized

log = logging.getLogger("proxy")

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})


def problem_response(error: ProxyError) -> web.Response:
    response = web.Response(
        body=json.dumps(error.problem()).encode(),
        status=error.status,
        content_type="application/problem+json",
        headers=error.headers,
    )
    # Errors must not outlive their cause in a CDN or nginx.
    response.headers["Cache-Control"] = "no-store"
    return response


class _HTTPProblem(ProxyError):
    def __init__(self, exc: web.HTTPException) -> None:
        super().__init__(_detail_for(exc))
        self.status = exc.status
        self.title = exc.reason
        self.slug = exc.reason.lower().replace(" ", "-")
        self.log = False
        if exc.status == 405 and "Allow" in exc.headers:
            self.headers["Allow"] = exc.headers["Allow"]


def _detail_for(exc: web.HTTPException) -> str:
    if exc.status == 404:
        return "no such resource"
    if exc.status == 405:
        return "this method is not allowed on this resource"
    if exc.status == 413:
        return "the request body is too large"
    return exc.text or exc.reason


@web.middleware
async def problems(request: web.Request, handler) -> web.StreamResponse:
    """Every failure leaves as application/problem+json with the status it was born with."""
    try:
        return await handler(request)
    except ProxyError as error:
        if error.log:
            log.exception("%s %s failed", request.method, request.path)
        return problem_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_HTTPProblem(exc))
    except Exception:
        log.exception("%s %s failed unexpectedly", request.method, request.path)
        return problem_response(ProxyError("an unexpected error occurred; it has been logged"))


def write_tokens(tokens: Sequence[str]):
    """PUT/POST/DELETE need `Authorization: Bearer {token}` when tokens are configured."""
    encoded = [t.encode() for t in tokens]

    @web.middleware
    async def require_token(request: web.Request, handler) -> web.StreamResponse:
        if not encoded or request.method not in WRITE_METHODS:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized("this server needs 'Authorization: Bearer {token}' for writes")
        # aiohttp keeps undecodable header bytes as surrogates: encode them back, never fail.
        candidate = given.strip().encode("utf-8", "surrogateescape")
        valid = False
        for token in encoded:  # constant time per token, and every token is tried
            valid |= hmac.compare_digest(candidate, token)
        if not valid:
            raise Forbidden("the write token is not valid")
        return await handler(request)

    return require_token


async def common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
