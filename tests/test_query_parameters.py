"""Query parameters on a real emulator: ``timeout`` (seconds, at most 30 meant) is checked on every operation and a
value that is not a whole number of seconds of at least 1 is refused naming it; ``$expand=stats`` gives a job its
statistics and is refused on pools; ``force=true`` on job and job schedule delete / terminate is refused, ``false``
served."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.batch.models._models import BatchJobTerminateOptions  # 15.1 exports no public name for it
from azure.core.exceptions import HttpResponseError

from batchbox.emulator.protocol.query_checks import MAX_TIMEOUT_SECONDS, request_timeout
from tests.fixtures.emulator import EmulatorProcess
from tests.job_helpers import add_job, create_pool, gone, idle_nodes, unique, wait_for
from tests.signing import API_VERSION, SignedClient

_PATHS = [("GET", "/pools"), ("GET", "/jobs"), ("GET", "/applications"), ("GET", "/jobs/no-such-job")]


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "", "3x", "\u0663"])
@pytest.mark.parametrize(("method", "path"), _PATHS)
def test_an_invalid_timeout_is_refused_naming_it(emulator: EmulatorProcess, method: str, path: str, value: str) -> None:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        answer = http.send(method, path, query=f"api-version={API_VERSION}&timeout={value}")
    assert answer.status_code == 400
    error = answer.json()
    assert error["code"] == "InvalidQueryParameterValue"
    values = {item["key"]: item["value"] for item in error["values"]}
    assert values["QueryParameterName"] == "timeout"
    assert values["QueryParameterValue"] == value


def test_a_valid_timeout_is_served(emulator: EmulatorProcess) -> None:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        for value in ("1", "30", "90"):
            answer = http.send("GET", "/pools", query=f"api-version={API_VERSION}&timeout={value}")
            assert answer.status_code == 200, answer.text
        missing = http.send("GET", "/jobs/no-such-job", query=f"api-version={API_VERSION}&timeout=5")
        assert missing.json()["code"] == "JobNotFound"


def test_the_sdks_timeout_argument(emulator: EmulatorProcess) -> None:
    client: BatchClient = emulator.batch_client()
    pool_ids = {pool.id for pool in client.list_pools()}
    assert {pool.id for pool in client.list_pools(timeout=10)} == pool_ids
    with pytest.raises(HttpResponseError) as caught:
        client.get_job("no-such-job", timeout=10)
    assert caught.value.status_code == 404


def test_timeout_values() -> None:
    assert request_timeout(None) == MAX_TIMEOUT_SECONDS
    assert request_timeout("7") == 7
    assert request_timeout("31") == MAX_TIMEOUT_SECONDS


def _error(answer: httpx.Response) -> tuple[int, str, dict[str, str]]:
    body = answer.json()
    return answer.status_code, body["code"], {item["key"]: item["value"] for item in body.get("values") or []}


def test_expand_stats_on_jobs_and_refused_on_pools(emulator: EmulatorProcess) -> None:
    client: BatchClient = emulator.batch_client()
    pool_id = create_pool(client, unique("expand"), 1)
    idle_nodes(client, pool_id, 1)
    job_id = add_job(client, pool_id)
    commands = {"t0": "exit 0", "t1": "exit 0", "bad": "exit 2"}
    tasks = [m.BatchTaskCreateOptions(id=i, command_line=f"/bin/sh -c '{c}'") for i, c in commands.items()]
    client.create_tasks(job_id, tasks)
    wait_for("3 completed tasks", lambda: client.get_job_task_counts(job_id).task_counts.completed == 3)
    stats = client.get_job(job_id, expand=["stats"]).job_statistics
    assert (stats.succeeded_tasks_count, stats.failed_tasks_count, stats.task_retries_count) == (2, 1, 0)
    assert stats.url.endswith(f"/jobs/{job_id}")
    assert client.get_job(job_id).job_statistics is None
    listed = {job.id: job for job in client.list_jobs(expand=["stats"])}
    assert listed[job_id].job_statistics.succeeded_tasks_count == 2
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        for path in (f"/jobs/{job_id}", "/jobs"):
            answer = http.send("GET", path, query=f"api-version={API_VERSION}&$expand=nodes")
            assert _error(answer)[:2] == (400, "InvalidQueryParameterValue")
            assert _error(answer)[2]["QueryParameterName"] == "$expand"
        for path in (f"/pools/{pool_id}", "/pools"):
            status, code, values = _error(http.send("GET", path, query=f"api-version={API_VERSION}&$expand=stats"))
            assert (status, code, values["QueryParameterName"]) == (400, "InvalidQueryParameterValue", "$expand")
    with pytest.raises(HttpResponseError) as caught:
        client.get_pool(pool_id, expand=["stats"])
    assert caught.value.status_code == 400
    client.begin_delete_pool(pool_id, polling_interval=1)


def test_force_false_is_served_and_true_refused(emulator: EmulatorProcess) -> None:
    client: BatchClient = emulator.batch_client()
    pool_id = create_pool(client, unique("force"), 0)
    job_id = add_job(client, pool_id)
    schedule_id = unique("forcesched")
    client.create_job_schedule(
        m.BatchJobScheduleCreateOptions(
            id=schedule_id,
            schedule=m.BatchJobScheduleConfiguration(do_not_run_until=datetime.now(timezone.utc) + timedelta(days=1)),
            job_specification=m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=pool_id)),
        )
    )
    operations = [
        ("POST", f"/jobs/{job_id}/terminate"),
        ("DELETE", f"/jobs/{job_id}"),
        ("POST", f"/jobschedules/{schedule_id}/terminate"),
        ("DELETE", f"/jobschedules/{schedule_id}"),
    ]
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        for method, path in operations:
            for value in ("true", "TRUE", "yes"):
                status, code, values = _error(http.send(method, path, query=f"api-version={API_VERSION}&force={value}"))
                assert (status, code, values["QueryParameterName"]) == (400, "InvalidQueryParameterValue", "force")
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE, "a refused force changed the job"
    assert client.get_job_schedule(schedule_id).state == m.BatchJobScheduleState.ACTIVE
    reason = BatchJobTerminateOptions(termination_reason="ByTest")
    client.begin_terminate_job(job_id, reason, force=False, polling_interval=1).result()
    client.begin_terminate_job_schedule(schedule_id, force=False, polling_interval=1).result()
    client.begin_delete_job(job_id, force=False, polling_interval=1).result()
    wait_for("the job gone", lambda: gone(lambda: client.get_job(job_id)))
    client.begin_delete_pool(pool_id, polling_interval=1)
