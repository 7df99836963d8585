"""The workflow histories the replay tests check (``tests/histories``), and the running stack
that records them (the fault tests and the soak use it too).

- ``stack``: the key ring, the services, the running stack and the ``Harness``;
- ``replay``: replaying the committed histories;
- ``scenarios``: the recorded scenarios, one module per service, and their shared fixtures;
- ``command``: ``adx histories record|list``.

This package re-exports what the tests, the soak and ``adx.cli`` import from it.
"""

from adx.histories.command import HELP, add_arguments, record, run, select_scenarios
from adx.histories.replay import (
    FROZEN_MARK,
    all_workflows,
    build_replayer,
    describe_replay_failure,
    history_files,
    history_workflow_type,
    load_history,
    patch_markers,
    replay_all,
    replay_settings,
    workflow_type_of,
)
from adx.histories.scenarios import SCENARIOS, Recorded, Scenario, ScenarioSpec, recorded, scenario
from adx.histories.scenarios.auth import _login
from adx.histories.scenarios.file import _file_member, _png, _upload
from adx.histories.scenarios.fixtures import (
    OWNER,
    PASSWORD,
    _active_user,
    _alice,
    _anonymous,
    _auth_parts,
    _bearer,
    _checked,
    _link_token,
    _new_member,
    _new_tenant,
    _unique,
)
from adx.histories.scenarios.tenant import _session
from adx.histories.stack import (
    HISTORIES_DIR,
    IDENTITY,
    MFA_ATTEMPTS,
    NAMESPACE,
    SCENARIO_TIMEOUT,
    SEARCH_ATTRIBUTES,
    TEST_KEY_PREFIX,
    TEST_KEYS_FILE,
    Harness,
    TestKeyError,
    load_test_keyring,
    recorder_settings,
    running_stack,
    service_definitions,
)

__all__ = [
    "FROZEN_MARK",
    "HELP",
    "HISTORIES_DIR",
    "IDENTITY",
    "MFA_ATTEMPTS",
    "NAMESPACE",
    "OWNER",
    "PASSWORD",
    "SCENARIOS",
    "SCENARIO_TIMEOUT",
    "SEARCH_ATTRIBUTES",
    "TEST_KEYS_FILE",
    "TEST_KEY_PREFIX",
    "Harness",
    "Recorded",
    "Scenario",
    "ScenarioSpec",
    "TestKeyError",
    "_active_user",
    "_alice",
    "_anonymous",
    "_auth_parts",
    "_bearer",
    "_checked",
    "_file_member",
    "_link_token",
    "_login",
    "_new_member",
    "_new_tenant",
    "_png",
    "_session",
    "_unique",
    "_upload",
    "add_arguments",
    "all_workflows",
    "build_replayer",
    "describe_replay_failure",
    "history_files",
    "history_workflow_type",
    "load_history",
    "load_test_keyring",
    "patch_markers",
    "record",
    "recorded",
    "recorder_settings",
    "replay_all",
    "replay_settings",
    "run",
    "running_stack",
    "scenario",
    "select_scenarios",
    "service_definitions",
    "workflow_type_of",
]
