"""The auth service's persistence: users, one-time tokens, MFA secrets and recovery codes,
tenant access grants and the email outbox in its database; sessions in Redis when configured,
in the database otherwise (one :class:`SessionStore` protocol, two backends).

Writes that a retried activity may repeat are insert-if-absent or conditional updates, so a
retry never duplicates a row or an effect.

One module per aggregate: ``tables`` (the schema), ``user``, ``token`` (one-time tokens),
``mfa`` (secrets and recovery codes), ``grant`` (tenant access grants), ``outbox``,
``subjects`` (data-subject requests) and ``sessions`` (both session backends);
:class:`AuthStore` is made of the database parts. (Module names are singular so that none
shadows a table this package exports, e.g. ``users``.)
"""

from __future__ import annotations

from services.auth.store.grant import GrantsMixin
from services.auth.store.mfa import MfaMixin
from services.auth.store.outbox import OutboxMixin
from services.auth.store.sessions import (
    RedisSessionStore,
    SessionStore,
    SqlSessionStore,
    open_session_store,
)
from services.auth.store.subjects import SubjectsMixin
from services.auth.store.tables import (
    email_outbox,
    metadata,
    operation_before,
    tenant_grants,
    tokens,
    users,
)
from services.auth.store.token import TokensMixin
from services.auth.store.user import UsersMixin
from services.common.before import BeforeLog
from services.common.db import Database

__all__ = [
    "AuthStore",
    "RedisSessionStore",
    "SessionStore",
    "SqlSessionStore",
    "email_outbox",
    "metadata",
    "open_session_store",
    "tenant_grants",
    "tokens",
    "users",
]


class AuthStore(UsersMixin, SubjectsMixin, TokensMixin, OutboxMixin, GrantsMixin, MfaMixin):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.outbox_table = email_outbox
        self.before = BeforeLog(db, operation_before)
