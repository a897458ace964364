"""Model-based testing of the emulator (``tests/model_machine.py``): hypothesis drives the real emulator through the
SDK from several threads at once and checks it against a reference model after every step and at quiescence.

``make test`` runs a small budget (6 examples of up to 10 steps, not shrunk: a failure is reported as found);
``make soak`` a long one (40 examples of up to 25 steps, shrunk). Failing examples hypothesis shrank are kept below
as plain regression tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from batchbox.backends.local.azurite import find_free_port
from tests.fixtures.emulator import EmulatorProcess
from tests.model_machine import BatchModel, ModelWorld

pytestmark = [pytest.mark.docker]


@pytest.fixture(scope="module")
def world(
    docker_client: docker.DockerClient, node_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelWorld]:
    emulator = EmulatorProcess(
        port=find_free_port(),
        state_dir=tmp_path_factory.mktemp("model") / "state",
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
    )
    try:
        emulator.start()
        yield ModelWorld(emulator)
    finally:
        emulator.cleanup()


def _run(world: ModelWorld, examples: int, steps: int, *, shrink: bool) -> None:
    machine = type("BoundBatchModel", (BatchModel,), {"world": world})
    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if shrink else [])]
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
        ),
    )


@pytest.mark.timeout(400)
def test_the_emulator_follows_the_model_under_concurrent_clients(world: ModelWorld) -> None:
    _run(world, examples=6, steps=10, shrink=False)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_the_emulator_follows_the_model_for_long(world: ModelWorld) -> None:
    _run(world, examples=40, steps=25, shrink=True)
