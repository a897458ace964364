"""Crash consistency: the emulator SIGKILLed at chosen points of a 100-task collection add, a collection whose tasks
run, a job delete with running tasks, a pool delete, a pool resize and a job schedule firing; each restart is
checked (what holds is in ``tests/crash_sweep.py``). ``make test`` runs a sample of 13 kill points (each operation
before and after its commit, and each container call); ``make soak`` runs the whole sweep (over 200 kill points).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from batchbox.backends.local.azurite import find_free_port
from batchbox.emulator.crash_points import CrashPlan, parse_plan
from tests.crash_sweep import FULL_SWEEP, SAMPLE, run_sweep
from tests.fixtures.emulator import EmulatorProcess

pytestmark = [pytest.mark.docker]


@pytest.fixture
def crash_emulator(tmp_path: Path, docker_client: docker.DockerClient, node_image: str) -> Iterator[EmulatorProcess]:
    """An emulator the sweep starts itself (with each kill point's settings); stopped and cleaned up after."""
    emulator = EmulatorProcess(
        port=find_free_port(),
        state_dir=tmp_path / "state",
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
        extra_args=("--min-schedule-interval", "1"),  # the schedule scenario fires every 3 s
    )
    try:
        yield emulator
    finally:
        emulator.cleanup()


@pytest.mark.timeout(300)
def test_a_sample_of_kill_points_leaves_a_consistent_state(crash_emulator: EmulatorProcess, tmp_path: Path) -> None:
    report = run_sweep(crash_emulator, SAMPLE, tmp_path / "arm")
    print(f"\ncrash sweep (sample): {report.summary()}")
    assert report.killed == SAMPLE, f"not reached: {report.not_reached}"


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_every_kill_point_of_the_sweep_leaves_a_consistent_state(
    crash_emulator: EmulatorProcess, tmp_path: Path
) -> None:
    report = run_sweep(crash_emulator, FULL_SWEEP, tmp_path / "arm")
    print(f"\ncrash sweep (full): {report.summary()}")
    reached = len(report.killed)
    assert reached >= 200, f"only {reached} kill points reached; not reached: {report.not_reached}"


def test_a_crash_plan_counts_only_its_point_and_only_while_armed(tmp_path: Path) -> None:
    arm = tmp_path / "arm"
    plan = parse_plan("store.seal/tasks:2", str(arm))
    assert plan == CrashPlan("store.seal", "tasks", 2, arm)
    assert not plan.hit("store.seal", "tasks")  # not armed: not counted
    arm.touch()
    assert not plan.hit("store.seal", "jobs") and not plan.hit("store.commit", "")
    assert not plan.hit("store.seal", "tasks") and plan.hit("store.seal", "tasks")
    assert parse_plan("store.commit:1") == CrashPlan("store.commit", "", 1)
    assert parse_plan("") is None and parse_plan(None) is None
    for bad in ("store.commit", "store.commit:0", ":3", "store.commit:x"):
        with pytest.raises(ValueError, match="BATCHBOX_EMULATOR_CRASH_AT"):
            parse_plan(bad)
