"""GET /openapi.json and GET /docs: the API document and a packaged Swagger UI to browse it.

Every asset comes from installed packages (`proxy/static`, and Swagger UI from the
`swagger-ui-py` distribution): no CDN, no inline script, so the page works offline and under
`Content-Security-Policy: default-src 'self'`.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from importlib import resources
from pathlib import Path

from aiohttp import web

ASSETS = "/docs/assets/"
# Swagger UI's dist files that the page needs, served from the swagger-ui-py package.
VENDOR_ASSETS = {
    "swagger-ui.css": "text/css",
    "index.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-16x16.png": "image/png",
    "favicon-32x32.png": "image/png",
}
# Our own, from proxy/static.
OWN_ASSETS = {"docs-init.js": "text/javascript"}

# Relative links: /docs and /docs/assets/… resolve them the same way behind any prefix.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ProgImage API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
  <link rel="stylesheet" href="docs/assets/index.css">
  <link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="docs/assets/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script src="docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="docs/assets/docs-init.js"></script>
</body>
</html>
"""
# The page itself needs nothing from elsewhere; Swagger UI uses inline styles.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)


@cache
def _static(name: str) -> bytes:
    return resources.files("proxy").joinpath("static", name).read_bytes()


@cache
def swagger_ui_dir() -> Path:
    """Swagger UI's dist directory inside swagger-ui-py, found without importing the package
    (its __init__ pulls in jinja2 and framework glue we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def openapi(request: web.Request) -> web.Response:
    return web.Response(
        body=_static("openapi.json"),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def docs(request: web.Request) -> web.Response:
    return web.Response(
        text=PAGE,
        content_type="text/html",
        headers={"Cache-Control": "public, max-age=300", "Content-Security-Policy": PAGE_CSP},
    )


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["asset"]
    headers = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if name in OWN_ASSETS:
        return web.Response(body=_static(name), content_type=OWN_ASSETS[name], headers=headers)
    if name in VENDOR_ASSETS:
        response = web.FileResponse(swagger_ui_dir() / name, headers=headers)
        response.content_type = VENDOR_ASSETS[name]
        return response
    raise web.HTTPNotFound()


def add_routes(router: web.UrlDispatcher) -> None:
    """GET (and HEAD) /openapi.json, /docs and /docs/assets/{asset}.

    Call it before the catch-all `/{path:.+}` derived-image route, which would shadow these.
    """
    router.add_get("/openapi.json", openapi)
    router.add_get("/docs", docs)
    router.add_get(ASSETS + "{asset}", asset)
