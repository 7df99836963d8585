"""Every saga the fault tests and the soak drive, by workflow type."""

from __future__ import annotations

from tests.faults import specs_auth, specs_file, specs_tenant, specs_user, specs_workflow
from tests.faults.harness import SagaSpec

SPECS: dict[str, SagaSpec] = {
    spec.workflow_type.value: spec
    for module in (specs_workflow, specs_user, specs_tenant, specs_auth, specs_file)
    for spec in module.SPECS
}
