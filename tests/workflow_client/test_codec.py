"""Payload encryption: the key ring, the AES-GCM codec, and ciphertext-only history on a real
Temporal server."""

from __future__ import annotations

import base64
import json
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr
from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from adx.settings import Environment, Settings
from workflow_client.codec import (
    DEV_KEY_FILE,
    ENCRYPTED_ENCODING,
    EncryptionCodec,
    KeyRing,
    KeyRingError,
    PayloadDecryptionError,
    generate_key,
)
from workflow_client.converter import build_data_converter

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))


def make_settings(**overrides: Any) -> Settings:
    """Settings that ignore the runner's environment for every encryption field."""
    fields: dict[str, Any] = {
        "environment": Environment.TEST,
        "encryption_keys": {},
        "encryption_active_key_id": None,
        "codec_server_token": None,
        "codec_cors_origins": [],
    }
    fields.update(overrides)
    return Settings(_env_file=None, **fields)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def sample_payloads() -> list[Payload]:
    converted = pydantic_data_converter.payload_converter.to_payloads(
        [{"email": "ada@example.com", "note": "secret plans"}, b"\x00\x01raw bytes", None, 42]
    )
    extra = Payload(metadata={"encoding": b"json/plain", "custom": b"x"}, data=b'"hello"')
    return [*converted, extra]


# Codec --------------------------------------------------------------------------------------


async def test_round_trip_restores_every_payload_and_marks_the_key_id() -> None:
    codec = EncryptionCodec(KeyRing(active_key_id="k1", keys={"k1": KEY_1}))
    originals = sample_payloads()

    encoded = await codec.encode(originals)

    assert len(encoded) == len(originals)
    for original, sealed in zip(originals, encoded, strict=True):
        assert dict(sealed.metadata) == {
            "encoding": b"binary/encrypted",
            "encryption-key-id": b"k1",
        }
        assert original.SerializeToString() not in sealed.data
        if original.data:
            assert original.data not in sealed.data
    assert b"ada@example.com" not in b"".join(p.SerializeToString() for p in encoded)
    assert await codec.decode(encoded) == originals


async def test_each_encoding_uses_a_fresh_nonce() -> None:
    codec = EncryptionCodec(KeyRing(active_key_id="k1", keys={"k1": KEY_1}))
    payload = sample_payloads()[0]

    first, second = await codec.encode([payload, payload])

    assert first.data[:12] != second.data[:12]
    assert first.data != second.data
    assert await codec.decode([first, second]) == [payload, payload]


async def test_payloads_not_encrypted_by_the_codec_pass_through_decode() -> None:
    codec = EncryptionCodec(KeyRing(active_key_id="k1", keys={"k1": KEY_1}))
    plain = sample_payloads()

    assert await codec.decode(plain) == plain


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="flipped-tag-bit"),
        pytest.param(lambda data: data[:20] + bytes([data[20] ^ 0x80]) + data[21:], id="body"),
        pytest.param(lambda data: bytes([data[0] ^ 1]) + data[1:], id="nonce"),
        pytest.param(lambda data: data[:-5], id="truncated"),
        pytest.param(lambda data: data[:8], id="shorter-than-nonce"),
    ],
)
async def test_tampered_ciphertext_is_refused(tamper: Any) -> None:
    codec = EncryptionCodec(KeyRing(active_key_id="k1", keys={"k1": KEY_1}))
    (sealed,) = await codec.encode(sample_payloads()[:1])
    sealed.data = tamper(sealed.data)

    with pytest.raises(PayloadDecryptionError, match="'k1'") as caught:
        await codec.decode([sealed])
    assert caught.value.key_id == "k1"
    assert isinstance(caught.value, ValueError)


async def test_same_id_with_other_key_bytes_is_refused() -> None:
    (sealed,) = await EncryptionCodec(KeyRing("k1", {"k1": KEY_1})).encode(sample_payloads()[:1])

    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await EncryptionCodec(KeyRing("k1", {"k1": KEY_2})).decode([sealed])


async def test_unknown_key_id_is_named_and_key_bytes_are_not() -> None:
    (sealed,) = await EncryptionCodec(KeyRing("retired-2023", {"retired-2023": KEY_1})).encode(
        sample_payloads()[:1]
    )
    reader = EncryptionCodec(KeyRing("current", {"current": KEY_2}))

    with pytest.raises(PayloadDecryptionError) as caught:
        await reader.decode([sealed])

    message = str(caught.value)
    assert "'retired-2023'" in message
    assert "'current'" in message  # the ids the reader does know
    assert caught.value.key_id == "retired-2023"
    for key in (KEY_1, KEY_2):
        assert key.hex() not in message
        assert b64(key) not in message
        assert repr(key) not in message


async def test_encrypted_payload_without_key_id_is_refused() -> None:
    codec = EncryptionCodec(KeyRing("k1", {"k1": KEY_1}))
    (sealed,) = await codec.encode(sample_payloads()[:1])
    del sealed.metadata["encryption-key-id"]

    with pytest.raises(PayloadDecryptionError, match="encryption-key-id"):
        await codec.decode([sealed])


async def test_rotation_old_data_still_decodes_and_new_data_uses_the_new_key() -> None:
    before = EncryptionCodec(KeyRing(active_key_id="k1", keys={"k1": KEY_1}))
    after = EncryptionCodec(KeyRing(active_key_id="k2", keys={"k1": KEY_1, "k2": KEY_2}))
    originals = sample_payloads()

    old = await before.encode(originals)
    new = await after.encode(originals)

    assert await after.decode(old) == originals
    assert {p.metadata["encryption-key-id"] for p in new} == {b"k2"}
    assert await after.decode(new) == originals
    # The old ring cannot read the new data: k2 really encrypted it.
    with pytest.raises(PayloadDecryptionError, match="'k2'"):
        await before.decode(new[:1])


# Key ring -----------------------------------------------------------------------------------


def test_key_ring_rejects_bad_configurations() -> None:
    with pytest.raises(KeyRingError, match="empty"):
        KeyRing(active_key_id="k1", keys={})
    with pytest.raises(KeyRingError, match=r"'short'.*32 bytes.*got 16"):
        KeyRing(active_key_id="short", keys={"short": b"x" * 16})
    with pytest.raises(KeyRingError, match=r"'missing' is not in the key ring.*'k1'"):
        KeyRing(active_key_id="missing", keys={"k1": KEY_1})
    with pytest.raises(KeyRingError, match="invalid encryption key id"):
        KeyRing(active_key_id="has space", keys={"has space": KEY_1})


def test_key_ring_is_immutable_and_its_repr_hides_keys() -> None:
    source = {"k1": KEY_1}
    ring = KeyRing(active_key_id="k1", keys=source)
    source["k1"] = KEY_2  # the ring keeps its own copy

    assert ring.active_key == KEY_1
    with pytest.raises(TypeError):
        ring.keys["k2"] = KEY_2  # type: ignore[index]
    with pytest.raises(AttributeError):
        ring.active_key_id = "k2"  # type: ignore[misc]
    assert repr(ring) == "KeyRing(active_key_id='k1', key_ids=('k1',))"
    assert KEY_1.hex() not in repr(ring)


def test_from_settings_uses_configured_keys_last_listed_is_active(tmp_path: Path) -> None:
    settings = make_settings(
        data_dir=tmp_path, encryption_keys={"2024-01": b64(KEY_1), "2025-06": b64(KEY_2)}
    )

    ring = KeyRing.from_settings(settings)

    assert ring.active_key_id == "2025-06"
    assert dict(ring.keys) == {"2024-01": KEY_1, "2025-06": KEY_2}
    assert not (tmp_path / DEV_KEY_FILE).exists()  # configured keys never touch the dev file


def test_from_settings_honours_the_active_key_id(tmp_path: Path) -> None:
    keys = {"2024-01": b64(KEY_1), "2025-06": b64(KEY_2)}
    ring = KeyRing.from_settings(
        make_settings(data_dir=tmp_path, encryption_keys=keys, encryption_active_key_id="2024-01")
    )
    assert ring.active_key_id == "2024-01"

    with pytest.raises(KeyRingError, match=r"'nope'.*ADX_ENCRYPTION_ACTIVE_KEY_ID"):
        KeyRing.from_settings(
            make_settings(data_dir=tmp_path, encryption_keys=keys, encryption_active_key_id="nope")
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("not base64 at all!", "not valid base64", id="not-base64"),
        pytest.param(base64.b64encode(b"k" * 16).decode(), "32 bytes", id="aes-128"),
    ],
)
def test_from_settings_rejects_bad_key_values(tmp_path: Path, value: str, expected: str) -> None:
    settings = make_settings(data_dir=tmp_path, encryption_keys={"bad": value})

    with pytest.raises(KeyRingError, match=expected) as caught:
        KeyRing.from_settings(settings)
    assert "'bad'" in str(caught.value)
    assert value not in str(caught.value)


def test_dev_key_is_generated_once_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = KeyRing.from_settings(make_settings(environment=Environment.DEV, data_dir=data_dir))
    # A "restart": new settings object, same data dir.
    second = KeyRing.from_settings(make_settings(environment=Environment.DEV, data_dir=data_dir))

    assert first.active_key_id == second.active_key_id
    assert first.active_key_id.startswith("dev-")
    assert first.active_key == second.active_key
    assert len(first.active_key) == 32
    path = data_dir / "secrets" / "payload-keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert base64.b64decode(stored["keys"][first.active_key_id]) == first.active_key
    # Nothing else (no leftover temp file) sits beside it.
    assert [p.name for p in path.parent.iterdir()] == ["payload-keys.json"]


def test_processes_starting_together_share_one_dev_key(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rings = list(pool.map(lambda _: KeyRing.from_settings(settings), range(16)))

    assert len({(ring.active_key_id, ring.active_key) for ring in rings}) == 1
    assert [p.name for p in (tmp_path / DEV_KEY_FILE).parent.iterdir()] == ["payload-keys.json"]


async def test_dev_key_decrypts_data_written_before_a_restart(tmp_path: Path) -> None:
    settings = make_settings(environment=Environment.TEST, data_dir=tmp_path)
    (sealed,) = await EncryptionCodec(KeyRing.from_settings(settings)).encode(sample_payloads()[:1])

    restarted = EncryptionCodec(KeyRing.from_settings(make_settings(data_dir=tmp_path)))

    assert await restarted.decode([sealed]) == sample_payloads()[:1]


def test_dev_key_file_permissions_are_tightened(tmp_path: Path) -> None:
    KeyRing.from_settings(make_settings(data_dir=tmp_path))
    path = tmp_path / DEV_KEY_FILE
    path.chmod(0o644)
    path.parent.chmod(0o755)

    KeyRing.from_settings(make_settings(data_dir=tmp_path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_malformed_dev_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / DEV_KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")

    with pytest.raises(KeyRingError, match="malformed"):
        KeyRing.from_settings(make_settings(data_dir=tmp_path))


def test_production_without_keys_refuses(tmp_path: Path) -> None:
    settings = make_settings(environment=Environment.PRODUCTION, data_dir=tmp_path)

    with pytest.raises(KeyRingError, match="ADX_ENCRYPTION_KEYS"):
        KeyRing.from_settings(settings)
    assert not (tmp_path / "secrets").exists()  # no key was invented


def test_production_with_keys_works(tmp_path: Path) -> None:
    settings = make_settings(
        environment=Environment.PRODUCTION,
        data_dir=tmp_path,
        encryption_keys={"prod-1": SecretStr(b64(KEY_1))},
    )
    assert KeyRing.from_settings(settings).active_key == KEY_1


# History holds ciphertext only (real Temporal server) ---------------------------------------

EMAIL = "grace.hopper+codec@example.com"
PASSWORD = "correct-horse-battery-staple-7731"
TRANSIENT_ERROR = "mailbox unreachable for"
REFUSAL = "signup refused for"


class Signup(BaseModel):
    email: str
    password: str


class SignupResult(BaseModel):
    account: str
    attempts: int


@activity.defn(name="codec_test_register_account")
async def register_account(signup: Signup) -> SignupResult:
    attempt = activity.info().attempt
    if attempt == 1:
        raise ApplicationError(f"{TRANSIENT_ERROR} {signup.email}", type="MailboxUnavailable")
    return SignupResult(account=f"account of {signup.email}", attempts=attempt)


@workflow.defn(name="CodecTestSignup")
class SignupWorkflow:
    @workflow.run
    async def run(self, signup: Signup) -> SignupResult:
        return await workflow.execute_activity(
            register_account,
            signup,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50)),
        )


@workflow.defn(name="CodecTestRefusedSignup")
class RefusedSignupWorkflow:
    @workflow.run
    async def run(self, signup: Signup) -> None:
        raise ApplicationError(f"{REFUSAL} {signup.email}", non_retryable=True)


async def test_history_holds_only_ciphertext(settings: Settings) -> None:
    assert settings.temporal_address is not None
    keyring = KeyRing(active_key_id="history-test", keys={"history-test": generate_key()})
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=build_data_converter(keyring),
    )
    queue = f"codec-{uuid.uuid4().hex}"
    signup = Signup(email=EMAIL, password=PASSWORD)
    # Unsandboxed: the sandbox would re-import this test module (cryptography, pydantic models);
    # encryption is what is under test here, not the sandbox.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[SignupWorkflow, RefusedSignupWorkflow],
        activities=[register_account],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        ok = await client.start_workflow(
            SignupWorkflow.run, signup, id=f"codec-ok-{uuid.uuid4().hex}", task_queue=queue
        )
        refused = await client.start_workflow(
            RefusedSignupWorkflow.run, signup, id=f"codec-no-{uuid.uuid4().hex}", task_queue=queue
        )
        # Decoded through the codec, everything reads back as sent.
        assert await ok.result() == SignupResult(account=f"account of {EMAIL}", attempts=2)
        with pytest.raises(WorkflowFailureError) as caught:
            await refused.result()
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == f"{REFUSAL} {EMAIL}"

    plain = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    for handle in (ok, refused):
        history = await plain.get_workflow_handle(handle.id).fetch_history()
        as_json = history.to_json()
        # Payload bytes are base64 in JSON, so also search the raw protobuf bytes.
        as_bytes = b"".join(event.SerializeToString() for event in history.events)
        for secret in (EMAIL, PASSWORD, TRANSIENT_ERROR, REFUSAL, "grace.hopper"):
            assert secret not in as_json
            assert secret.encode() not in as_bytes

        started = history.events[0].workflow_execution_started_event_attributes
        (stored_input,) = started.input.payloads
        assert stored_input.metadata["encoding"] == ENCRYPTED_ENCODING
        assert stored_input.metadata["encryption-key-id"] == b"history-test"
        # The ciphertext really is the input: the codec turns it back into it.
        (decoded,) = await EncryptionCodec(keyring).decode([stored_input])
        assert json.loads(decoded.data) == {"email": EMAIL, "password": PASSWORD}

    # The failures were recorded, with their text moved into encrypted attributes.
    ok_events = (await plain.get_workflow_handle(ok.id).fetch_history()).events
    retried = [
        e.activity_task_started_event_attributes
        for e in ok_events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert [a.attempt for a in retried] == [2]
    assert retried[0].HasField("last_failure")
    assert retried[0].last_failure.message == "Encoded failure"
    assert retried[0].last_failure.encoded_attributes.metadata["encoding"] == ENCRYPTED_ENCODING

    refused_events = (await plain.get_workflow_handle(refused.id).fetch_history()).events
    failed = refused_events[-1]
    assert failed.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    failure = failed.workflow_execution_failed_event_attributes.failure
    assert failure.message == "Encoded failure"
    (attributes,) = await EncryptionCodec(keyring).decode([failure.encoded_attributes])
    assert f"{REFUSAL} {EMAIL}" in json.loads(attributes.data)["message"]
