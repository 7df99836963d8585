"""The tenant service's contract: activity names and the models other services' workflows
(user onboarding, compliance) use. The tenant service adds its own workflows' models here."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, JsonValue


class TenantActivity(StrEnum):
    # Called by the cross-service workflows (workflow service) on TaskQueue.TENANT.
    ADD_MEMBER = "tenant.add_member"
    REMOVE_MEMBER = "tenant.remove_member"
    EXPORT_USER_DATA = "tenant.export_user_data"
    ERASE_USER_DATA = "tenant.erase_user_data"


class AddMemberInput(BaseModel):
    """Idempotent: adding an existing member changes nothing (and reports it)."""

    tenant_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=64)
    roles: list[str] = Field(default_factory=lambda: ["member"])
    operation_id: str = Field(min_length=1, max_length=255)


class MemberAdded(BaseModel):
    tenant_id: str
    user_id: str
    roles: list[str]
    created: bool  # False: the membership already existed (the compensation must keep it)


class RemoveMemberInput(BaseModel):
    tenant_id: str
    user_id: str
    operation_id: str


class UserDataRequest(BaseModel):
    """A data-subject request about one user (compliance export and erasure)."""

    user_id: str = Field(min_length=1, max_length=64)
    request_id: str = Field(min_length=1, max_length=255)


class UserDataExport(BaseModel):
    service: str
    user_id: str
    records: dict[str, list[dict[str, JsonValue]]]


class UserDataErased(BaseModel):
    service: str
    user_id: str
    # table -> rows deleted or anonymised
    rows: dict[str, int]
