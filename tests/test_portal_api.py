"""The portal's server side against a real emulator (real node containers): who may use it, what its JSON says
(run history, masking, filters, files) and its two actions, which take the runtime's path like the REST API."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

from batchbox.emulator.portal import read_token, token_path
from tests.portal_helpers import all_done, make_scenario, portal_session, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def client(emulator: Any) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def scenario(client: BatchClient) -> dict[str, str]:
    ids = make_scenario(client, unique("portal-api"))
    all_done(client, ids["job"], 8)
    return ids


@pytest.fixture(scope="module")
def session(emulator: Any) -> Iterator[httpx.Client]:
    signed_in = portal_session(emulator)
    try:
        yield signed_in
    finally:
        signed_in.close()


# --------------------------------------------------------------------------------------------------- who may use it
def test_the_token_file_is_private_and_the_log_never_shows_the_token(emulator: Any) -> None:
    path = token_path(emulator.state_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = read_token(emulator.state_dir)
    assert token and len(token) >= 40
    assert token not in emulator.log_text()
    assert f"{emulator.url}/portal/" in emulator.log_text()


def test_without_the_token_the_portal_is_refused(emulator: Any) -> None:
    with httpx.Client(base_url=emulator.url) as anonymous:
        assert anonymous.get("/portal/").status_code == 401
        assert anonymous.get("/portal/api/jobs").status_code == 401
        assert anonymous.get("/portal/static/app.js").status_code == 401
        assert anonymous.get("/portal/", params={"token": "wrong"}).status_code == 403
        anonymous.cookies.set(f"batchbox_portal_{emulator.port}", "wrong", path="/portal")
        assert anonymous.get("/portal/api/jobs").status_code == 403


def test_the_token_becomes_an_httponly_strict_cookie(emulator: Any) -> None:
    token = read_token(emulator.state_dir)
    with httpx.Client(base_url=emulator.url) as browser:
        answer = browser.get("/portal/", params={"token": token})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/"  # the token leaves the address bar
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"batchbox_portal_{emulator.port}={token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/portal" in cookie
        page = browser.get("/portal/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        other_apps = {"cookie": f'flag; x="odd; batchbox_portal_{emulator.port}={token}; _xsrf=2|a|b'}
        assert httpx.get(f"{emulator.url}/portal/api/jobs", headers=other_apps).status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"


def test_another_host_name_and_cross_site_writes_are_refused(session: httpx.Client, scenario: dict[str, str]) -> None:
    assert session.get("/portal/api/jobs", headers={"host": "attacker.example"}).status_code == 403
    job = scenario["job"]
    assert session.post(f"/portal/api/jobs/{job}/terminate").status_code == 403  # no portal header
    foreign = {"x-batchbox-portal": "1", "origin": "http://attacker.example"}
    assert session.post(f"/portal/api/jobs/{job}/terminate", headers=foreign).status_code == 403
    assert session.get(f"/portal/api/jobs/{job}").json()["job"]["state"] == "active"


def test_the_portal_cookie_does_not_open_the_batch_api(session: httpx.Client) -> None:
    answer = session.get("/pools", params={"api-version": "2025-06-01"})
    assert answer.status_code == 403
    assert answer.json()["code"] == "AuthenticationFailed"


# --------------------------------------------------------------------------------------------------- what it shows
def test_pools_and_nodes(session: httpx.Client, scenario: dict[str, str]) -> None:
    pools = {p["id"]: p for p in session.get("/portal/api/pools").json()["pools"]}
    pool = pools[scenario["pool"]]
    assert pool["taskSlotsPerNode"] == 2 and pool["targetDedicatedNodes"] == 1
    detail = session.get(f"/portal/api/pools/{scenario['pool']}").json()
    [node] = detail["nodes"]
    assert node["state"] in ("idle", "running")
    assert node["totalTasksRun"] >= 9  # 8 tasks, one of them twice
    files = session.get(f"/portal/api/pools/{scenario['pool']}/nodes/{node['id']}/files", params={"path": ""})
    assert {e["name"] for e in files.json()["entries"]} >= {"workitems", "shared"}


def test_job_counts_and_task_filters(session: httpx.Client, scenario: dict[str, str]) -> None:
    job = scenario["job"]
    counts = session.get(f"/portal/api/jobs/{job}").json()["job"]["counts"]
    assert counts == {"active": 0, "running": 0, "completed": 8, "succeeded": 6, "failed": 2}
    failed = session.get(f"/portal/api/jobs/{job}/tasks", params={"state": "failed"}).json()
    assert failed["total"] == 2 and {t["id"] for t in failed["tasks"]} == {"fails", "sas"}
    [fails] = [t for t in failed["tasks"] if t["id"] == "fails"]
    assert fails["exitCode"] == 3 and fails["failureInfo"]["code"] == "FailureExitCode"
    pages = [
        session.get(f"/portal/api/jobs/{job}/tasks", params={"prefix": "OK", "limit": 3, "offset": offset}).json()
        for offset in (0, 3)
    ]
    assert [page["total"] for page in pages] == [4, 4]
    ids = [t["id"] for page in pages for t in page["tasks"]]
    assert len(ids) == 4 and set(ids) == {"ok0", "ok1", "ok2", "ok3"}
    bad = session.get(f"/portal/api/jobs/{job}/tasks", params={"state": "sleeping"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidQueryParameterValue"


def test_every_run_is_kept_and_secrets_are_masked(session: httpx.Client, scenario: dict[str, str]) -> None:
    job = scenario["job"]
    flaky = session.get(f"/portal/api/jobs/{job}/tasks/flaky").json()
    assert [(r["outcome"], r["exitCode"]) for r in flaky["runs"]] == [("retried", 1), ("succeeded", 0)]
    assert flaky["task"]["executionInfo"]["retryCount"] == 1
    first, second = flaky["runs"]
    assert first["start"] <= first["end"] <= second["start"] + 1.0 and second["start"] <= second["end"]
    sas = session.get(f"/portal/api/jobs/{job}/tasks/sas").json()
    text = str(sas)
    assert "CMDSECRET" not in text and "URLSECRET" not in text
    assert "sig=REDACTED" in sas["task"]["commandLine"]
    assert "sig=REDACTED" in sas["task"]["resourceFiles"][0]["httpUrl"]
    listed = session.get(f"/portal/api/jobs/{job}/tasks", params={"prefix": "sas"}).text
    assert "URLSECRET" not in listed  # the download failure's message names the URL


def test_timeline_has_one_run_per_attempt_and_sends_only_what_is_new(
    session: httpx.Client, scenario: dict[str, str]
) -> None:
    job = scenario["job"]
    whole = session.get(f"/portal/api/jobs/{job}/timeline").json()
    ended = whole["ended"]
    assert len(ended["task"]) == 9  # 8 tasks, flaky twice
    outcomes = [whole["outcomes"][code] for code in ended["outcome"]]
    by_task = {}
    for task, outcome in zip(ended["task"], outcomes, strict=True):
        by_task.setdefault(task, []).append(outcome)
    assert by_task["flaky"] == ["retried", "succeeded"] and by_task["fails"] == ["failed"]
    assert whole["slotsPerNode"] == 2 and len(whole["nodes"]) == 1
    assert all(whole["nodeIds"][i] == whole["nodes"][0]["id"] for i in ended["node"])
    assert all(s <= e for s, e in zip(ended["start"], ended["end"], strict=True))
    again = session.get(f"/portal/api/jobs/{job}/timeline", params={"after": whole["last"]}).json()
    assert again["ended"]["task"] == [] and again["last"] == whole["last"]


def test_output_tail_and_whole_files_are_text(session: httpx.Client, scenario: dict[str, str]) -> None:
    base = f"/portal/api/jobs/{scenario['job']}/tasks"
    stderr = session.get(f"{base}/fails/tail", params={"path": "stderr.txt"}).json()
    assert stderr == {"path": "stderr.txt", "exists": True, "size": 5, "text": "boom\n", "truncated": False}
    short = session.get(f"{base}/fails/tail", params={"path": "stdout.txt", "bytes": 5}).json()
    assert short["text"] == "fail\n" and short["truncated"] is True
    whole = session.get(f"{base}/html/file", params={"path": "stdout.txt"})
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/plain")
    assert whole.headers["x-content-type-options"] == "nosniff" and "<script>" in whole.text
    assert session.get(f"{base}/html/file", params={"path": "../../../../../etc/passwd"}).status_code == 404
    assert session.get(f"{base}/html/files", params={"path": ".."}).status_code == 404


# --------------------------------------------------------------------------------------------------- actions
def _long_job(client: BatchClient, pool_id: str) -> str:
    job_id = unique("long")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
    client.create_task(job_id, m.BatchTaskCreateOptions(id="sleeper", command_line="/bin/sh -c 'sleep 120'"))
    wait_for("the task to run", lambda: client.get_task(job_id, "sleeper").state == m.BatchTaskState.RUNNING)
    return job_id


def test_terminate_ends_the_job_like_the_rest_api(
    client: BatchClient, session: httpx.Client, scenario: dict[str, str]
) -> None:
    job_id = _long_job(client, scenario["pool"])
    answer = session.post(f"/portal/api/jobs/{job_id}/terminate", headers={"x-batchbox-portal": "1"})
    assert answer.status_code == 202
    job = wait_for(
        "the job to complete", lambda: (j := client.get_job(job_id)).state == m.BatchJobState.COMPLETED and j
    )
    assert job.execution_info.termination_reason == "UserTerminate"
    task = client.get_task(job_id, "sleeper")
    assert task.execution_info.failure_info.code == "TaskEnded"
    runs = session.get(f"/portal/api/jobs/{job_id}/tasks/sleeper").json()["runs"]
    assert [r["outcome"] for r in runs] == ["terminated"]
    again = session.post(f"/portal/api/jobs/{job_id}/terminate", headers={"x-batchbox-portal": "1"})
    assert again.status_code == 409 and again.json()["code"] == "JobCompleted"


def test_delete_removes_the_job_and_its_runs(
    client: BatchClient, session: httpx.Client, scenario: dict[str, str]
) -> None:
    job_id = _long_job(client, scenario["pool"])
    answer = session.delete(f"/portal/api/jobs/{job_id}", headers={"x-batchbox-portal": "1"})
    assert answer.status_code == 202

    def gone() -> bool:
        try:
            client.get_job(job_id)
        except ResourceNotFoundError:
            return True
        return False

    wait_for("the job to be deleted", gone)
    assert session.get(f"/portal/api/jobs/{job_id}").status_code == 404
    # its slot is free again: a new task on the pool runs
    probe = unique("after")
    client.create_job(m.BatchJobCreateOptions(id=probe, pool_info=m.BatchPoolInfo(pool_id=scenario["pool"])))
    client.create_task(probe, m.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    start = time.monotonic()
    all_done(client, probe, 1)
    assert time.monotonic() - start < 120
