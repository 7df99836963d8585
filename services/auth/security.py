"""The auth service's secrets: argon2 password hashes, one-time tokens kept as SHA-256 hashes,
TOTP secrets encrypted at rest, recovery codes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.auth import RECOVERY_CODE_COUNT
from workflow_client.codec import KeyRing

_hasher = PasswordHasher()
# Verified when the email is unknown, so both answers take about as long (no enumeration).
_DUMMY_HASH = _hasher.hash("not a password of anyone: timing equaliser")


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return False

    valid = await asyncio.to_thread(check)
    return valid and password_hash is not None


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def new_token() -> str:
    """A one-time token for a link (verification, reset, session exchange): 256 random bits."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a high-entropy token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """``xxxx-xxxx-xxxx-xxxx`` from a base32 alphabet: 80 random bits each."""
    codes = []
    for _ in range(count):
        raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def recovery_code_hash(code: str) -> str:
    return token_hash(code.strip().lower().replace(" ", ""))


# TOTP ------------------------------------------------------------------------------------

TOTP_ISSUER = "ADX Core"


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step ``code`` is valid for (the current one or a neighbour, for clock drift),
    or None. Callers accept a step only once (replay protection)."""
    totp = pyotp.TOTP(secret)
    at = time.time() if now is None else now
    for drift in (0, -1, 1):
        moment = at + drift * totp.interval
        if hmac.compare_digest(totp.at(moment), code.strip()):
            return int(moment) // totp.interval
    return None


# Encryption at rest ------------------------------------------------------------------------


class SecretBox:
    """AES-256-GCM for small secrets at rest (TOTP secrets), with keys derived from the
    payload key ring (HKDF, a purpose of its own), so rotation works the same way: the active
    key encrypts, every listed key decrypts. ``context`` binds a ciphertext to its row."""

    _INFO = b"adx-auth-secret-at-rest-v1"

    def __init__(self, keyring: KeyRing) -> None:
        self._active = keyring.active_key_id
        self._keys = {kid: self._derive(key) for kid, key in keyring.keys.items()}

    @classmethod
    def _derive(cls, key: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=cls._INFO).derive(key)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self._keys[self._active]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return f"v1:{self._active}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, ciphertext: str, context: str) -> str:
        version, kid, blob = ciphertext.split(":", 2)
        if version != "v1" or kid not in self._keys:
            raise ValueError("the secret was encrypted with an unknown key")
        raw = base64.b64decode(blob)
        try:
            return AESGCM(self._keys[kid]).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as error:
            raise ValueError("the secret cannot be decrypted") from error
