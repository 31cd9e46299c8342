"""The playground: the page a browser gets at GET /, served from proxy/static/playground.

Plain HTML, CSS and ES modules, no build step and nothing from elsewhere, so the page runs
under a strict Content-Security-Policy: no inline script or style at all.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

ASSETS = {
    "app.js": "text/javascript",
    "progimage-url.js": "text/javascript",
    # Not used by the page: served so that a front end can fetch them beside the URL helper.
    "next-loader.js": "text/javascript",
    "nuxt-provider.js": "text/javascript",
    "style.css": "text/css",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@cache
def _file(name: str) -> bytes:
    return resources.files("proxy").joinpath("static", "playground", name).read_bytes()


def wants_html(accept: str) -> bool:
    """True when `Accept` prefers text/html to JSON: a browser, not curl (`*/*`) or a client."""
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = max(q, quality.get(media.lower(), 0.0))
    html = quality.get("text/html", 0.0)
    return html > 0 and html >= quality.get("application/json", 0.0)


def page() -> web.Response:
    return web.Response(
        body=_file("index.html"),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CSP,
            "Referrer-Policy": "no-referrer",
            "Vary": "Accept",
        },
    )


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(
        body=_file(name),
        content_type=ASSETS[name],
        headers={"Cache-Control": "no-cache"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """GET (and HEAD) /playground/{asset}; call it before the catch-all derived-image route."""
    router.add_get("/playground/{asset}", asset)
