"""Bad input against a real emulator process: a table of requests, each answered with the Batch error the service gives.

Every row of :data:`CASES` is sent over HTTP (httpx) with real SharedKey signing (``tests/signing.py``, checked
against the 15.x SDK's policy below) or with deliberately broken authentication. For each row the test asserts the
HTTP status, the Batch error body (``code``, ``message.value``, ``values``), that nothing changed (a fingerprint of
GET /pools, /jobs and every job's tasks, taken before and after), that no internal error was logged for the request
and that the emulator process is still alive and answering.

The node-side rows (a resource file that 404s, a start task that fails, a program that does not exist, an output
pattern that matches nothing, bad file requests against a task that ran) run real tasks in node containers; the CLI
rows run the ``batchbox`` entry point.

Where the expected code comes from (real service behaviour):

* common codes and statuses: "Batch status and error codes" (learn.microsoft.com/rest/api/batchservice/
  batch-status-and-error-codes): MissingRequiredProperty, InvalidPropertyValue, InvalidRequestBody,
  MissingRequiredQueryParameter, InvalidQueryParameterValue, InvalidUri, TaskDependenciesNotSpecifiedOnJob (400),
  AuthenticationFailed (403), PoolNotFound / JobNotFound / TaskNotFound / NodeNotFound / FileNotFound (404),
  UnsupportedHttpVerb (405), PoolExists / JobExists / TaskExists / JobCompleted (409), ConditionNotMet (412),
  RequestBodyTooLarge (413), InvalidRange (416); OutOfRangePriority: .NET ``BatchErrorCodeStrings``;
* unknown body properties -> InvalidRequestBody ("The property 'x' does not exist on type ..."), unknown
  api-version -> InvalidQueryParameterValue, missing -> MissingRequiredQueryParameter: the Batch team's Software
  Entitlement Service REST reference (Azure/azure-batch-software-entitlement, Server/readme.md);
* a wrong SharedKey -> 403 "Server failed to authenticate the request": Azure/doAzureParallel#5;
* add-task-collection bodies of 1 MB or more -> RequestBodyTooLarge: the ``BatchTaskGroup.value`` documentation;
* node-side failure codes (BlobNotFound, CommandProgramNotFound, both usererror): the same error-code reference;
  ``fileuploadout.txt`` as the upload log: the ``OutputFile`` documentation.

Assumed (closest documented code, no public trace of the real answer found): a stale or future ``ocp-date`` and a
missing ``Authorization`` header are 403 AuthenticationFailed (Storage's behaviour on the shared front end); an empty
id is MissingRequiredProperty; more than 100 tasks in a collection is InvalidPropertyValue; a ``$filter`` the service
cannot evaluate is InvalidQueryParameterValue; a ``filePath`` leaving the working directory is refused when the task
is added (InvalidPropertyValue); a string with a lone surrogate is InvalidRequestBody (the service may well store it:
the emulator's store cannot).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from batchbox.core.errors import ResourceNotFoundError
from tests.fixtures.emulator import EmulatorProcess
from tests.signing import (
    API_VERSION,
    JSON_CONTENT_TYPE,
    WRONG_KEY,
    http_date,
    shared_key_authorization,
    sign_headers,
    string_to_sign,
)
from tests.signing import SignedClient as Rest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
QUERY = f"api-version={API_VERSION}"
POOL, JOB, TASK = "bi-pool", "bi-job", "bi-task-1"
DONE_JOB = "bi-done-job"
"""A job that was terminated (completed) during setup."""
NEVER = "bi-never-created"
NODE_PREFIX = "nodeside-"
"""Resources of the node-side tests: they change on their own, so the fingerprint keeps only their ids."""
VM = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}


def pool(pool_id: object, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": pool_id, "vmSize": "standard_d2_v3", "virtualMachineConfiguration": VM}
    body["targetDedicatedNodes"] = 0
    body.update(changes)
    return body


def job(job_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": job_id, "poolInfo": {"poolId": POOL}, **changes}


def task(task_id: str, **changes: Any) -> dict[str, Any]:
    return {"id": task_id, "commandLine": "/bin/true", **changes}


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != name}


# ------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rest(emulator: EmulatorProcess) -> Iterator[Rest]:
    with Rest(emulator.url, emulator.account_name, emulator.account_key) as client:
        yield client


@pytest.fixture(scope="module")
def seeded(rest: Rest) -> None:
    """A pool without nodes, a job on it with two tasks (they stay active: there is no node), a completed job."""
    for method, path, body, status in [
        ("POST", "/pools", pool(POOL), 201),
        ("POST", "/jobs", job(JOB), 201),
        ("POST", f"/jobs/{JOB}/tasks", task(TASK), 201),
        ("POST", f"/jobs/{JOB}/tasks", task("bi-task-2"), 201),
        ("POST", "/jobs", job(DONE_JOB), 201),
        ("POST", f"/jobs/{DONE_JOB}/terminate", None, 202),
    ]:
        response = rest.send(method, path, body=body)
        assert response.status_code == status, response.text
    wait_for("the terminated job to complete", lambda: rest.get(f"/jobs/{DONE_JOB}")["state"] == "completed")


def fingerprint(rest: Rest) -> tuple[Any, ...]:
    """Ids, ETags, states and modification times of every pool, job and task (node-side ones: ids only)."""

    def key(doc: Mapping[str, Any]) -> tuple[Any, ...]:
        if str(doc["id"]).startswith(NODE_PREFIX):
            return (doc["id"],)
        return (doc["id"], doc.get("eTag"), doc.get("state"), doc.get("lastModified"))

    pools = sorted(key(doc) for doc in rest.get("/pools")["value"])
    jobs = rest.get("/jobs")["value"]
    tasks = []
    for job_doc in jobs:
        listed = rest.get(f"/jobs/{job_doc['id']}/tasks")["value"]
        ids_only = str(job_doc["id"]).startswith(NODE_PREFIX)
        tasks.append((job_doc["id"], sorted((t["id"],) if ids_only else key(t) for t in listed)))
    return tuple(pools), tuple(sorted(key(doc) for doc in jobs)), tuple(sorted(tasks))


def process_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


# ---------------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    """One bad request and the answer the Batch service gives to it.

    Attributes:
        name: the test id.
        method / path: the request line (``path`` percent-encoded as sent).
        status: the expected HTTP status.
        code: the expected Batch error code; None for answers without an error body (checked by ``check``).
        body: a JSON body (serialised by the test) or ``raw`` bytes sent as they are.
        query: the query string (None: no query at all, not even api-version).
        headers: extra request headers (signed with the rest).
        auth: ``sharedkey`` or a way to break it (``tests.signing.AUTH_MODES``).
        values: error ``values`` that must be present (value: a substring of the answered value).
        has_values: the error body carries a non-empty ``values`` list.
        check: more assertions on the response.
    """

    name: str
    method: str
    path: str
    status: int
    code: str | None
    body: Any = field(default=None, repr=False)
    raw: bytes | None = field(default=None, repr=False)
    query: str | None = QUERY
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: str = "sharedkey"
    values: Mapping[str, str] = field(default_factory=dict)
    has_values: bool = True
    check: Callable[[httpx.Response], None] | None = None


def collection_results(*codes: str | None) -> Callable[[httpx.Response], None]:
    """Check an add-task-collection answer: one result per task, ``None`` = success, else a clienterror code."""

    def check(response: httpx.Response) -> None:
        results = response.json()["value"]
        assert len(results) == len(codes), results
        for result, code in zip(results, codes, strict=True):
            if code is None:
                assert result["status"] == "success", result
            else:
                assert result["status"] == "clienterror", result
                assert result["error"]["code"] == code, result
                assert result["error"]["message"]["value"], result

    return check


def _equal(actual: object, expected: object) -> None:
    assert actual == expected


def empty_body(response: httpx.Response) -> None:
    assert response.content == b""


def _big_collection() -> dict[str, Any]:
    big = "x" * 25_000
    return {"value": [task(f"bi-big-{i}", environmentSettings=[{"name": "BIG", "value": big}]) for i in range(50)]}


TASKS = f"/jobs/{JOB}/tasks"
COLLECTION = f"/jobs/{JOB}/addtaskcollection"
ID_65 = "a" * 65
STALE = http_date(datetime.now(timezone.utc) - timedelta(minutes=20))

CASES: list[Case] = [
    # ids
    Case("pool-id-invalid-characters", "POST", "/pools", 400, "InvalidPropertyValue", pool("bad id!"),
         values={"PropertyName": "id"}),
    Case("pool-id-65-characters", "POST", "/pools", 400, "InvalidPropertyValue", pool(ID_65),
         values={"PropertyName": "id"}),
    Case("job-id-with-slash", "POST", "/jobs", 400, "InvalidPropertyValue", job("a/b")),
    Case("task-id-non-ascii", "POST", TASKS, 400, "InvalidPropertyValue", task("t\u00e2che")),
    Case("task-id-65-characters", "POST", TASKS, 400, "InvalidPropertyValue", task(ID_65)),
    Case("pool-id-empty", "POST", "/pools", 400, "MissingRequiredProperty", pool(""), values={"PropertyName": "id"}),
    Case("pool-id-a-number", "POST", "/pools", 400, "InvalidRequestBody", pool(7)),
    Case("pool-duplicate-id", "POST", "/pools", 409, "PoolExists", pool(POOL), values={"PoolId": POOL}),
    Case("pool-id-differs-only-in-case", "POST", "/pools", 409, "PoolExists", pool("BI-POOL")),
    Case("job-id-differs-only-in-case", "POST", "/jobs", 409, "JobExists", job("Bi-Job")),
    Case("task-duplicate-id", "POST", TASKS, 409, "TaskExists", task(TASK)),
    Case("task-id-differs-only-in-case", "POST", TASKS, 409, "TaskExists", task("BI-TASK-1")),
    Case("get-pool-by-id-in-other-case", "GET", "/pools/BI-POOL", 200, None,
         check=lambda response: _equal(response.json()["id"], POOL)),
    Case("collection-existing-ids-any-case", "POST", COLLECTION, 200, None,
         {"value": [task("bi-task-2"), task("BI-TASK-1")]}, check=collection_results("TaskExists", "TaskExists")),
    Case("collection-invalid-members", "POST", COLLECTION, 200, None,
         {"value": [without(task("bi-new-1"), "commandLine"), task("bad id!"), task("bi-new-2", requiredSlots=0)]},
         check=collection_results("MissingRequiredProperty", "InvalidPropertyValue", "InvalidPropertyValue")),
    # malformed JSON
    Case("pool-truncated-json", "POST", "/pools", 400, "InvalidRequestBody", raw=b'{"id": "x",'),
    Case("job-body-not-utf8", "POST", "/jobs", 400, "InvalidRequestBody", raw=b'\xff\xfe{"id": "x"}'),
    Case("task-empty-body", "POST", TASKS, 400, "InvalidRequestBody", raw=b""),
    Case("pool-json-array", "POST", "/pools", 400, "InvalidRequestBody", raw=b"[]"),
    Case("pool-json-null", "POST", "/pools", 400, "InvalidRequestBody", raw=b"null"),
    Case("pool-nan-literal", "POST", "/pools", 400, "InvalidRequestBody",
         raw=json.dumps(pool(NEVER)).replace('"targetDedicatedNodes": 0', '"targetDedicatedNodes": NaN').encode()),
    Case("pool-integer-of-5000-digits", "POST", "/pools", 400, "InvalidRequestBody",
         raw=b'{"id": "x", "targetDedicatedNodes": ' + b"9" * 5000 + b"}"),
    Case("pool-json-nested-100000-deep", "POST", "/pools", 400, "InvalidRequestBody",
         raw=b"[" * 100_000 + b"]" * 100_000),
    Case("job-display-name-lone-surrogate", "POST", "/jobs", 400, "InvalidRequestBody",
         raw=json.dumps(job(NEVER, displayName="\ud800")).encode()),
    Case("job-trailing-garbage", "POST", "/jobs", 400, "InvalidRequestBody",
         raw=json.dumps(job(NEVER)).encode() + b" trailing"),
    # wrong types
    Case("pool-target-nodes-string", "POST", "/pools", 400, "InvalidRequestBody",
         pool(NEVER, targetDedicatedNodes="two"), values={"PropertyName": "targetDedicatedNodes"}),
    Case("job-priority-string", "POST", "/jobs", 400, "InvalidRequestBody", job(NEVER, priority="high")),
    Case("job-pool-info-list", "POST", "/jobs", 400, "InvalidRequestBody", job(NEVER, poolInfo=[POOL])),
    Case("task-command-line-number", "POST", TASKS, 400, "InvalidRequestBody", task(NEVER, commandLine=42)),
    Case("task-resource-files-object", "POST", TASKS, 400, "InvalidRequestBody",
         task(NEVER, resourceFiles={"httpUrl": "http://127.0.0.1/x", "filePath": "x"})),
    Case("task-required-slots-bool", "POST", TASKS, 400, "InvalidRequestBody", task(NEVER, requiredSlots=True)),
    Case("collection-value-object", "POST", COLLECTION, 400, "InvalidRequestBody", {"value": task(NEVER)}),
    # missing required properties
    Case("pool-without-vm-size", "POST", "/pools", 400, "MissingRequiredProperty", without(pool(NEVER), "vmSize"),
         values={"PropertyName": "vmSize"}),
    Case("pool-without-vm-configuration", "POST", "/pools", 400, "MissingRequiredProperty",
         without(pool(NEVER), "virtualMachineConfiguration")),
    Case("job-without-pool-info", "POST", "/jobs", 400, "MissingRequiredProperty", {"id": NEVER},
         values={"PropertyName": "poolInfo"}),
    Case("task-without-command-line", "POST", TASKS, 400, "MissingRequiredProperty", {"id": NEVER},
         values={"PropertyName": "commandLine"}),
    Case("collection-without-value", "POST", COLLECTION, 400, "MissingRequiredProperty", {}),
    Case("task-resource-file-without-source", "POST", TASKS, 400, "MissingRequiredProperty",
         task(NEVER, resourceFiles=[{"filePath": "a.txt"}])),
    # invalid values
    Case("job-priority-out-of-range", "POST", "/jobs", 400, "OutOfRangePriority", job(NEVER, priority=5000)),
    Case("pool-negative-target", "POST", "/pools", 400, "InvalidPropertyValue", pool(NEVER, targetDedicatedNodes=-1)),
    Case("pool-resize-timeout-too-short", "POST", "/pools", 400, "InvalidPropertyValue",
         pool(NEVER, resizeTimeout="PT1M")),
    Case("pool-display-name-1025-characters", "POST", "/pools", 400, "InvalidPropertyValue",
         pool(NEVER, displayName="d" * 1025)),
    Case("task-wall-clock-not-a-duration", "POST", TASKS, 400, "InvalidPropertyValue",
         task(NEVER, constraints={"maxWallClockTime": "forever"})),
    Case("task-resource-file-escapes-working-dir", "POST", TASKS, 400, "InvalidPropertyValue",
         task(NEVER, resourceFiles=[{"httpUrl": "http://127.0.0.1:9/f", "filePath": "../escape"}]),
         values={"PropertyName": "resourceFiles[0].filePath"}),
    Case("task-resource-file-absolute-path", "POST", TASKS, 400, "InvalidPropertyValue",
         task(NEVER, resourceFiles=[{"httpUrl": "http://127.0.0.1:9/f", "filePath": "/etc/passwd"}])),
    Case("task-file-mode-not-octal", "POST", TASKS, 400, "InvalidPropertyValue",
         task(NEVER, resourceFiles=[{"httpUrl": "http://127.0.0.1:9/f", "filePath": "f", "fileMode": "999"}])),
    Case("task-depends-on-without-job-dependencies", "POST", TASKS, 400, "TaskDependenciesNotSpecifiedOnJob",
         task(NEVER, dependsOn={"taskIds": [TASK]})),
    Case("job-patch-unknown-enum-value", "PATCH", f"/jobs/{JOB}", 400, "InvalidPropertyValue",
         {"onAllTasksComplete": "sometimes"}),
    Case("pool-resize-beyond-node-cap", "POST", f"/pools/{POOL}/resize", 400, "InvalidPropertyValue",
         {"targetDedicatedNodes": 1000}),
    # unknown properties
    Case("pool-unknown-property", "POST", "/pools", 400, "InvalidRequestBody", pool(NEVER, fooBar=1),
         values={"PropertyName": "fooBar", "Reason": "does not exist on type"}),
    Case("task-misspelt-property", "POST", TASKS, 400, "InvalidRequestBody",
         {"id": NEVER, "commandline": "/bin/true"}, values={"PropertyName": "commandline"}),
    Case("job-unknown-property", "POST", "/jobs", 400, "InvalidRequestBody", job(NEVER, pool="bi-pool")),
    Case("pool-patch-not-patchable-property", "PATCH", f"/pools/{POOL}", 400, "InvalidRequestBody",
         {"targetDedicatedNodes": 3}, values={"PropertyName": "targetDedicatedNodes"}),
    Case("collection-unknown-property", "POST", COLLECTION, 400, "InvalidRequestBody",
         {"value": [task(NEVER)], "tasks": []}),
    # oversize collections and bodies
    Case("collection-of-101-tasks", "POST", COLLECTION, 400, "InvalidPropertyValue",
         {"value": [task(f"bi-many-{i}") for i in range(101)]}),
    Case("collection-body-of-1-mb", "POST", COLLECTION, 413, "RequestBodyTooLarge", _big_collection()),
    Case("pool-body-over-4-mb", "POST", "/pools", 413, "RequestBodyTooLarge",
         pool(NEVER, metadata=[{"name": "big", "value": "v" * (4 * 1024 * 1024)}])),
    # api-version
    Case("no-api-version", "GET", "/pools", 400, "MissingRequiredQueryParameter", query=None,
         values={"QueryParameterName": "api-version"}),
    Case("empty-api-version", "GET", "/jobs", 400, "MissingRequiredQueryParameter", query="api-version="),
    Case("unknown-api-version", "GET", "/pools", 400, "InvalidQueryParameterValue", query="api-version=2099-01-01",
         values={"QueryParameterName": "api-version"}),
    Case("add-pool-with-unknown-api-version", "POST", "/pools", 400, "InvalidQueryParameterValue", pool(NEVER),
         query="api-version=2015-01-01.1.0"),
    # SharedKey
    Case("no-authorization-header", "POST", "/pools", 403, "AuthenticationFailed", pool(NEVER), auth="none"),
    Case("wrong-account-key", "POST", "/pools", 403, "AuthenticationFailed", pool(NEVER), auth="wrong-key",
         values={"AuthenticationErrorDetail": "MAC signature"}),
    Case("unknown-account-name", "GET", "/pools", 403, "AuthenticationFailed", auth="other-account"),
    Case("sharedkey-without-signature", "GET", "/jobs", 403, "AuthenticationFailed", auth="malformed"),
    Case("basic-authorization", "GET", "/pools", 403, "AuthenticationFailed", auth="basic"),
    Case("bearer-token-not-enabled", "GET", "/pools", 403, "AuthenticationFailed", auth="bearer"),
    Case("signed-header-changed-after-signing", "POST", "/pools", 403, "AuthenticationFailed", pool(NEVER),
         auth="tampered"),
    Case("ocp-date-20-minutes-old", "POST", "/pools", 403, "AuthenticationFailed", pool(NEVER),
         headers={"ocp-date": STALE}, values={"AuthenticationErrorDetail": "too old"}),
    Case("ocp-date-20-minutes-ahead", "GET", "/pools", 403, "AuthenticationFailed",
         headers={"ocp-date": http_date(datetime.now(timezone.utc) + timedelta(minutes=20))},
         values={"AuthenticationErrorDetail": "future"}),
    Case("ocp-date-not-a-date", "GET", "/pools", 403, "AuthenticationFailed", headers={"ocp-date": "yesterday"}),
    Case("no-date-header", "GET", "/pools", 403, "AuthenticationFailed", auth="no-date"),
    # queries
    Case("filter-unknown-property", "GET", "/pools", 400, "InvalidQueryParameterValue",
         query=f"{QUERY}&$filter=colour eq 'red'", values={"QueryParameterName": "$filter"}),
    Case("filter-syntax-error", "GET", "/jobs", 400, "InvalidQueryParameterValue", query=f"{QUERY}&$filter=state eq"),
    Case("filter-unsupported-function", "GET", TASKS, 400, "InvalidQueryParameterValue",
         query=f"{QUERY}&$filter=substringof('a', id)"),
    Case("filter-5000-nested-parentheses", "GET", "/pools", 400, "InvalidQueryParameterValue",
         query=f"{QUERY}&$filter=" + "(" * 5000 + "id eq 'x'" + ")" * 5000),
    Case("maxresults-zero", "GET", "/jobs", 400, "InvalidQueryParameterValue", query=f"{QUERY}&maxresults=0"),
    Case("maxresults-not-a-number", "GET", TASKS, 400, "InvalidQueryParameterValue",
         query=f"{QUERY}&maxresults=lots"),
    Case("select-empty-item", "GET", "/pools", 400, "InvalidQueryParameterValue", query=f"{QUERY}&$select=id,,state"),
    Case("skiptoken-garbage", "GET", TASKS, 400, "InvalidQueryParameterValue", query=f"{QUERY}&$skiptoken=%%%"),
    # paths for missing resources
    Case("get-missing-pool", "GET", "/pools/nopool", 404, "PoolNotFound", values={"PoolId": "nopool"}),
    Case("get-over-long-pool-id", "GET", f"/pools/{ID_65}", 404, "PoolNotFound"),
    Case("head-missing-pool", "HEAD", "/pools/nopool", 404, None, check=empty_body),
    Case("get-missing-job", "GET", "/jobs/nojob", 404, "JobNotFound"),
    Case("list-tasks-of-missing-job", "GET", "/jobs/nojob/tasks", 404, "JobNotFound"),
    Case("get-missing-task", "GET", f"{TASKS}/notask", 404, "TaskNotFound", values={"TaskId": "notask"}),
    Case("add-task-to-missing-job", "POST", "/jobs/nojob/tasks", 404, "JobNotFound", task(NEVER)),
    Case("collection-for-missing-job", "POST", "/jobs/nojob/addtaskcollection", 404, "JobNotFound",
         {"value": [task(NEVER)]}),
    Case("delete-missing-pool", "DELETE", "/pools/nopool", 404, "PoolNotFound"),
    Case("delete-missing-job", "DELETE", "/jobs/nojob", 404, "JobNotFound"),
    Case("patch-missing-job", "PATCH", "/jobs/nojob", 404, "JobNotFound", {"priority": 1}),
    Case("terminate-missing-task", "POST", f"{TASKS}/notask/terminate", 404, "TaskNotFound"),
    Case("file-of-missing-task", "GET", f"{TASKS}/notask/files/stdout.txt", 404, "TaskNotFound"),
    Case("file-of-task-in-missing-job", "GET", "/jobs/nojob/tasks/t/files/stdout.txt", 404, "JobNotFound"),
    Case("missing-node-of-pool", "GET", f"/pools/{POOL}/nodes/tvmps_000000000000000000000000_d", 404, "NodeNotFound"),
    Case("nodes-of-missing-pool", "GET", "/pools/nopool/nodes", 404, "PoolNotFound"),
    Case("unknown-path", "GET", "/widgets", 400, "InvalidUri"),
    # state conflicts
    Case("add-task-to-completed-job", "POST", f"/jobs/{DONE_JOB}/tasks", 409, "JobCompleted", task(NEVER)),
    Case("get-pool-if-modified-since-zone-minus-0000", "GET", f"/pools/{POOL}", 200, None,
         headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 -0000"},
         check=lambda response: _equal(response.json()["id"], POOL)),
    Case("delete-pool-if-unmodified-since-the-past", "DELETE", f"/pools/{POOL}", 412, "ConditionNotMet",
         headers={"If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 -0000"}, has_values=False),
    Case("delete-pool-if-match-mismatch", "DELETE", f"/pools/{POOL}", 412, "ConditionNotMet",
         headers={"If-Match": '"0x8D0000000000000"'}, has_values=False),
    Case("unsupported-verb", "PUT", "/pools", 405, "UnsupportedHttpVerb", {"id": NEVER}),
]  # fmt: skip


def test_the_table_has_at_least_40_distinct_cases() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 40


def assert_batch_error(response: httpx.Response, case: Case) -> None:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    document = response.json()
    assert document["code"] == case.code, document
    message = document["message"]
    assert message["lang"] == "en-US"
    assert isinstance(message["value"], str) and message["value"].strip(), document
    values = document.get("values", [])
    assert isinstance(values, list) and (values or not case.has_values), document
    assert all(set(item) == {"key", "value"} and isinstance(item["value"], str) for item in values), values
    answered = {item["key"]: item["value"] for item in values}
    for key, expected in case.values.items():
        assert expected in answered.get(key, ""), (key, answered)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_request(case: Case, rest: Rest, seeded: None, emulator: EmulatorProcess) -> None:
    before = fingerprint(rest)
    response = rest.send(
        case.method, case.path, query=case.query, body=case.body, raw=case.raw, headers=case.headers, auth=case.auth
    )
    assert response.status_code == case.status, response.text[:2000]
    if case.code is not None:
        assert_batch_error(response, case)
    if case.check is not None:
        case.check(response)
    request_id = response.headers["request-id"]
    assert f"request-id {request_id}" not in emulator.log_text(), "the request was logged as an internal error"
    assert process_alive(emulator.pid)
    assert fingerprint(rest) == before


# ------------------------------------------------------------------------------------------- the signer is the SDK's


def sdk_authorization(method: str, url: str, headers: dict[str, str], **body: Any) -> tuple[str, dict[str, str]]:
    request = HttpRequest(method, url, headers=headers, **body)
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential("acct", WRONG_KEY))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return request.headers["Authorization"], dict(request.headers)


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", f"http://h/pools?{QUERY}", {}),
        ("GET", f"http://h/jobs/j%201/tasks?{QUERY}&%24filter=state%20eq%20%27it%27%27s%27&timeOut=30", {}),
        ("GET", f"http://h/jobs?{QUERY}&maxresults=10&maxresults=20&%24select=", {}),
        ("POST", f"http://h/pools?{QUERY}", {"json": {"id": "p\u00e9", "vmSize": "x"}}),
        ("POST", f"http://h/jobs/j/terminate?{QUERY}", {}),
        ("DELETE", f"http://h/pools/p?{QUERY}", {}),
        ("HEAD", f"http://h/pools/p;v=1?{QUERY}", {}),
        ("PATCH", f"http://h/jobs/j?{QUERY}", {"content": b'{"priority": 1}'}),
    ],
)
def test_signer_matches_the_sdk_policy(method: str, url: str, body: dict[str, Any]) -> None:
    headers = {"ocp-date": "Tue, 01 Jul 2025 10:00:00 GMT", "client-request-id": "x", "If-Match": '"e1"'}
    if body:
        headers["Content-Type"] = JSON_CONTENT_TYPE
    expected, sent = sdk_authorization(method, url, dict(headers), **body)
    assert shared_key_authorization(method, url, sent, "acct", WRONG_KEY) == expected
    signed = sign_headers(method, url, {k: v for k, v in sent.items() if k != "Authorization"}, "acct", WRONG_KEY)
    assert signed["Authorization"] == expected
    assert f"/acct{url.split('://h', 1)[1].split('?')[0].split(';')[0]}" in string_to_sign(method, url, sent, "acct")


# ------------------------------------------------------------------------------------------------------ CLI rows


def run_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from batchbox.cli.main import main; main()", *args],
        capture_output=True, text=True, env=clean, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


WORKLOAD = "examples/topn_words/workload.py"
CLI_CASES = [
    ("missing-workload-file", ["run", "no/such/workload.py", "--backend", "local"], {}, 2,
     "batchbox: error: workload: no such workload file: no/such/workload.py"),
    ("nodes-not-a-number", ["run", WORKLOAD, "--nodes", "many"], {}, 2, "Invalid value for '--nodes'"),
    ("nodes-negative", ["run", WORKLOAD, "--nodes", "-1"], {}, 2, "Invalid value for '--nodes'"),
    ("unknown-backend-option", ["run", WORKLOAD, "--backend", "gcp"], {}, 2, "Invalid value for '--backend'"),
    ("unknown-backend-in-environment", ["status"], {"BATCHBOX_BACKEND": "gcp"}, 2, "unknown backend 'gcp'"),
    ("azure-backend-without-settings", ["run", WORKLOAD, "--backend", "azure"], {}, 2,
     "batchbox: error: BATCHBOX_BATCH_URL: not set"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "exit_code", "message"), [case[1:] for case in CLI_CASES], ids=[case[0] for case in CLI_CASES]
)
def test_cli_bad_input(args: list[str], env: dict[str, str], exit_code: int, message: str) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == exit_code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_logs_of_a_missing_job_name_the_job(emulator: EmulatorProcess, seeded: None) -> None:
    from batchbox.backends.azure.compute import AzureBatchCompute

    with AzureBatchCompute.from_shared_key(
        emulator.url, emulator.account_name, emulator.account_key, retry_total=0
    ) as compute:
        with pytest.raises(ResourceNotFoundError) as missing_job:
            compute.read_task_file("nojob", "t", "stdout.txt")
        assert missing_job.value.kind == "job"
        assert missing_job.value.name == "nojob"
        with pytest.raises(ResourceNotFoundError) as missing_task:
            compute.read_task_file(JOB, "notask", "stdout.txt")
        assert missing_task.value.kind == "task"
        assert missing_task.value.name == "notask"
    assert process_alive(emulator.pid)


# ------------------------------------------------------------------------------------------------- node-side rows


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120.0, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server over an empty directory: every file is a 404 (nodes share the host network)."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class NodePools:
    good: str
    failing_start: str


@pytest.fixture(scope="module")
def node_pools(rest: Rest) -> NodePools:
    """Two one-node pools, created together so their containers start in parallel: a plain one and one whose start
    task exits 1 with waitForSuccess."""
    suffix = uuid.uuid4().hex[:6]
    pools = NodePools(good=f"{NODE_PREFIX}pool-{suffix}", failing_start=f"{NODE_PREFIX}stf-{suffix}")
    start_task = {"commandLine": "/bin/sh -c 'echo failing start task; exit 1'", "waitForSuccess": True}
    for body in (pool(pools.good, targetDedicatedNodes=1),
                 pool(pools.failing_start, targetDedicatedNodes=1, startTask=start_task)):  # fmt: skip
        response = rest.send("POST", "/pools", body=body)
        assert response.status_code == 201, response.text
    return pools


def nodes_in(rest: Rest, pool_id: str, state: str) -> list[dict[str, Any]] | None:
    nodes = rest.get(f"/pools/{pool_id}/nodes")["value"]
    return nodes if nodes and all(node["state"] == state for node in nodes) else None


@pytest.fixture(scope="module")
def node_job(rest: Rest, node_pools: NodePools) -> str:
    job_id = f"{NODE_PREFIX}job-{uuid.uuid4().hex[:6]}"
    response = rest.send("POST", "/jobs", body={"id": job_id, "poolInfo": {"poolId": node_pools.good}})
    assert response.status_code == 201, response.text
    return job_id


def run_task(rest: Rest, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Add the task and return its document once completed."""
    response = rest.send("POST", f"/jobs/{job_id}/tasks", body=body)
    assert response.status_code == 201, response.text
    path = f"/jobs/{job_id}/tasks/{body['id']}"
    return wait_for(f"task {body['id']} to complete", lambda: (doc := rest.get(path))["state"] == "completed" and doc)


def test_resource_file_that_404s_fails_the_task_before_it_runs(rest: Rest, node_job: str, file_server: str) -> None:
    doc = run_task(
        rest,
        node_job,
        task("rf-404", resourceFiles=[{"httpUrl": f"{file_server}/missing.txt", "filePath": "missing.txt"}]),
    )
    info = doc["executionInfo"]
    assert info.get("exitCode") is None, info
    assert info["result"] == "failure"
    assert info["failureInfo"]["category"] == "usererror"
    assert info["failureInfo"]["code"] == "BlobNotFound"


def test_missing_program_is_exit_127_with_command_program_not_found(rest: Rest, node_job: str) -> None:
    doc = run_task(rest, node_job, task("no-program", commandLine="/nonexistent/prog --flag"))
    info = doc["executionInfo"]
    assert info["exitCode"] == 127
    assert info["result"] == "failure"
    assert info["failureInfo"]["category"] == "usererror"
    assert info["failureInfo"]["code"] == "CommandProgramNotFound"


def test_output_pattern_matching_nothing_succeeds_and_is_logged(rest: Rest, node_job: str) -> None:
    output = {
        "filePattern": "nothing-here-*.txt",
        "destination": {"container": {"containerUrl": "http://127.0.0.1:9/outputs"}},
        "uploadOptions": {"uploadCondition": "taskcompletion"},
    }
    doc = run_task(rest, node_job, task("no-match", commandLine="/bin/sh -c 'echo done'", outputFiles=[output]))
    info = doc["executionInfo"]
    assert info["exitCode"] == 0
    assert info["result"] == "success"
    assert "failureInfo" not in info
    files = f"/jobs/{node_job}/tasks/no-match/files"
    log = rest.send("GET", f"{files}/fileuploadout.txt")
    assert log.status_code == 200, log.text
    assert "nothing-here-*.txt" in log.text
    escape = rest.send("GET", f"{files}/..%2F..%2F..%2F..%2Fetc%2Fpasswd")
    assert escape.status_code == 404, escape.text
    assert escape.json()["code"] == "FileNotFound"


@pytest.fixture(scope="module")
def finished_task(rest: Rest, node_job: str) -> str:
    """A task that ran on a node (its directory holds stdout.txt, stderr.txt and wd/)."""
    doc = run_task(rest, node_job, task("files-target", commandLine="/bin/sh -c 'echo 0123456789'"))
    assert doc["executionInfo"]["exitCode"] == 0
    return str(doc["id"])


FILE_CASES = [
    # (name, method, file path or "" for the list, query extra, headers, status, code)
    ("range-end-before-start", "GET", "stdout.txt", "", {"ocp-range": "bytes=5-2"}, 416, "InvalidRange"),
    ("range-not-numbers", "GET", "stdout.txt", "", {"ocp-range": "bytes=a-b"}, 416, "InvalidRange"),
    ("range-beyond-the-end", "GET", "stdout.txt", "", {"ocp-range": "bytes=100000-"}, 416, "InvalidRange"),
    ("range-other-unit", "GET", "stdout.txt", "", {"ocp-range": "lines=1-2"}, 416, "InvalidRange"),
    ("missing-file", "GET", "nope.txt", "", {}, 404, "FileNotFound"),
    ("directory-as-file", "GET", "wd", "", {}, 404, "FileNotFound"),
    ("nul-in-path", "GET", "std%00out.txt", "", {}, 404, "FileNotFound"),
    ("nul-in-deleted-path", "DELETE", "wd%00", "", {}, 404, "FileNotFound"),
    ("traversal-out-of-the-task", "GET", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "", {}, 404, "FileNotFound"),
    ("traversal-with-backslashes", "GET", "..%5C..%5Cetc%5Cpasswd", "", {}, 404, "FileNotFound"),
    ("absolute-path", "GET", "%2Fetc%2Fpasswd", "", {}, 404, "FileNotFound"),
    ("recursive-not-a-boolean", "GET", "", "&recursive=maybe", {}, 400, "InvalidQueryParameterValue"),
    ("delete-recursive-not-a-boolean", "DELETE", "wd", "&recursive=maybe", {}, 400, "InvalidQueryParameterValue"),
    ("delete-missing-file", "DELETE", "nope.txt", "", {}, 404, "FileNotFound"),
    ("if-modified-since-without-zone", "GET", "stdout.txt", "",
     {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 -0000"}, 200, None),
    ("if-unmodified-since-without-zone", "HEAD", "stdout.txt", "",
     {"If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 -0000"}, 412, None),
    ("if-modified-since-not-a-date", "GET", "stdout.txt", "", {"If-Modified-Since": "last tuesday"}, 200, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "file_path", "query", "headers", "status", "code"),
    [case[1:] for case in FILE_CASES],
    ids=[case[0] for case in FILE_CASES],
)
def test_bad_file_requests_on_a_finished_task(
    rest: Rest,
    node_job: str,
    finished_task: str,
    emulator: EmulatorProcess,
    method: str,
    file_path: str,
    query: str,
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    files = f"/jobs/{node_job}/tasks/{finished_task}/files"
    listing_before = rest.get(files, query=f"{QUERY}&recursive=true")["value"]
    response = rest.send(method, f"{files}/{file_path}" if file_path else files, query=QUERY + query, headers=headers)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert rest.get(files, query=f"{QUERY}&recursive=true")["value"] == listing_before
    assert f"request-id {response.headers['request-id']}" not in emulator.log_text()
    assert process_alive(emulator.pid)


def test_failed_start_task_with_wait_for_success_keeps_tasks_off_the_node(rest: Rest, node_pools: NodePools) -> None:
    nodes = wait_for(
        "the node to be starttaskfailed", lambda: nodes_in(rest, node_pools.failing_start, "starttaskfailed")
    )
    start_info = nodes[0]["startTaskInfo"]
    assert start_info["exitCode"] == 1
    assert start_info["result"] == "failure"
    job_id = f"{NODE_PREFIX}stf-job-{uuid.uuid4().hex[:6]}"
    response = rest.send("POST", "/jobs", body={"id": job_id, "poolInfo": {"poolId": node_pools.failing_start}})
    assert response.status_code == 201, response.text
    response = rest.send("POST", f"/jobs/{job_id}/tasks", body=task("never-scheduled"))
    assert response.status_code == 201, response.text
    for _ in range(12):  # a scheduler that ignored the failure would have assigned the task within these polls
        doc = rest.get(f"/jobs/{job_id}/tasks/never-scheduled")
        assert doc["state"] == "active", doc
        assert "nodeInfo" not in doc, doc
        time.sleep(0.25)
    node = rest.get(f"/pools/{node_pools.failing_start}/nodes/{nodes[0]['id']}")
    assert node["state"] == "starttaskfailed"
    assert node.get("totalTasksRun", 0) == 0
