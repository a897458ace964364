"""The SDK-free core: id rules, model validation, the backend registry."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest

from batchbox.core import (
    ConfigurationError,
    JobSpec,
    OutputFile,
    PoolSpec,
    ResourceExistsError,
    ResourceFile,
    ResourceNotFoundError,
    StartTaskFailedError,
    TaskConstraints,
    TaskSpec,
    validate_container_name,
    validate_id,
)
from batchbox.core.registry import get_backend_class, known_backends, register_backend
from batchbox.core.states import ComputeNodeState, TaskState


@pytest.mark.parametrize("good", ["a", "A-b_c", "x" * 64, "0", "pool-1_A"])
def test_valid_ids_pass(good: str) -> None:
    assert validate_id("pool", good) == good


@pytest.mark.parametrize("bad", ["", "x" * 65, "has space", "dot.ted", "slash/x", "üml", "tab\t", None, 3])
def test_invalid_ids_raise_naming_the_id(bad: object) -> None:
    with pytest.raises(ValueError) as info:
        validate_id("task", bad)
    assert "task id" in str(info.value)
    if isinstance(bad, str) and bad:
        assert repr(bad[:60])[:-1] in str(info.value) or bad[:10] in str(info.value)


def test_models_validate_ids_on_construction() -> None:
    with pytest.raises(ValueError, match="pool id"):
        PoolSpec(id="bad id")
    with pytest.raises(ValueError, match="job id"):
        JobSpec(id="j.1", pool_id="p")
    with pytest.raises(ValueError, match="pool id"):
        JobSpec(id="j1", pool_id="p 1")
    with pytest.raises(ValueError, match="task id"):
        TaskSpec(id="t/1", command_line="true")


def test_model_rules() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ResourceFile(file_path="a", http_url="http://x", storage_container_url="http://y")
    with pytest.raises(ValueError, match="file_path"):
        ResourceFile(http_url="http://127.0.0.1/x")
    with pytest.raises(ValueError, match="file_mode"):
        ResourceFile(file_path="a", http_url="http://127.0.0.1/x", file_mode="rwx")
    with pytest.raises(ValueError, match="empty"):
        TaskSpec(id="t1", command_line="   ")
    with pytest.raises(ValueError, match="retry"):
        TaskConstraints(max_task_retry_count=-2)
    with pytest.raises(ValueError, match="positive"):
        TaskConstraints(max_wall_clock_time=timedelta(0))
    with pytest.raises(ValueError, match="priority"):
        JobSpec(id="j", pool_id="p", priority=1001)
    with pytest.raises(ValueError, match="task_slots"):
        PoolSpec(id="p", task_slots_per_node=0)
    with pytest.raises(ValueError, match="file_pattern"):
        OutputFile(file_pattern="", container_url="http://127.0.0.1/c")
    spec = TaskSpec(id="t1", command_line="/bin/true")
    assert spec.required_slots == 1 and spec.constraints.max_task_retry_count is None


@pytest.mark.parametrize("name", ["abc", "input", "out-put-1", "a" * 63])
def test_valid_container_names(name: str) -> None:
    assert validate_container_name(name) == name


@pytest.mark.parametrize("name", ["ab", "Upper", "double--hyphen", "-lead", "trail-", "a" * 64, "under_score"])
def test_invalid_container_names(name: str) -> None:
    with pytest.raises(ValueError, match="container name"):
        validate_container_name(name)


def test_errors_carry_kind_and_name() -> None:
    err = ResourceNotFoundError("job", "job-7")
    assert (err.kind, err.name) == ("job", "job-7")
    assert str(err) == "job 'job-7' does not exist"
    assert "already exists" in str(ResourceExistsError("pool", "p"))
    failed = StartTaskFailedError("p1", {"node-b": "exit code 1", "node-a": "exit code 2"})
    assert str(failed) == "pool 'p1': start task failed on node-a: exit code 2; node-b: exit code 1"


def test_state_names_are_batch_names() -> None:
    assert [s.value for s in TaskState] == ["active", "preparing", "running", "completed"]
    assert ComputeNodeState("waitingforstarttask") is ComputeNodeState.WAITING_FOR_START_TASK
    assert ComputeNodeState.IDLE.is_usable and not ComputeNodeState.START_TASK_FAILED.is_usable
    assert str(TaskState.RUNNING) == "running"


def test_registry_is_lazy_and_reports_unknown_names() -> None:
    assert {"local", "azure"} <= set(known_backends())
    with pytest.raises(ConfigurationError, match="unknown backend 'nope'"):
        get_backend_class("nope")


def test_registry_import_failure_carries_install_hint() -> None:
    register_backend("broken-test", "batchbox_missing_module_xyz:Cls", "pip install batchbox-xyz", clobber=True)
    with pytest.raises(ConfigurationError, match="pip install batchbox-xyz"):
        get_backend_class("broken-test")
    with pytest.raises(ValueError, match="already registered"):
        register_backend("broken-test", "a:b")
    with pytest.raises(ValueError, match="module:Class"):
        register_backend("x", "no-colon")


def test_importing_core_loads_no_sdk() -> None:
    import subprocess

    code = (
        "import sys, batchbox.core, batchbox.core.registry; "
        "bad = [m for m in sys.modules if m.startswith(('azure', 'docker', 'starlette'))]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_local_backend_does_not_load_the_emulator_runtime() -> None:
    """The CLI's local backend starts the emulator as a process: importing it must not load the emulator's runtime,
    server or autoscale parser (they cost start-up time on every `batchbox` call)."""
    import subprocess

    code = (
        "import sys, batchbox.cli.main, batchbox.backends.local.backend; "
        "bad = [m for m in sys.modules if m.startswith(('batchbox.emulator.runtime.runtime', "
        "'batchbox.emulator.autoscale', 'batchbox.emulator.app', 'starlette', 'uvicorn', 'lark'))]; "
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
