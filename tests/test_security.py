"""Signed URLs and write tokens through the in-process app, and the `progimage sign` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO, decode
from proxy import signing
from proxy.app import create_app
from proxy.errors import Forbidden

KEY = "current-secret"
OLD_KEY = "previous-secret"


def signed(path: str, key: str = KEY) -> str:
    return signing.signed_path(path, key)


@pytest.fixture
async def stored_id(app_client, jpeg_bytes) -> str:
    """An image stored in the data directory that the signing clients below share."""
    client = await app_client()
    response = await client.put("/images", data=jpeg_bytes)
    assert response.status == 201
    return (await response.json())["id"]


@pytest.fixture
async def signing_client(app_client, stored_id):
    return await app_client(signing={"key": [KEY, OLD_KEY]})


async def status_of(client, path: str) -> int:
    response = await client.get(path)
    await response.read()
    return response.status


# --- signatures


async def test_unsigned_url_is_403(signing_client, stored_id):
    response = await signing_client.get(f"/resize/50x/{stored_id}")
    assert response.status == 403
    assert response.content_type == "application/problem+json"
    assert "signed" in (await response.json())["detail"]


async def test_signed_url_is_200(signing_client, stored_id):
    response = await signing_client.get(signed(f"/resize/50x/{stored_id}"))
    assert response.status == 200
    assert decode(await response.read()).width == 50


@pytest.mark.parametrize(
    "signature",
    ["", "AAAA", "x" * 43, signing.sign("/resize/50x/other", KEY), "%00", "sig"],
)
async def test_wrong_signature_is_403(signing_client, stored_id, signature):
    assert await status_of(signing_client, f"/sig/{signature}/resize/50x/{stored_id}") == 403


async def test_signature_covers_the_operations(signing_client, stored_id):
    good = signing.sign(f"/resize/50x/{stored_id}", KEY)
    assert await status_of(signing_client, f"/sig/{good}/resize/50x/{stored_id}") == 200
    assert await status_of(signing_client, f"/sig/{good}/resize/60x/{stored_id}") == 403
    assert await status_of(signing_client, f"/sig/{good}/resize/50x/grayscale/{stored_id}") == 403


async def test_signature_covers_the_query(signing_client, stored_id):
    path = f"/resize/50x/{stored_id}"
    with_query = signing.sign(f"{path}?v=1", KEY)
    assert await status_of(signing_client, f"/sig/{with_query}{path}?v=1") == 200
    assert await status_of(signing_client, f"/sig/{with_query}{path}?v=2") == 403
    assert await status_of(signing_client, f"/sig/{with_query}{path}") == 403
    without_query = signing.sign(path, KEY)
    assert await status_of(signing_client, f"/sig/{without_query}{path}?v=1") == 403


async def test_rotation_any_configured_key_verifies(signing_client, stored_id):
    path = f"/resize/50x/{stored_id}"
    assert await status_of(signing_client, signed(path, KEY)) == 200
    assert await status_of(signing_client, signed(path, OLD_KEY)) == 200
    assert await status_of(signing_client, signed(path, "retired-secret")) == 403


async def test_signature_is_checked_before_parsing(signing_client):
    # An unsigned malformed path says nothing about the grammar to an unauthenticated client.
    assert await status_of(signing_client, "/resize/banana/nothing") == 403


async def test_signed_malformed_path_is_400(signing_client):
    assert await status_of(signing_client, signed("/resize/banana/nothing")) == 400


async def test_expired_signed_url_is_403(signing_client, stored_id):
    past = int(time.time()) - 10
    assert await status_of(signing_client, signed(f"/expires/{past}/{stored_id}")) == 403
    future = int(time.time()) + 100
    response = await signing_client.get(signed(f"/expires/{future}/{stored_id}"))
    assert response.status == 200
    assert "immutable" not in response.headers["Cache-Control"]


async def test_from_import_is_under_the_same_signature_rules(signing_client, stored_id):
    path = f"/resize/50x/{stored_id}"
    unsigned = await signing_client.post("/images", json={"from": path})
    assert unsigned.status == 403
    accepted = await signing_client.post("/images", json={"from": signed(path)})
    assert accepted.status == 201
    assert (await accepted.json())["width"] == 50


async def test_storage_api_reads_need_no_signature(signing_client, stored_id):
    assert await status_of(signing_client, f"/images/{stored_id}") == 200
    assert await status_of(signing_client, f"/images/{stored_id}/info") == 200


async def test_without_a_key_the_sig_prefix_is_ignored(app_client, stored_id):
    client = await app_client()
    assert await status_of(client, f"/sig/anything/resize/50x/{stored_id}") == 200
    assert await status_of(client, f"/resize/50x/{stored_id}") == 200


def test_verify_uses_every_key():
    message = "/resize/50x/abc?v=1"
    signature = signing.sign(message, OLD_KEY)
    assert signing.check(f"/sig/{signature}/resize/50x/abc", "v=1", [KEY, OLD_KEY]) == (
        "/resize/50x/abc"
    )
    with pytest.raises(Forbidden):
        signing.check(f"/sig/{signature}/resize/50x/abc", "v=1", [KEY])


# --- write tokens

TOKENS = ["token-one", "token-two"]


@pytest.fixture
async def token_client(app_client):
    return await app_client(auth={"tokens": TOKENS})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("method", ["put", "post"])
async def test_upload_without_token_is_401(token_client, jpeg_bytes, method):
    response = await getattr(token_client, method)("/images", data=jpeg_bytes)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dG9rZW4tb25lOg=="},
        {"Authorization": "token-one"},
    ],
)
async def test_malformed_authorization_is_401(token_client, jpeg_bytes, header):
    response = await token_client.put("/images", data=jpeg_bytes, headers=header)
    assert response.status == 401


@pytest.mark.parametrize("token", ["wrong", "token-one-", "TOKEN-ONE", "token-"])
async def test_wrong_token_is_403(token_client, jpeg_bytes, token):
    response = await token_client.put("/images", data=jpeg_bytes, headers=bearer(token))
    assert response.status == 403


@pytest.mark.parametrize("token", TOKENS)
async def test_right_token_is_201(token_client, jpeg_bytes, token):
    response = await token_client.put("/images", data=jpeg_bytes, headers=bearer(token))
    assert response.status == 201


async def test_delete_needs_a_token(token_client, jpeg_bytes):
    created = await token_client.put("/images", data=jpeg_bytes, headers=bearer(TOKENS[0]))
    image_id = (await created.json())["id"]
    assert (await token_client.delete(f"/images/{image_id}")).status == 401
    assert (await token_client.delete(f"/images/{image_id}", headers=bearer("no"))).status == 403
    assert (await token_client.get(f"/images/{image_id}")).status == 200
    deleted = await token_client.delete(f"/images/{image_id}", headers=bearer(TOKENS[1]))
    assert deleted.status == 204


async def test_transform_on_demand_is_a_write(token_client, jpeg_bytes):
    assert (await token_client.post("/resize/20x", data=jpeg_bytes)).status == 401
    response = await token_client.post("/resize/20x", data=jpeg_bytes, headers=bearer("token-two"))
    assert response.status == 200


async def test_reads_never_need_a_token(token_client, jpeg_bytes):
    created = await token_client.put("/images", data=jpeg_bytes, headers=bearer(TOKENS[0]))
    image_id = (await created.json())["id"]
    for path in (f"/images/{image_id}", f"/resize/20x/{image_id}", "/images", "/health"):
        assert (await token_client.get(path)).status == 200, path


async def test_tokens_and_signatures_together(aiohttp_client, make_config, jpeg_bytes):
    client = await aiohttp_client(
        create_app(make_config(auth={"tokens": TOKENS}, signing={"key": KEY}))
    )
    # Uploads need the token, not a signature; derived reads need the signature, not a token.
    created = await client.put("/images", data=jpeg_bytes, headers=bearer(TOKENS[0]))
    image_id = (await created.json())["id"]
    assert (await client.get(f"/resize/20x/{image_id}")).status == 403
    assert (await client.get(signed(f"/resize/20x/{image_id}"))).status == 200


# --- the `progimage sign` command


def run_sign(tmp_path, path: str, env: dict[str, str] | None = None, key=KEY):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"signing": {"key": key}}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PROGIMAGE_")}
    return subprocess.run(
        [sys.executable, "-m", "proxy", "sign", path, "--config", str(config)],
        capture_output=True, text=True, cwd=REPO, env=clean | (env or {}), timeout=60,
    )  # fmt: skip


async def test_sign_command_output_is_accepted(tmp_path, signing_client, stored_id):
    result = run_sign(tmp_path, f"/resize/50x/{stored_id}?v=3")
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed == signed(f"/resize/50x/{stored_id}?v=3")
    assert await status_of(signing_client, printed) == 200


def test_sign_command_signs_with_the_first_key(tmp_path):
    result = run_sign(tmp_path, "resize/50x/abc", key=[KEY, OLD_KEY])
    assert result.returncode == 0, result.stderr
    path, _, query = result.stdout.strip().partition("?")
    assert signing.check(path, query, [KEY]) == "/resize/50x/abc"


def test_sign_command_takes_the_key_from_the_environment(tmp_path):
    result = run_sign(tmp_path, "/resize/50x/abc", env={"PROGIMAGE_SIGNING__KEY": "from-env"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == signed("/resize/50x/abc", "from-env")


def test_sign_command_without_a_key_fails(tmp_path):
    result = run_sign(tmp_path, "/resize/50x/abc", key=None)
    assert result.returncode == 2
    assert "signing.key" in result.stderr
    assert result.stdout == ""


async def test_info_of_a_source_is_a_derived_url_under_signing(signing_client, stored_id):
    # /info/{source} can make the server fetch and decode remote URLs: signed like a render.
    assert await status_of(signing_client, f"/info/{stored_id}") == 403
    assert await status_of(signing_client, "/info/https://example.com/a.jpg") == 403
    assert await status_of(signing_client, "/info" + signed(f"/{stored_id}")) == 200


async def test_malformed_remote_host_is_400(app_client):
    client = await app_client()
    assert await status_of(client, "/resize/10x/http://a..b/x") == 400
    response = await client.post("/images", json={"url": "http://a..b/x"})
    assert response.status == 400
