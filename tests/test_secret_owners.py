"""Secrets kept under their owner: a real emulator driven by the 15.x SDK keeps each registry password under the
pool, job, task or job schedule that carried it and deletes it with its owner (read from the state database
itself); a job made by a schedule gets its own copy; a state whose secrets were kept unowned (before owners) is
still read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.resources.containers import registry_secret_name
from batchbox.emulator.runtime.task_containers import registry_credentials
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.secret_owners import job_owner, owned, pool_owner, task_owner
from batchbox.emulator.store import Store
from tests.fixtures.emulator import EmulatorProcess
from tests.job_helpers import gone, wait_for
from tests.test_container_tasks import create_container_pool, settings
from tests.test_emulator_runtime import add_job, unique

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

_SERVER = "127.0.0.1:9"


def _secret_keys(emulator: EmulatorProcess) -> set[str]:
    """The names of the secrets in the emulator's state database, read from the database file."""
    with sqlite3.connect(f"file:{emulator.state_dir / 'state.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT k FROM meta WHERE k LIKE 'secret:%'").fetchall()
    return {str(key).removeprefix("secret:") for (key,) in rows}


def _owned_by(emulator: EmulatorProcess, owner: str) -> set[str]:
    return {name for name in _secret_keys(emulator) if name.startswith(owned(owner, ""))}


@pytest.fixture(scope="module")
def client(emulator: EmulatorProcess) -> BatchClient:
    return emulator.batch_client()


def _registry(user: str) -> m.ContainerRegistryReference:
    return m.ContainerRegistryReference(registry_server=_SERVER, username=user, password=f"{user}-password")


def test_secrets_are_kept_under_their_owner_and_deleted_with_it(
    client: BatchClient, emulator: EmulatorProcess, task_image: str
) -> None:
    registries = {"container_registries": [_registry("pooluser")]}
    pool_id = create_container_pool(client, "owners", [task_image], nodes=0, container=registries)
    name = registry_secret_name(_SERVER, "pooluser")
    assert _owned_by(emulator, pool_owner(pool_id)) == {owned(pool_owner(pool_id), name)}

    job_container = settings(task_image, registry=_registry("jobuser"))
    prep = m.BatchJobPreparationTask(command_line="/bin/true", container_settings=job_container)
    job_id = add_job(client, pool_id, job_preparation_task=prep)
    assert _owned_by(emulator, job_owner(job_id)) == {
        owned(job_owner(job_id), registry_secret_name(_SERVER, "jobuser"))
    }

    def task(task_id: str, user: str) -> m.BatchTaskCreateOptions:
        container = settings(task_image, registry=_registry(user))
        return m.BatchTaskCreateOptions(id=task_id, command_line="/bin/true", container_settings=container)

    client.create_task(job_id, task("kept", "keptuser"))
    client.create_task(job_id, task("deleted", "deleteduser"))
    client.create_tasks(job_id, [task("in-collection", "collectionuser")])
    for task_id, user in (("kept", "keptuser"), ("deleted", "deleteduser"), ("in-collection", "collectionuser")):
        expected = {owned(task_owner(job_id, task_id), registry_secret_name(_SERVER, user))}
        assert _owned_by(emulator, task_owner(job_id, task_id)) == expected

    client.delete_task(job_id, "deleted")
    assert _owned_by(emulator, task_owner(job_id, "deleted")) == set()
    assert _owned_by(emulator, task_owner(job_id, "kept")), "deleting one task deleted another's secret"

    client.begin_delete_job(job_id, polling_interval=1).result()
    wait_for("the job gone", lambda: gone(lambda: client.get_job(job_id)))
    assert _owned_by(emulator, job_owner(job_id)) == set()
    assert _owned_by(emulator, task_owner(job_id, "kept")) == set()
    assert _owned_by(emulator, task_owner(job_id, "in-collection")) == set()
    assert _owned_by(emulator, pool_owner(pool_id)), "deleting a job deleted its pool's secret"

    client.begin_delete_pool(pool_id, polling_interval=1).result()
    wait_for("the pool gone", lambda: gone(lambda: client.get_pool(pool_id)))
    assert _owned_by(emulator, pool_owner(pool_id)) == set()


def test_a_schedules_secrets_are_copied_to_its_jobs_and_deleted_with_each(
    client: BatchClient, emulator: EmulatorProcess, task_image: str
) -> None:
    pool_id = create_container_pool(client, "schedowners", [task_image], nodes=0)
    container = settings(task_image, registry=_registry("scheduser"))
    spec = m.BatchJobSpecification(
        pool_info=m.BatchPoolInfo(pool_id=pool_id),
        job_preparation_task=m.BatchJobPreparationTask(command_line="/bin/true", container_settings=container),
    )
    schedule_id = unique("ownersched")
    client.create_job_schedule(
        m.BatchJobScheduleCreateOptions(
            id=schedule_id, schedule=m.BatchJobScheduleConfiguration(), job_specification=spec
        )
    )
    name = registry_secret_name(_SERVER, "scheduser")
    schedule_owner_name = f"schedule:{schedule_id.lower()}"
    assert _owned_by(emulator, schedule_owner_name) == {owned(schedule_owner_name, name)}
    job = wait_for("the schedule's job", lambda: next(iter(client.list_jobs_from_schedule(schedule_id)), None))
    wait_for("the job's copy", lambda: _owned_by(emulator, job_owner(job.id)) == {owned(job_owner(job.id), name)})

    client.begin_delete_job_schedule(schedule_id, polling_interval=1).result()
    wait_for("the schedule gone", lambda: gone(lambda: client.get_job_schedule(schedule_id)))
    assert _owned_by(emulator, schedule_owner_name) == set()
    assert _owned_by(emulator, job_owner(job.id)) == set()
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_unowned_secrets_of_older_states_are_still_found(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME))
    try:
        store.put_secret(registry_secret_name(_SERVER, "legacy"), "legacy-password")
        store.put_secret(owned(task_owner("j", "t"), registry_secret_name(_SERVER, "owned")), "owned-password")
        registries = [
            {"registryServer": _SERVER, "username": "legacy"},
            {"registryServer": _SERVER, "username": "owned"},
        ]
        found = registry_credentials(store, registries, [task_owner("j", "t"), job_owner("j")])
        assert [(c.username, c.password) for c in found] == [("legacy", "legacy-password"), ("owned", "owned-password")]
        assert registry_credentials(store, registries[1:], [task_owner("j", "other")]) == []
    finally:
        store.close()
