"""The project's data converter: pydantic JSON, then AES-GCM encryption of every payload.

Clients, workers and replayers must all use the same converter (built from the same key ring
or a ring that holds its keys), or they cannot read each other's payloads.
"""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from workflow_client.codec import EncryptionCodec, KeyRing

__all__ = ["build_data_converter"]


def build_data_converter(keyring: KeyRing) -> DataConverter:
    """Pydantic payload conversion + :class:`EncryptionCodec`.

    The failure converter moves failure messages and stack traces into encoded attributes,
    so they are encrypted too (the default leaves them in plaintext in history). Search
    attributes and (by default) headers never pass through a codec: keep secrets out of them.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
