"""Access and refresh tokens: RS256 JWTs issued by the auth service, verified everywhere else.

Verification needs only public keys (a JWKS): services read them from the same settings the auth
service signs with; the gateway and BFFs fetch the auth service's ``/.well-known/jwks.json``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, Field, ValidationError

from adx.dev_secrets import load_or_create
from adx.settings import Settings
from contracts.context import RequestContext

ALGORITHM = "RS256"
DEV_KEY_FILE = "secrets/jwt-keys.json"


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by a known key."""


class TokenClaims(BaseModel):
    sub: str  # user id
    tid: str  # tenant id the token acts in
    sid: str  # session id (revocation is checked against it)
    typ: TokenType
    roles: list[str] = Field(default_factory=list)
    email: str | None = None
    iss: str
    aud: str
    iat: int
    exp: int
    jti: str

    def context(self, correlation_id: str | None = None) -> RequestContext:
        return RequestContext(
            user_id=self.sub,
            tenant_id=self.tid,
            roles=tuple(self.roles),
            correlation_id=correlation_id,
        )


@dataclass(frozen=True)
class SigningKeys:
    active_kid: str
    private_pems: Mapping[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        if settings.jwt_private_keys:
            pems = {kid: key.get_secret_value() for kid, key in settings.jwt_private_keys.items()}
            return cls(settings.jwt_active_kid or list(pems)[-1], pems)
        if settings.is_production:
            raise ValueError("ADX_JWT_PRIVATE_KEYS is not set: production needs signing keys")
        document = load_or_create(settings.data_dir / DEV_KEY_FILE, _new_dev_key)
        pems = {str(k): str(v) for k, v in document["keys"].items()}
        return cls(settings.jwt_active_kid or str(document["active_kid"]), pems)

    def jwks(self) -> dict[str, Any]:
        """Every key's public half, as published at ``/.well-known/jwks.json``."""
        keys = []
        for kid, pem in self.private_pems.items():
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError(f"JWT key {kid!r} is not an RSA key")
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": keys}

    def issue(
        self,
        settings: Settings,
        *,
        user_id: str,
        tenant_id: str,
        session_id: str,
        token_type: TokenType,
        roles: list[str],
        email: str | None = None,
        now: int | None = None,
    ) -> tuple[str, TokenClaims]:
        issued_at = int(time.time()) if now is None else now
        ttl = (
            settings.access_token_ttl_seconds
            if token_type is TokenType.ACCESS
            else settings.refresh_token_ttl_seconds
        )
        claims = TokenClaims(
            sub=user_id,
            tid=tenant_id,
            sid=session_id,
            typ=token_type,
            roles=roles,
            email=email,
            iss=settings.jwt_issuer,
            aud=settings.jwt_audience,
            iat=issued_at,
            exp=issued_at + ttl,
            jti=uuid.uuid4().hex,
        )
        token = jwt.encode(
            claims.model_dump(mode="json", exclude_none=True),
            self.private_pems[self.active_kid],
            algorithm=ALGORITHM,
            headers={"kid": self.active_kid},
        )
        return token, claims


class TokenVerifier:
    """Verifies tokens against a JWKS (public keys only)."""

    def __init__(self, jwks: Mapping[str, Any], *, issuer: str, audience: str) -> None:
        self._keys = {key["kid"]: jwt.PyJWK(dict(key)) for key in jwks.get("keys", [])}
        self._issuer = issuer
        self._audience = audience

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        return cls(
            SigningKeys.from_settings(settings).jwks(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )

    def knows(self, kid: str) -> bool:
        return kid in self._keys

    @staticmethod
    def key_id(token: str) -> str | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            return None
        return kid if isinstance(kid, str) else None

    def verify(self, token: str, expected: TokenType = TokenType.ACCESS) -> TokenClaims:
        kid = self.key_id(token)
        if kid is None or kid not in self._keys:
            raise InvalidToken("unknown signing key")
        try:
            raw = jwt.decode(
                token,
                self._keys[kid],
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            claims = TokenClaims.model_validate(raw)
        except (jwt.PyJWTError, ValidationError) as error:
            raise InvalidToken("invalid token") from error
        if claims.typ is not expected:
            raise InvalidToken(f"not an {expected.value} token")
        return claims


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def new_signing_key() -> str:
    """A new RS256 private key, as the PEM that ``jwt_private_keys`` holds."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _new_dev_key() -> dict[str, Any]:
    pem = new_signing_key()
    kid = f"dev-{uuid.uuid4().hex[:8]}"
    return {"version": 1, "active_kid": kid, "keys": {kid: pem}}
