"""The billing module: plans with their prices and quotas, and an invoice per plan change.

Charging is a stand-in for a payment provider: it marks the invoice paid. It is its own
activity so a failing payment fails (and compensates) the upgrade saga at that step.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.tenant import Plan, Quotas

GIB = 1024**3


@dataclass(frozen=True)
class PlanTerms:
    plan: Plan
    name: str
    price_cents: int  # per month
    quotas: Quotas


PLANS: dict[Plan, PlanTerms] = {
    Plan.FREE: PlanTerms(Plan.FREE, "Free", 0, Quotas(max_users=5, storage_bytes=1 * GIB)),
    Plan.PROFESSIONAL: PlanTerms(
        Plan.PROFESSIONAL, "Professional", 4900, Quotas(max_users=50, storage_bytes=100 * GIB)
    ),
    Plan.ENTERPRISE: PlanTerms(
        Plan.ENTERPRISE, "Enterprise", 49900, Quotas(max_users=1000, storage_bytes=5000 * GIB)
    ),
}


def terms(plan: Plan) -> PlanTerms:
    return PLANS[plan]


def change_price(current: Plan, target: Plan) -> int:
    """What the plan change costs now: the monthly difference, nothing for a downgrade."""
    return max(terms(target).price_cents - terms(current).price_cents, 0)
