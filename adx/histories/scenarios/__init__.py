"""The recorded scenarios, one module per service. Importing this package registers every
scenario in ``SCENARIOS``, in the order below (the recording order, and that of
``adx histories list``)."""

from adx.histories.scenarios.registry import (
    SCENARIOS,
    Recorded,
    Scenario,
    ScenarioSpec,
    recorded,
    scenario,
)

# isort: off
from adx.histories.scenarios import auth, user, tenant, file, workflow
# isort: on

__all__ = [
    "SCENARIOS",
    "Recorded",
    "Scenario",
    "ScenarioSpec",
    "auth",
    "file",
    "recorded",
    "scenario",
    "tenant",
    "user",
    "workflow",
]
