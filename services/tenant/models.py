"""The tenant service's HTTP boundary (workflow/activity models are in ``contracts.tenant``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from contracts.tenant import Invoice, Plan, RoleName, Tenant, TenantMember, TenantName, TenantSlug

UserIdField = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
KNOWN_ROLES = frozenset({"owner", "admin", "member", "viewer"})
# A role a request may name: any other is refused by ``_known_roles`` (422); the schema says so.
KnownRole = Annotated[RoleName, WithJsonSchema({"type": "string", "enum": sorted(KNOWN_ROLES)})]


def _known_roles(roles: list[str]) -> list[str]:
    unknown = sorted(set(roles) - KNOWN_ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(unknown)}")
    return list(dict.fromkeys(roles))


class CreateTenantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: TenantSlug
    name: TenantName
    plan: Plan = Plan.FREE


class UpdateTenantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TenantName | None = None
    settings: dict[str, JsonValue] | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateTenantRequest:
        if self.name is None and self.settings is None:
            raise ValueError("no field to change")
        return self


class AddMemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserIdField
    roles: list[KnownRole] = Field(default_factory=lambda: ["member"], min_length=1, max_length=8)

    @model_validator(mode="after")
    def _roles(self) -> AddMemberRequest:
        self.roles = _known_roles(self.roles)
        return self


class ChangeRolesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[KnownRole] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _roles(self) -> ChangeRolesRequest:
        self.roles = _known_roles(self.roles)
        return self


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Plan


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=300)


class MyTenant(BaseModel):
    tenant: Tenant
    roles: list[str]


class TenantList(BaseModel):
    items: list[MyTenant]


class MemberPage(BaseModel):
    items: list[TenantMember]


class InvoicePage(BaseModel):
    items: list[Invoice]


class OperationAccepted(BaseModel):
    operation_id: str
