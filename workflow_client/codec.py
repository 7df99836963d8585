"""Payload encryption: a key ring and an AES-256-GCM :class:`PayloadCodec`.

Every payload the SDK writes to Temporal (workflow/activity inputs and results, signals,
queries, updates, memo and, with the converter in :mod:`workflow_client.converter`, failure
messages and stack traces) passes through :class:`EncryptionCodec`, so the Temporal server,
its database and anyone reading raw history see ciphertext only.

Wire format (the one of Temporal's ``encryption`` samples, so the Go/TypeScript codecs and
codec servers read it too): the whole original ``Payload`` serialized with
``SerializeToString`` is the plaintext; the new payload's data is a 12-byte random nonce
followed by the AES-GCM ciphertext and tag; its metadata is ``encoding=binary/encrypted`` and
``encryption-key-id=<id>``.

Rotation: the ring's active key encrypts, every key in the ring decrypts. To rotate, list the
new key beside the old ones while the old key stays active (deploy everywhere), then make the
new key active; keep the old key listed for as long as histories encrypted with it are kept.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from adx.dev_secrets import DevSecretError, load_or_create
from adx.settings import Settings

KEY_SIZE = 32  # AES-256
NONCE_SIZE = 12  # the GCM standard nonce
ENCODING_KEY = "encoding"
ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_KEY = "encryption-key-id"

KEYS_ENV = "ADX_ENCRYPTION_KEYS"
ACTIVE_KEY_ENV = "ADX_ENCRYPTION_ACTIVE_KEY_ID"
DEV_KEY_FILE = Path("secrets") / "payload-keys.json"  # relative to settings.data_dir

# Key ids travel in every payload's metadata and in error messages: short and plain.
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_KEY_HINT = "generate one with: openssl rand -base64 32"


class KeyRingError(ValueError):
    """The key ring's configuration is unusable (never carries key material)."""


class PayloadDecryptionError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key id, or tampered/corrupt data."""

    def __init__(self, message: str, *, key_id: str | None) -> None:
        super().__init__(message)
        self.key_id = key_id


def generate_key() -> bytes:
    """A fresh random 32-byte AES-256 key."""
    return AESGCM.generate_key(bit_length=KEY_SIZE * 8)


@dataclass(frozen=True, eq=False, repr=False)
class KeyRing:
    """Key id -> 32-byte key, and the id of the key that encrypts.

    Immutable; ``repr`` shows key ids only, never key bytes.
    """

    active_key_id: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the key ring is empty: at least one encryption key is required")
        checked: dict[str, bytes] = {}
        for key_id, key in self.keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                raise KeyRingError(
                    f"invalid encryption key id {_show_id(key_id)}: use 1-64 characters "
                    "from A-Z a-z 0-9 . _ : - starting with a letter or digit"
                )
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
                size = len(key) if isinstance(key, bytes | bytearray) else type(key).__name__
                raise KeyRingError(
                    f"encryption key {key_id!r} must be {KEY_SIZE} bytes (AES-256), got {size}"
                )
            checked[key_id] = bytes(key)
        if self.active_key_id not in checked:
            raise KeyRingError(
                f"active encryption key id {_show_id(self.active_key_id)} is not in the key "
                f"ring (known ids: {_show_ids(checked)})"
            )
        object.__setattr__(self, "keys", MappingProxyType(checked))

    def __repr__(self) -> str:
        return f"KeyRing(active_key_id={self.active_key_id!r}, key_ids={self.key_ids!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active_key_id]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The ring from ``ADX_ENCRYPTION_KEYS`` (key id -> base64 of 32 bytes).

        The active key is ``ADX_ENCRYPTION_ACTIVE_KEY_ID`` when set, else the last listed key
        (so appending a key to the list rotates to it; set the active id explicitly to add a
        key everywhere before any process starts encrypting with it).

        With no keys configured, production refuses to start. Dev and test generate one key
        on first use and keep it in ``<data_dir>/secrets/payload-keys.json`` (directory 0700,
        file 0600), so data written by an earlier run stays readable after a restart.
        """
        if settings.encryption_keys:
            keys = {
                key_id: _decode_key(key_id, secret.get_secret_value(), source=KEYS_ENV)
                for key_id, secret in settings.encryption_keys.items()
            }
            active = settings.encryption_active_key_id or list(keys)[-1]
            return _ring(active, keys, source=KEYS_ENV)
        if settings.is_production:
            raise KeyRingError(
                f"{KEYS_ENV} is not set: production needs payload encryption keys, as JSON "
                f'{{"<key id>": "<base64 of 32 random bytes>"}} ({_KEY_HINT})'
            )
        path = settings.data_dir / DEV_KEY_FILE
        stored_active, keys = _load_or_create_dev_keys(path)
        active = settings.encryption_active_key_id or stored_active or list(keys)[-1]
        return _ring(active, keys, source=str(path))


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads; see the module docstring for the format."""

    def __init__(self, keyring: KeyRing) -> None:
        super().__init__()
        self._keyring = keyring
        self._active_key_id = keyring.active_key_id.encode()
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keyring.keys.items()}
        self._encryptor = self._ciphers[keyring.active_key_id]

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._encryptor.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(
            metadata={ENCODING_KEY: ENCRYPTED_ENCODING, KEY_ID_KEY: self._active_key_id},
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; payloads this codec did not encrypt pass through as they are."""
        if payload.metadata.get(ENCODING_KEY) != ENCRYPTED_ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_KEY)
        if raw_id is None:
            raise PayloadDecryptionError(
                f"encrypted payload has no {KEY_ID_KEY!r} metadata", key_id=None
            )
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload was encrypted with key id {_show_id(key_id)}, which is not in the key "
                f"ring (known ids: {_show_ids(self._ciphers)}); add that key to {KEYS_ENV}",
                key_id=key_id,
            )
        data = payload.data
        try:
            if len(data) < NONCE_SIZE + 16:  # nonce + GCM tag
                raise InvalidTag
            plain = cipher.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], None)
            return Payload.FromString(plain)
        except (InvalidTag, DecodeError):
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} failed authentication: it was "
                "altered or truncated, or encrypted with a different key under the same id",
                key_id=key_id,
            ) from None


# Helpers --------------------------------------------------------------------------------


def _ring(active: str, keys: dict[str, bytes], *, source: str) -> KeyRing:
    try:
        return KeyRing(active_key_id=active, keys=keys)
    except KeyRingError as err:
        hint = f" (set {ACTIVE_KEY_ENV} to one of them)" if active not in keys else ""
        raise KeyRingError(f"{err} [from {source}]{hint}") from None


def _decode_key(key_id: str, encoded: str, *, source: str) -> bytes:
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(
            f"encryption key {_show_id(key_id)} in {source} is not valid base64 ({_KEY_HINT})"
        ) from None


def _load_or_create_dev_keys(path: Path) -> tuple[str | None, dict[str, bytes]]:
    try:
        document = load_or_create(path, _new_dev_key_document)
        active = document.get("active_key_id")
        stored = document["keys"]
        if not isinstance(stored, dict) or not (active is None or isinstance(active, str)):
            raise TypeError
    except (DevSecretError, TypeError, KeyError):
        raise KeyRingError(
            f"the development key file {path} is unreadable or malformed; move it away to "
            "generate a new key (payloads encrypted with the old key become unreadable)"
        ) from None
    keys = {
        str(key_id): _decode_key(str(key_id), str(value), source=str(path))
        for key_id, value in stored.items()
    }
    return active, keys


def _new_dev_key_document() -> dict[str, Any]:
    key_id = f"dev-{secrets.token_hex(4)}"
    return {
        "version": 1,
        "active_key_id": key_id,
        "keys": {key_id: base64.b64encode(generate_key()).decode("ascii")},
    }


def _show_id(key_id: object) -> str:
    text = repr(key_id)
    return text if len(text) <= 70 else text[:67] + "...'"


def _show_ids(keys: Mapping[str, object]) -> str:
    return ", ".join(repr(key_id) for key_id in keys) or "none"
