"""The tampered-token matrix: every way a token can be forged or misused is refused by the
gateway (401, problem+json) and by a BFF (UNAUTHENTICATED), both verifying through the auth
service's JWKS as in production; the untampered token passes (so the matrix can fail)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from adx.identity import ALGORITHM, SigningKeys, TokenType
from adx.settings import Settings
from graph.runtime import load
from tests.gateway.conftest import ALICE, Stack
from tests.support.bff import running_bff
from tests.support.demo import ops
from workflow_client.operations import WorkflowOperations

pytestmark = pytest.mark.behaviour

__all__ = ["ops"]


def _segment(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _good(settings: Settings, **issue: Any) -> str:
    token, _claims = SigningKeys.from_settings(settings).issue(
        settings,
        user_id=ALICE.user_id,
        tenant_id=ALICE.tenant_id,
        session_id="matrix-session",
        token_type=issue.pop("token_type", TokenType.ACCESS),
        roles=["member"],
        **issue,
    )
    return token


def tampered_tokens(settings: Settings) -> dict[str, str]:
    keys = SigningKeys.from_settings(settings)
    good = _good(settings)
    header_part, payload_part, signature_part = good.split(".")
    header = jwt.get_unverified_header(good)
    payload = jwt.decode(good, options={"verify_signature": False})
    private = serialization.load_pem_private_key(
        keys.private_pems[keys.active_kid].encode(), password=None
    )
    assert isinstance(private, rsa.RSAPrivateKey)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def signed(claims: dict[str, Any], key: Any = private, **headers: Any) -> str:
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={**header, **headers})

    hs_head = _segment({**header, "alg": "HS256"})
    hs_signature = hmac.new(
        public_pem, f"{hs_head}.{payload_part}".encode(), hashlib.sha256
    ).digest()
    without_exp = {k: v for k, v in payload.items() if k != "exp"}
    return {
        "alg none": f"{_segment({**header, 'alg': 'none'})}.{payload_part}.",
        "HS256 keyed with the public key": f"{hs_head}.{payload_part}.{_segment(hs_signature)}",
        "payload edited (roles), signature kept": (
            f"{header_part}.{_segment({**payload, 'roles': ['owner', 'admin']})}.{signature_part}"
        ),
        "payload edited (tenant), signature kept": (
            f"{header_part}.{_segment({**payload, 'tid': 'globex'})}.{signature_part}"
        ),
        "signature stripped": f"{header_part}.{payload_part}.",
        "expired": _good(settings, now=int(time.time()) - 24 * 3600),
        "issued in the future": signed({**payload, "iat": int(time.time()) + 3600}),
        "another issuer": signed({**payload, "iss": "https://evil.example"}),
        "another audience": signed({**payload, "aud": "someone-else"}),
        "no expiry": signed(without_exp),
        "a refresh token": _good(settings, token_type=TokenType.REFRESH),
        "another key under the real kid": signed(payload, stranger),
        "an unknown kid": signed(payload, stranger, kid="not-a-published-key"),
        "no kid": jwt.encode(payload, private, algorithm=ALGORITHM),
        "not a JWT": "not.a.token",
    }


async def test_the_gateway_refuses_every_tampered_token(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    url = f"{stack.gateway}/api/workflows"
    good = await http.get(url, headers={"Authorization": f"Bearer {_good(settings)}"})
    assert good.status_code == 200
    for case, token in tampered_tokens(settings).items():
        answer = await http.get(url, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, case
        assert answer.headers["content-type"].startswith("application/problem+json"), case


async def test_a_bff_refuses_every_tampered_token(
    settings: Settings, ops: WorkflowOperations, http: httpx.AsyncClient
) -> None:
    query = {"query": "{ operations { edges { node { id } } } }"}
    async with running_bff(load("workflow"), settings, operations=ops) as (url, _deps):
        good = await http.post(
            f"{url}/graphql", json=query, headers={"Authorization": f"Bearer {_good(settings)}"}
        )
        assert "errors" not in good.json(), good.json()
        for case, token in tampered_tokens(settings).items():
            answer = await http.post(
                f"{url}/graphql", json=query, headers={"Authorization": f"Bearer {token}"}
            )
            [error] = answer.json()["errors"]
            assert error["extensions"]["code"] == "UNAUTHENTICATED", (case, error)
