"""CORS: preflights and response headers for the origins in cors.allow_origins."""

from __future__ import annotations

import pytest

from proxy import cors

ALLOWED = "https://app.example"
OTHER = "https://evil.example"


async def _upload(client, body: bytes) -> str:
    response = await client.put("/images", data=body)
    assert response.status == 201
    return (await response.json())["id"]


async def test_no_origins_means_no_cors(app_client, jpeg_bytes) -> None:
    client = await app_client()
    image = await _upload(client, jpeg_bytes)
    response = await client.get(f"/resize/50x/{image}", headers={"Origin": ALLOWED})
    assert response.status == 200
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert "Origin" not in response.headers.get("Vary", "")
    preflight = await client.options(
        "/images", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_preflight_from_an_allowed_origin(app_client) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]})
    response = await client.options(
        "/images",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "PUT", "POST", "DELETE"} <= methods
    allowed_headers = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_preflight_reaches_any_path_even_with_write_tokens(app_client) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]}, auth={"tokens": ["t"]})
    for path in ("/images/0123456789abcdef0123456789abcdef", "/resize/10x/https://x.example/a"):
        response = await client.options(
            path, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "DELETE"}
        )
        assert response.status == 204, path


async def test_preflight_from_another_origin_is_not_approved(app_client) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]})
    response = await client.options(
        "/images", headers={"Origin": OTHER, "Access-Control-Request-Method": "PUT"}
    )
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.content_type == "application/problem+json"


async def test_images_and_json_carry_the_headers_for_an_allowed_origin(
    app_client, jpeg_bytes
) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]})
    image = await _upload(client, jpeg_bytes)
    for path in (f"/resize/50x/fmt/auto/{image}", f"/images/{image}", "/images", "/health"):
        response = await client.get(path, headers={"Origin": ALLOWED, "Accept": "image/avif,*/*"})
        assert response.status == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
        assert response.headers["Timing-Allow-Origin"] == ALLOWED
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"ETag", "Server-Timing", "Content-Length", "Location"} <= exposed
        assert "Origin" in response.headers["Vary"]
    # negotiated variants keep their own Vary entry
    negotiated = await client.get(f"/resize/50x/fmt/auto/{image}", headers={"Origin": ALLOWED})
    assert {v.strip() for v in negotiated.headers["Vary"].split(",")} == {"Accept", "Origin"}


async def test_uploads_and_not_modified_carry_the_headers(app_client, jpeg_bytes) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]})
    response = await client.put("/images", data=jpeg_bytes, headers={"Origin": ALLOWED})
    assert response.status == 201
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    image = (await response.json())["id"]
    first = await client.get(f"/resize/20x/{image}", headers={"Origin": ALLOWED})
    etag = first.headers["ETag"]
    again = await client.get(
        f"/resize/20x/{image}", headers={"Origin": ALLOWED, "If-None-Match": etag}
    )
    assert again.status == 304
    assert again.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_problem_responses_carry_the_headers(app_client) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]}, auth={"tokens": ["t"]})
    for method, path, status in [
        ("GET", "/resize/nope/0123456789abcdef0123456789abcdef", 400),
        ("GET", "/images/0123456789abcdef0123456789abcdef", 404),
        ("PUT", "/images", 401),
    ]:
        response = await client.request(method, path, headers={"Origin": ALLOWED})
        assert response.status == status
        assert response.content_type == "application/problem+json"
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_another_origin_gets_no_allow_origin_but_the_vary(app_client) -> None:
    client = await app_client(cors={"allow_origins": [ALLOWED]})
    response = await client.get("/health", headers={"Origin": OTHER})
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    # a shared cache must not give this response to the allowed origin, nor the reverse
    assert response.headers["Vary"] == "Origin"
    plain = await client.get("/health")
    assert plain.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Origin" not in plain.headers


async def test_any_origin(app_client) -> None:
    client = await app_client(cors={"allow_origins": ["*"]})
    response = await client.get("/health", headers={"Origin": OTHER})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Timing-Allow-Origin"] == "*"
    assert "Vary" not in response.headers
    preflight = await client.options(
        "/images", headers={"Origin": OTHER, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize(
    ("configured", "origin", "allowed"),
    [
        ("https://app.example", "https://app.example", True),
        ("HTTPS://App.Example/", "https://app.example", True),
        ("https://app.example", "https://app.example:8443", False),
        ("https://app.example", "http://app.example", False),
        ("https://app.example", "null", False),
        ("*", "null", True),
    ],
)
def test_origin_matching(configured: str, origin: str, allowed: bool) -> None:
    assert cors.Policy([configured]).allows(origin) is allowed


async def test_index_json_and_the_playground_page(app_client) -> None:
    client = await app_client(auth={"tokens": ["t"]})
    described = await client.get("/", headers={"Accept": "*/*"})
    body = await described.json()
    assert body["write_tokens"] is True and body["signed_urls"] is False
    assert body["arguments"]["resize"] and body["links"]["openapi"] == "/openapi.json"
    assert "Accept" in described.headers["Vary"]
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
    page = await client.get("/", headers={"Accept": browser})
    assert page.content_type == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "img-src 'self' blob: data:" in csp
    assert "unsafe-inline" not in csp
    html = await page.text()
    assert "<script>" not in html and "style=" not in html
    for asset in ("app.js", "progimage-url.js", "style.css"):
        response = await client.get(f"/playground/{asset}")
        assert response.status == 200, asset
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/playground/missing.js")).status == 404
