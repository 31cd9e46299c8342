"""Cross-origin access (CORS) for the origins in `cors.allow_origins`: "*" or exact origins.

The middleware answers preflights; `response_headers` (an `on_response_prepare` hook) adds
Allow-Origin and friends just before a response head is sent, so they reach every
response: images, JSON, problem+json errors, 304s, and the originals that their handler
streams (and so prepares) itself, which a middleware would see too late.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

ALLOW_METHODS = "GET, HEAD, PUT, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, If-None-Match, If-Range, Range, Prefer"
# What a script may read from a response besides the CORS-safelisted headers.
EXPOSE_HEADERS = "ETag, Server-Timing, Content-Length, Location, Retry-After, Cache-Tag"
# Chromium caps this at 2 hours, Firefox at 24.
MAX_AGE = "7200"


class Policy:
    """Which origins may read responses, and the headers that tell a browser so."""

    def __init__(self, allow_origins: Sequence[str]) -> None:
        self.origins = frozenset(normalise_origin(o) for o in allow_origins)
        self.any_origin = "*" in self.origins

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin.lower() in self.origins)

    def headers(self, origin: str | None) -> dict[str, str]:
        """CORS headers of an ordinary response to a request with this Origin header."""
        # With exact origins the answer depends on Origin, even for requests without one:
        # a shared cache must not hand a response without Allow-Origin to an allowed page.
        headers = {} if self.any_origin else {"Vary": "Origin"}
        if self.allows(origin):
            value = "*" if self.any_origin else str(origin)
            headers["Access-Control-Allow-Origin"] = value
            headers["Timing-Allow-Origin"] = value
            headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return headers

    def preflight(self, origin: str) -> web.Response:
        headers = self.headers(origin)
        del headers["Access-Control-Expose-Headers"]
        vary = "Origin, " if "Vary" in headers else ""
        headers.update(
            {
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
                "Vary": f"{vary}Access-Control-Request-Method, Access-Control-Request-Headers",
            }
        )
        return web.Response(status=204, headers=headers)


def normalise_origin(origin: str) -> str:
    """`HTTPS://Example.com/` -> `https://example.com`: how browsers send the Origin header."""
    return origin.strip().rstrip("/").lower()


def middleware(allow_origins: Sequence[str]):
    """Answers CORS preflights from allowed origins (204); with no origins it does nothing.

    Anything else sent with OPTIONS (a preflight from another origin, or CORS off) goes on to
    the routes, none of which take OPTIONS: 405 without Allow-Origin, which a browser takes
    as a refusal, and the OpenAPI document and its schemathesis run stay as they are.
    """
    policy = Policy(allow_origins)

    @web.middleware
    async def cors(request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if policy.enabled and _is_preflight(request) and policy.allows(origin):
            return policy.preflight(str(origin))
        return await handler(request)

    return cors


def response_headers(allow_origins: Sequence[str]):
    """An on_response_prepare hook: the CORS headers of every other response."""
    policy = Policy(allow_origins)

    async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
        if (
            not policy.enabled
            or _is_preflight(request)
            and policy.allows(request.headers.get("Origin"))
        ):
            return
        for name, value in policy.headers(request.headers.get("Origin")).items():
            if name == "Vary":
                _add_vary(response, value)
            else:
                response.headers[name] = value

    return add_cors_headers


def _is_preflight(request: web.Request) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _add_vary(response: web.StreamResponse, value: str) -> None:
    names = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    if value.lower() not in (n.lower() for n in names) and "*" not in names:
        names.append(value)
    response.headers["Vary"] = ", ".join(names)
