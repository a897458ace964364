"""Crash consistency: the emulator SIGKILLed at chosen points of a 100-task collection add, a collection whose tasks
run, a job delete with running tasks, a pool delete and a pool resize; each restart is checked (what holds is in
``tests/crash_sweep.py``). ``make test`` runs a sample of 12 kill points (each operation before and after its
commit, and each container call); ``make soak`` runs the whole sweep (over 200 kill points).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from batchbox.backends.local.azurite import find_free_port
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
