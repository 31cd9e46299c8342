"""The OpenAPI document in proxy/static, its coverage of the routes, and the /docs page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib import resources
from urllib.parse import urljoin, urlsplit

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from proxy import docs
from proxy.app import create_app
from proxy.config import Config

DOCUMENT_BYTES = resources.files("proxy").joinpath("static", "openapi.json").read_bytes()
DOCUMENT = json.loads(DOCUMENT_BYTES)
METHODS = {"get", "put", "post", "delete", "head", "patch", "options"}


def openapi_path(canonical: str) -> str:
    """aiohttp's `/images/{id:[0-9a-f]{32}}.{ext:[A-Za-z0-9]+}` → `/images/{id}.{ext}`."""
    out, i = [], 0
    while i < len(canonical):
        if canonical[i] != "{":
            out.append(canonical[i])
            i += 1
            continue
        depth, j = 0, i
        while True:  # the matching brace: the regex may nest its own `{32}`
            depth += {"{": 1, "}": -1}.get(canonical[j], 0)
            if depth == 0:
                break
            j += 1
        out.append("{" + canonical[i + 1 : j].split(":", 1)[0] + "}")
        i = j + 1
    return "".join(out)


def test_openapi_path_mapping() -> None:
    assert openapi_path("/images/{id:[0-9a-f]{32}}") == "/images/{id}"
    assert openapi_path("/images/{id:[0-9a-f]{32}}.{ext:[A-Za-z0-9]+}") == "/images/{id}.{ext}"
    assert openapi_path("/{path:.+}") == "/{path}"
    assert openapi_path("/health") == "/health"


def test_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    validate(DOCUMENT)


def test_every_route_of_the_app_is_documented() -> None:
    app = create_app(Config())
    docs.add_routes(app.router)  # what app.py does (before its catch-all route)
    missing = []
    for route in app.router.routes():
        if route.method == "*":
            continue
        path = openapi_path(route.resource.canonical)
        method = route.method.lower()
        if method == "head" and method not in DOCUMENT["paths"].get(path, {}):
            continue  # aiohttp adds HEAD to every GET; documented where it matters
        if method not in DOCUMENT["paths"].get(path, {}):
            missing.append(f"{route.method} {path}")
    assert not missing, f"routes missing from openapi.json: {missing}"


@pytest.mark.parametrize(
    "path",
    ["/", "/health", "/metrics", "/openapi.json", "/docs", "/images", "/images/{id}",
     "/images/{id}.{ext}", "/images/{id}/info", "/images/{a}/diff/{b}", "/info/{source}",
     "/jobs/{job}", "/{path}"],
)  # fmt: skip
def test_the_spec_endpoints_are_documented(path: str) -> None:
    assert path in DOCUMENT["paths"]


def test_writes_declare_optional_bearer_auth_and_error_responses() -> None:
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in DOCUMENT["paths"].items():
        for method in {"put", "post", "delete"} & item.keys():
            operation = item[method]
            assert operation["security"] == [{}, {"bearerAuth": []}], (method, path)
            assert {"401", "403"} <= operation["responses"].keys(), (method, path)
    responses = DOCUMENT["components"]["responses"]
    assert "Retry-After" in responses["ServiceUnavailable"]["headers"]
    for name in ("BadRequest", "NotFound", "Unprocessable", "BadGateway", "GatewayTimeout"):
        schema = responses[name]["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    problem = DOCUMENT["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


def test_every_reference_resolves() -> None:
    refs = re.findall(r'"\$ref": "#/([^"]+)"', DOCUMENT_BYTES.decode())
    assert refs
    for ref in refs:
        node = DOCUMENT
        for part in ref.split("/"):
            node = node[part]


# --- serving: a tiny app with only the docs routes (the real app adds them before its
# catch-all route; this keeps the test independent of that ordering)


@pytest.fixture
async def docs_client(aiohttp_client):
    app = web.Application()
    docs.add_routes(app.router)
    return await aiohttp_client(app)


async def test_openapi_json_is_served_as_is(docs_client) -> None:
    response = await docs_client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.read() == DOCUMENT_BYTES


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in attrs
            if "src" in attrs:
                self.links.append((tag, attrs["src"]))
        elif tag == "link" and attrs.get("href"):
            self.links.append((tag, attrs["href"]))
        for name in ("onload", "onclick", "onerror"):
            assert name not in attrs, f"inline handler {name} on <{tag}>"

    def handle_endtag(self, tag) -> None:
        self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


EXPECTED_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}


async def test_docs_page_uses_only_same_origin_assets_that_load(docs_client) -> None:
    response = await docs_client.get("/docs")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    page = _Links()
    page.feed(await response.text())
    assert page.inline_scripts == 0
    scripts = [url for tag, url in page.links if tag == "script"]
    assert any(url.endswith("swagger-ui-bundle.js") for url in scripts)
    assert any(url.endswith("docs-init.js") for url in scripts)
    base = "http://service.test/docs"
    for _tag, url in page.links:
        absolute = urlsplit(urljoin(base, url))
        assert absolute.netloc == "service.test", f"external asset {url}"
        asset = await docs_client.get(absolute.path)
        assert asset.status == 200, url
        suffix = absolute.path[absolute.path.rfind(".") :]
        assert asset.content_type == EXPECTED_TYPES[suffix], url
        assert len(await asset.read()) > 0
    init = await (await docs_client.get("/docs/assets/docs-init.js")).text()
    assert "SwaggerUIBundle(" in init
    assert "http://" not in init and "https://" not in init


async def test_swagger_ui_bundle_reads_openapi_3_1(docs_client) -> None:
    # Swagger UI renders OpenAPI 3.1 from 5.0 on; the 4.x line refuses the document.
    body = await (await docs_client.get("/docs/assets/swagger-ui-bundle.js")).text()
    assert "OpenAPI 3.1" in body or "openapi31" in body.lower()


async def test_unknown_assets_are_not_served(docs_client) -> None:
    for path in ("/docs/assets/swagger-initializer.js", "/docs/assets/..%2Fdocs.py",
                 "/docs/assets/LICENSE"):  # fmt: skip
        assert (await docs_client.get(path)).status == 404, path
