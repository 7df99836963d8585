"""The auth store and session stores on real SQLite, PostgreSQL and Redis, and the activities
called directly the way a retry calls them again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, text
from temporalio.exceptions import ApplicationError

from adx.settings import Settings
from contracts.auth import (
    CheckPermissionsInput,
    CreateSessionInput,
    GrantStatus,
    GrantTenantAccessInput,
    Permission,
    RevokeTenantAccessInput,
    RevokeUserSessionsInput,
    SendTokenEmailInput,
    SessionInput,
    SetAccountStatusInput,
    UserStatus,
    VerifyTokenInput,
)
from contracts.context import RequestContext, use_context
from contracts.errors import ErrorKind
from services.auth.activities import AuthActivities, derived_id
from services.auth.models import (
    MfaSecretRow,
    MfaSecretStatus,
    SessionRecord,
    TokenPurpose,
    TokenRow,
)
from services.auth.security import (
    SecretBox,
    hash_password,
    new_totp_secret,
    recovery_code_hash,
    token_hash,
    totp_step,
    verify_password,
)
from services.auth.service import SERVICE, seed_dev_data
from services.auth.store import (
    AuthStore,
    RedisSessionStore,
    SessionStore,
    SqlSessionStore,
    users,
)
from services.common.before import OperationUndone
from services.common.db import Database
from services.common.dev_seed import USERS
from services.common.email import OutgoingEmail
from services.common.errors import ServiceError
from services.common.service import ServiceRuntime
from tests.services.auth.support import unique_email
from tests.support.operations import compensation, forward
from tests.support.servers import PostgresServer, RedisServer, create_database
from tests.support.smtp import Mailbox
from workflow_client.codec import KeyRing


def now() -> datetime:
    return datetime.now(UTC)


async def active_user(store: AuthStore, email: str | None = None) -> str:
    user_id = str(uuid.uuid4())
    await store.seed_user(user_id, email or unique_email("user"), "not-a-real-hash", now())
    return user_id


# Users, tokens, grants, MFA --------------------------------------------------------------------


async def test_pending_registration_is_one_account_per_address_in_any_case(
    store: AuthStore,
) -> None:
    email = unique_email("Carol").replace("carol", "Carol")
    first, created = await store.register_pending_user(email, "hash-1", now())
    assert created
    again, created_again = await store.register_pending_user(email.upper(), "hash-2", now())
    assert not created_again
    assert again.id == first.id
    stored = await store.user_by_email(email.lower())
    assert stored is not None
    assert stored.password_hash == "hash-2"  # whoever registers last chose the password
    assert stored.status is UserStatus.PENDING
    assert stored.email == email  # kept as typed

    assert await store.activate_user(first.id, now())
    assert not await store.activate_user(first.id, now())  # a retry changes nothing
    with pytest.raises(ServiceError) as conflict:
        await store.register_pending_user(email.lower(), "hash-3", now())
    assert conflict.value.kind is ErrorKind.CONFLICT
    active = await store.get_user(first.id)
    assert active is not None
    assert active.password_hash == "hash-2"
    assert active.email_verified_at is not None


async def test_deleting_a_pending_user_takes_its_rows_and_never_an_active_user(
    store: AuthStore,
) -> None:
    pending, _ = await store.register_pending_user(unique_email("dan"), "hash", now())
    await store.issue_token(_token(pending.id, TokenPurpose.VERIFY_EMAIL))
    await store.upsert_grant(pending.id, "acme", ["member"], GrantStatus.ACTIVE, now())
    assert await store.delete_pending_user(pending.id)
    assert await store.get_user(pending.id) is None
    assert await store.tokens_for_user(pending.id) == []
    assert await store.grants_for_user(pending.id) == []
    assert not await store.delete_pending_user(pending.id)

    active = await active_user(store)
    assert not await store.delete_pending_user(active)
    assert await store.get_user(active) is not None


def _token(
    user_id: str, purpose: TokenPurpose, *, token: str | None = None, expires_in: int = 60
) -> TokenRow:
    moment = now()
    return TokenRow(
        id=str(uuid.uuid4()),
        user_id=user_id,
        purpose=purpose,
        token_hash=token_hash(token or uuid.uuid4().hex),
        workflow_id=f"wf-{uuid.uuid4().hex}",
        subject_id=None,
        created_at=moment,
        expires_at=moment + timedelta(seconds=expires_in),
        used_at=None,
    )


async def test_tokens_are_stored_hashed_issued_once_and_used_once(store: AuthStore) -> None:
    user_id = await active_user(store)
    plain = "the-plain-token"
    token = _token(user_id, TokenPurpose.PASSWORD_RESET, token=plain)
    email = OutgoingEmail(
        idempotency_key=f"k-{token.id}", to="x@example.test", subject="s", body="b"
    )
    assert await store.issue_token(token, email) == token
    # Issued again (a retried activity with a fresh secret): the first token and email stand.
    retry = token.model_copy(update={"token_hash": token_hash("another")})
    assert (await store.issue_token(retry, email)).token_hash == token_hash(plain)
    outbox = await _outbox_rows(store, email.idempotency_key)
    assert outbox == 1
    assert await store.token_by_hash(TokenPurpose.PASSWORD_RESET, token_hash(plain)) is not None
    assert await store.token_by_hash(TokenPurpose.VERIFY_EMAIL, token_hash(plain)) is None

    new_hash = await hash_password("a-brand-new-password")
    assert await store.consume_reset_token(token.id, user_id, new_hash, now())
    assert not await store.consume_reset_token(token.id, user_id, "other", now())
    user = await store.get_user(user_id)
    assert user is not None
    assert user.password_hash == new_hash  # the first use only

    expired = _token(user_id, TokenPurpose.VERIFY_EMAIL, expires_in=-1)
    await store.issue_token(expired)
    assert not await store.consume_token(expired.id, user_id, TokenPurpose.VERIFY_EMAIL, now())
    wrong_user = _token(user_id, TokenPurpose.VERIFY_EMAIL)
    await store.issue_token(wrong_user)
    assert not await store.consume_token(
        wrong_user.id, str(uuid.uuid4()), TokenPurpose.VERIFY_EMAIL, now()
    )
    state = await store.expire_token(wrong_user.id, now())
    assert state is not None
    assert state.used_at is None
    assert not await store.consume_token(wrong_user.id, user_id, TokenPurpose.VERIFY_EMAIL, now())


async def _outbox_rows(store: AuthStore, key: str) -> int:
    from sqlalchemy import func, select

    table = store.outbox_table
    async with store.db.transaction() as session:
        query = select(func.count()).where(table.c.idempotency_key == key)
        return int((await session.execute(query)).scalar_one())


async def test_grants_are_upserted_and_read_per_tenant(store: AuthStore) -> None:
    user_id = await active_user(store)
    await store.upsert_grant(user_id, "acme", ["member"], GrantStatus.ACTIVE, now())
    await store.upsert_grant(user_id, "acme", ["admin", "member"], GrantStatus.ACTIVE, now())
    await store.upsert_grant(user_id, "globex", ["viewer"], GrantStatus.SUSPENDED, now())
    grants = await store.grants_for_user(user_id)
    assert [(g.tenant_id, g.roles, g.status) for g in grants] == [
        ("acme", ["admin", "member"], GrantStatus.ACTIVE),
        ("globex", ["viewer"], GrantStatus.SUSPENDED),
    ]
    assert await store.active_grant(user_id, "globex") is None
    assert await store.get_grant(user_id, "initech") is None
    assert [g.user_id for g in await store.grants_in_tenant("acme")] == [user_id]
    assert await store.delete_grant(user_id, "acme")
    assert not await store.delete_grant(user_id, "acme")
    with pytest.raises(ServiceError) as missing:
        await store.upsert_grant(str(uuid.uuid4()), "acme", ["member"], GrantStatus.ACTIVE, now())
    assert missing.value.kind is ErrorKind.NOT_FOUND


async def test_mfa_secret_is_encrypted_enabled_once_and_codes_are_single_use(
    store: AuthStore, settings: Settings
) -> None:
    user_id = await active_user(store)
    box = SecretBox(KeyRing.from_settings(settings))
    plain = new_totp_secret()
    secret_id = str(uuid.uuid4())
    ciphertext = box.encrypt(plain, secret_id)
    assert plain not in ciphertext
    with pytest.raises(ValueError, match="decrypted"):
        box.decrypt(ciphertext, "another-row")  # bound to its row
    await store.add_mfa_secret(
        MfaSecretRow(
            id=secret_id,
            user_id=user_id,
            secret_ciphertext=ciphertext,
            status=MfaSecretStatus.PENDING,
            workflow_id=None,
            created_at=now(),
            confirmed_at=None,
            last_used_step=0,
        )
    )
    stored = await store.get_mfa_secret(secret_id)
    assert stored is not None
    assert box.decrypt(stored.secret_ciphertext, secret_id) == plain

    hashes = [recovery_code_hash(f"code-{n}") for n in range(10)]
    assert await store.enable_mfa(user_id, secret_id, hashes, now())
    assert not await store.enable_mfa(user_id, secret_id, hashes, now())  # a retry
    user = await store.get_user(user_id)
    assert user is not None
    assert user.mfa_enabled
    assert await store.unused_recovery_codes(user_id) == 10
    assert await store.use_recovery_code(user_id, recovery_code_hash("code-3"), now())
    assert not await store.use_recovery_code(user_id, recovery_code_hash("code-3"), now())
    assert await store.unused_recovery_codes(user_id) == 9

    step = totp_step(plain, pyotp.TOTP(plain).now())
    assert step is not None
    assert await store.use_totp_step(secret_id, step)
    assert not await store.use_totp_step(secret_id, step)  # a replayed code


async def test_dev_seed_is_idempotent_and_keeps_a_changed_password(
    db: Database, settings: Settings
) -> None:
    runtime = ServiceRuntime(
        name="auth",
        settings=settings,
        db=db,
        client=None,  # type: ignore[arg-type]  # seeding never talks to Temporal
        verifier=None,  # type: ignore[arg-type]
    )
    await seed_dev_data(runtime)
    store = AuthStore(db)
    alice, bob = USERS
    user = await store.user_by_email(alice.email)
    assert user is not None
    assert user.id == alice.id
    assert user.status is UserStatus.ACTIVE
    assert await verify_password(user.password_hash, "dev-password-123")
    assert [(g.tenant_id, g.roles) for g in await store.grants_for_user(bob.id)] == [
        ("globex", ["owner", "admin", "member"])
    ]
    await store.set_password(alice.id, "changed", now())
    await seed_dev_data(runtime)
    again = await store.get_user(alice.id)
    assert again is not None
    assert again.password_hash == "changed"
    assert {g.tenant_id for g in await store.grants_for_user(alice.id)} == {"acme", "globex"}
    assert SERVICE.on_start is not None


# Sessions: one protocol, two backends -----------------------------------------------------------


async def exercise_session_store(sessions: SessionStore, user_id: str) -> None:
    moment = now()
    record = SessionRecord(
        id=str(uuid.uuid4()),
        user_id=user_id,
        tenant_id="acme",
        created_at=moment,
        expires_at=moment + timedelta(hours=1),
        refresh_token_hash="h1",
        user_agent=None,
    )
    stored = await sessions.create(record)
    assert stored.id == record.id
    assert stored.user_agent is None
    # Created again (a retry): the first one stands.
    again = await sessions.create(record.model_copy(update={"refresh_token_hash": "other"}))
    assert again.refresh_token_hash == "h1"
    second = record.model_copy(
        update={"id": str(uuid.uuid4()), "created_at": moment + timedelta(seconds=1)}
    )
    await sessions.create(second)
    assert [s.id for s in await sessions.for_user(user_id)] == [second.id, record.id]

    assert await sessions.rotate_refresh(record.id, "h1", "h2", moment)
    assert not await sessions.rotate_refresh(record.id, "h1", "h3", moment)  # compare-and-set
    current = await sessions.get(record.id)
    assert current is not None
    assert current.refresh_token_hash == "h2"
    assert current.refreshed_at is not None

    assert await sessions.revoke(record.id, moment)
    assert not await sessions.revoke(record.id, moment)
    revoked = await sessions.get(record.id)
    assert revoked is not None
    assert not revoked.active(now())
    assert not await sessions.rotate_refresh(record.id, "h2", "h4", moment)  # revoked
    assert await sessions.restore(record.id)
    assert not await sessions.restore(record.id)
    restored = await sessions.get(record.id)
    assert restored is not None
    assert restored.active(now())

    assert await sessions.delete(second.id)
    assert not await sessions.delete(second.id)
    assert await sessions.get(second.id) is None
    assert [s.id for s in await sessions.for_user(user_id)] == [record.id]
    assert await sessions.for_user(str(uuid.uuid4())) == []


async def test_database_session_store(db: Database, store: AuthStore) -> None:
    await exercise_session_store(SqlSessionStore(db), await active_user(store))


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{redis_server.port}/4", decode_responses=True
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_redis_session_store(redis_client: aioredis.Redis) -> None:
    user_id = str(uuid.uuid4())
    sessions = RedisSessionStore(redis_client)
    await exercise_session_store(sessions, user_id)
    live = await sessions.for_user(user_id)
    ttl = await redis_client.pttl(f"auth:session:{live[0].id}")
    assert 0 < ttl <= 3600 * 1000  # expires with the session
    assert await redis_client.pttl(f"auth:user-sessions:{user_id}") > 0


async def test_redis_drops_expired_sessions_from_the_user_set(
    redis_client: aioredis.Redis,
) -> None:
    user_id = str(uuid.uuid4())
    sessions = RedisSessionStore(redis_client)
    moment = now()
    record = SessionRecord(
        id=str(uuid.uuid4()),
        user_id=user_id,
        tenant_id="acme",
        created_at=moment,
        expires_at=moment + timedelta(hours=1),
    )
    await sessions.create(record)
    await redis_client.delete(f"auth:session:{record.id}")  # as if its TTL ran out
    assert await sessions.for_user(user_id) == []
    assert await redis_client.smembers(f"auth:user-sessions:{user_id}") == set()


# Activities, called twice as a retry would ------------------------------------------------------


async def test_verification_email_is_sent_once_however_often_the_activity_runs(
    activities: AuthActivities, store: AuthStore, smtp_server: Mailbox
) -> None:
    email = unique_email("erin")
    user, _ = await store.register_pending_user(email, "hash", now())
    workflow_id = f"user_registration-{uuid.uuid4().hex}"
    step = SendTokenEmailInput(
        user_id=user.id, workflow_id=workflow_id, expires_at=now() + timedelta(minutes=5)
    )
    first = await activities.send_verification_email(step)
    second = await activities.send_verification_email(step)
    assert first.token_id == second.token_id == derived_id(workflow_id, "verify_email")
    assert first.email_sent
    messages = await smtp_server.wait_for(email)
    assert len(messages) == 1
    assert len(await store.tokens_for_user(user.id)) == 1
    assert await _outbox_rows(store, f"auth:verify_email:{workflow_id}") == 1
    # The stored token is the mailed one; the outbox no longer holds it once sent.
    from tests.services.auth.support import link_token

    token = link_token(messages[0])
    found = await store.token_by_hash(TokenPurpose.VERIFY_EMAIL, token_hash(token))
    assert found is not None
    assert found.id == first.token_id
    (entry,) = await activities.parts.outbox.recent(to=email)
    assert token not in entry.body
    assert "token=[redacted]" in entry.body

    verify = VerifyTokenInput(user_id=user.id, token_id=first.token_id)
    assert (await activities.verify_email_token(verify)).used
    assert (await activities.verify_email_token(verify)).used  # the retry after success
    with pytest.raises(ApplicationError) as refused:
        await activities.verify_email_token(
            VerifyTokenInput(user_id=str(uuid.uuid4()), token_id=first.token_id)
        )
    assert refused.value.type == ErrorKind.VALIDATION.value
    assert refused.value.non_retryable


async def test_create_session_retried_makes_one_session_with_a_fresh_code(
    activities: AuthActivities, store: AuthStore
) -> None:
    user_id = await active_user(store)
    await store.upsert_grant(user_id, "acme", ["member"], GrantStatus.ACTIVE, now())
    context = RequestContext(user_id=user_id, tenant_id="acme", roles=("member",))
    step = CreateSessionInput(session_id=str(uuid.uuid4()), tenant_id="acme")
    with use_context(context):
        first = await activities.create_session(step)
        second = await activities.create_session(step)
        assert first.session_id == second.session_id
        assert first.exchange_code != second.exchange_code
        assert [s.id for s in await activities.sessions.for_user(user_id)] == [first.session_id]
        exchange = await store.consume_by_hash(
            TokenPurpose.SESSION_EXCHANGE, token_hash(second.exchange_code), now()
        )
        assert exchange is not None
        assert exchange.subject_id == first.session_id
        exchanged_again = await store.consume_by_hash(
            TokenPurpose.SESSION_EXCHANGE, token_hash(first.exchange_code), now()
        )
        assert exchanged_again is None
        with pytest.raises(ApplicationError) as no_grant:
            await activities.create_session(
                CreateSessionInput(session_id=str(uuid.uuid4()), tenant_id="globex")
            )
        assert no_grant.value.type == ErrorKind.NOT_FOUND.value

        undo = SessionInput(session_id=first.session_id)
        assert (await activities.rollback_session_creation(undo)).changed
        assert not (await activities.rollback_session_creation(undo)).changed
    assert await activities.sessions.get(first.session_id) is None


async def test_tenant_grants_and_revocations_respect_the_callers_tenant(
    activities: AuthActivities, store: AuthStore
) -> None:
    user_id = await active_user(store)
    acme_admin = RequestContext(user_id=str(uuid.uuid4()), tenant_id="acme", roles=("admin",))
    grant = GrantTenantAccessInput(user_id=user_id, tenant_id="acme", roles=["member"])
    with use_context(acme_admin):
        assert (await activities.grant_tenant_access(grant)).roles == ["member"]
        assert (await activities.grant_tenant_access(grant)).status is GrantStatus.ACTIVE
        with pytest.raises(ApplicationError) as foreign:
            await activities.grant_tenant_access(grant.model_copy(update={"tenant_id": "globex"}))
    assert foreign.value.type == ErrorKind.TENANT_ISOLATION.value
    assert foreign.value.non_retryable
    assert [g.tenant_id for g in await store.grants_for_user(user_id)] == ["acme"]

    # An open session in acme ends with the access.
    moment = now()
    await activities.sessions.create(
        SessionRecord(
            id=str(uuid.uuid4()),
            user_id=user_id,
            tenant_id="acme",
            created_at=moment,
            expires_at=moment + timedelta(hours=1),
        )
    )
    revoke = RevokeTenantAccessInput(user_id=user_id, tenant_id="acme")
    with use_context(acme_admin):
        first = await activities.revoke_tenant_access(revoke)
        second = await activities.revoke_tenant_access(revoke)
    assert (first.removed, first.sessions_revoked) == (True, 1)
    assert (second.removed, second.sessions_revoked) == (False, 0)
    assert await store.grants_for_user(user_id) == []


async def test_only_the_user_or_a_member_manager_may_revoke_sessions(
    activities: AuthActivities, store: AuthStore
) -> None:
    member = await active_user(store)
    admin = await active_user(store)
    outsider = await active_user(store)
    await store.upsert_grant(member, "acme", ["member"], GrantStatus.ACTIVE, now())
    await store.upsert_grant(admin, "acme", ["admin"], GrantStatus.ACTIVE, now())
    await store.upsert_grant(outsider, "globex", ["owner"], GrantStatus.ACTIVE, now())
    moment = now()
    for _ in range(2):
        await activities.sessions.create(
            SessionRecord(
                id=str(uuid.uuid4()),
                user_id=member,
                tenant_id="acme",
                created_at=moment,
                expires_at=moment + timedelta(hours=1),
            )
        )
    target = RevokeUserSessionsInput(user_id=member, reason="deactivated")
    with use_context(RequestContext(user_id=outsider, tenant_id="globex")):
        with pytest.raises(ApplicationError) as other_tenant:
            await activities.revoke_user_sessions(target)
        with pytest.raises(ApplicationError) as other_check:
            await activities.check_permissions(
                CheckPermissionsInput(
                    permissions=[Permission.FILES_READ], user_id=member, tenant_id="acme"
                )
            )
    assert other_tenant.value.type == ErrorKind.TENANT_ISOLATION.value
    assert other_check.value.type == ErrorKind.TENANT_ISOLATION.value
    with use_context(RequestContext(user_id=admin, tenant_id="acme")):
        seen = await activities.check_permissions(
            CheckPermissionsInput(permissions=[Permission.MEMBERS_MANAGE], user_id=member)
        )
        assert (seen.allowed, seen.missing) == (False, [Permission.MEMBERS_MANAGE])
        assert (await activities.revoke_user_sessions(target)).count == 2
        assert (await activities.revoke_user_sessions(target)).count == 0  # idempotent
        change = await activities.set_account_status(
            SetAccountStatusInput(user_id=member, status=UserStatus.DEACTIVATED)
        )
        assert change.changed
    with (
        use_context(RequestContext(user_id=member, tenant_id="acme")),
        pytest.raises(ApplicationError) as not_manager,
    ):
        await activities.revoke_user_sessions(RevokeUserSessionsInput(user_id=admin))
    assert not_manager.value.type == ErrorKind.AUTHORIZATION.value
    user = await store.get_user(member)
    assert user is not None
    assert user.status is UserStatus.DEACTIVATED


# The fence of undone operations ---------------------------------------------------------------


async def test_a_late_attempt_of_an_undone_grant_makes_nothing(store: AuthStore) -> None:
    """An owner grant of a provisioning that was undone must not come back when an attempt
    that outlived its timeout commits at last (the grant would outlive its tenant)."""
    user_id = await active_user(store)

    def grant() -> Awaitable[object]:
        return store.upsert_grant(user_id, "t-new", ["owner"], GrantStatus.ACTIVE, now())

    await forward("provisioning-1", grant)
    assert await compensation("provisioning-1", lambda: store.delete_grant(user_id, "t-new"))
    with pytest.raises(OperationUndone):
        await forward("provisioning-1", grant)
    # Undone before its forward step ever committed: nothing is made either.
    assert not await compensation("provisioning-2", lambda: store.delete_grant(user_id, "t-2"))
    with pytest.raises(OperationUndone):
        await forward(
            "provisioning-2",
            lambda: store.upsert_grant(user_id, "t-2", ["owner"], GrantStatus.ACTIVE, now()),
        )
    assert await store.grants_for_user(user_id) == []
    # Another operation (and work outside one) is not fenced.
    await forward("provisioning-3", grant)
    assert [g.tenant_id for g in await store.grants_for_user(user_id)] == ["t-new"]


@pytest.fixture
async def postgres_store(postgres_server: PostgresServer) -> AsyncIterator[AuthStore]:
    """PostgreSQL only: on SQLite writers are serialised, so two writes cannot overlap."""
    database = Database(create_database(postgres_server, f"t_{uuid.uuid4().hex[:12]}"), "auth")
    await database.migrate(SERVICE.migrations)
    try:
        yield AuthStore(database)
    finally:
        await database.dispose()


async def test_a_compensation_waits_for_a_committing_attempt_and_undoes_it(
    postgres_store: AuthStore,
) -> None:
    """The two at once: the forward attempt has written and waits on a lock when the
    compensation starts. The compensation waits for it to commit, then undoes its grant;
    without the fence it would delete nothing and the grant would commit after it."""
    store = postgres_store
    user_id = await active_user(store)
    async with store.db.engine.connect() as blocker:
        # The grant's foreign-key check waits for this lock on its user.
        transaction = await blocker.begin()
        await blocker.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())
        granting = asyncio.create_task(
            forward(
                "provisioning-1",
                lambda: store.upsert_grant(user_id, "t-new", ["owner"], GrantStatus.ACTIVE, now()),
            )
        )
        await _until_waiting_on_locks(store, 1)
        revoking = asyncio.create_task(
            compensation("provisioning-1", lambda: store.delete_grant(user_id, "t-new"))
        )
        await _until_waiting_on_locks(store, 2)
        await transaction.rollback()
    await granting
    assert await revoking
    assert await store.grants_for_user(user_id) == []


async def _until_waiting_on_locks(store: AuthStore, sessions: int) -> None:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    for _ in range(500):
        async with store.db.engine.connect() as connection:
            if (await connection.execute(query)).scalar_one() >= sessions:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{sessions} sessions never waited on a lock")
