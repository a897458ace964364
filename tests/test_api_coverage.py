"""docs/api-coverage.md cannot drift: it is generated from the route table and the property inventory, the table of
operations matches the routes, refused properties and operations are really refused, nothing is accepted and ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route

from batchbox.emulator.app import ROUTES
from batchbox.emulator.coverage.operations import OPERATIONS, RETIRED_OPERATIONS, match_operation
from batchbox.emulator.coverage.properties import PROPERTIES, Handling, PropertyUse
from batchbox.emulator.coverage.report import operation_statuses, render, served_by
from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources import (
    apply_job_patch,
    apply_pool_patch,
    apply_pool_replace,
    build_job,
    build_pool,
    build_task,
)
from batchbox.emulator.resources.nodes import upload_logs_request
from batchbox.emulator.resources.schedules import build_schedule
from tests.fixtures.emulator import EmulatorProcess
from tests.signing import SignedClient

DOC = Path(__file__).resolve().parents[1] / "docs" / "api-coverage.md"

_POOL = {
    "id": "coverage-pool",
    "vmSize": "standard_d2s_v3",
    "targetDedicatedNodes": 0,
    "virtualMachineConfiguration": {
        "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
    },
}
_JOB = {"id": "coverage-job", "poolInfo": {"poolId": "coverage-pool"}}
_TASK = {"id": "coverage-task", "commandLine": "/bin/true"}
_BASE = "http://127.0.0.1:1"


def _job_doc() -> dict[str, Any]:
    return build_job(dict(_JOB), base_url=_BASE)


def _pool_doc() -> dict[str, Any]:
    return build_pool(dict(_POOL), base_url=_BASE)


def _schedule(specification: dict[str, Any]) -> dict[str, Any]:
    return {"id": "coverage-schedule", "schedule": {}, "jobSpecification": specification}


_BUILDERS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], object]]] = {
    "PoolAddParameter": (_POOL, lambda body: build_pool(body, base_url=_BASE)),
    "PoolPatchParameter": ({}, lambda body: apply_pool_patch(_pool_doc(), body)),
    "PoolUpdatePropertiesParameter": (
        {"applicationPackageReferences": [], "metadata": []},
        lambda body: apply_pool_replace(_pool_doc(), body),
    ),
    "JobAddParameter": (_JOB, lambda body: build_job(body, base_url=_BASE)),
    "JobPatchParameter": ({}, lambda body: apply_job_patch(_job_doc(), body)),
    "JobSpecification": (
        {"poolInfo": {"poolId": "coverage-pool"}},
        lambda spec: build_schedule(_schedule(spec), base_url=_BASE),
    ),
    "TaskAddParameter": (_TASK, lambda body: build_task(body, job=_job_doc(), base_url=_BASE)),
    "UploadBatchServiceLogsConfiguration": (
        {"containerUrl": "http://127.0.0.1:1/logs", "startTime": "2025-01-01T00:00:00Z"},
        upload_logs_request,
    ),
}


def test_committed_document_is_what_the_code_says() -> None:
    assert DOC.read_text(encoding="utf-8") == render(ROUTES), "run: python -m batchbox.emulator.coverage"


def _batch_routes() -> list[Route]:
    return [r for r in ROUTES if isinstance(r, Route) and not r.path.startswith(("/_agent", "/_admin", "/portal"))]


def test_every_batch_route_serves_an_operation_of_the_table() -> None:
    for route in _batch_routes():
        for method in sorted((route.methods or set()) - {"HEAD"} or {"HEAD"}):
            operation = match_operation(method, route.path.replace("{", "").replace("}", ""))
            assert operation is not None, f"{method} {route.path} is not a Batch data-plane operation"
            assert operation in OPERATIONS, f"{method} {route.path} serves a retired operation"


def test_operations_table_is_whole_and_unique() -> None:
    keys = [(op.method, op.path.lower()) for op in OPERATIONS]
    assert len(OPERATIONS) == 72
    assert len(set(keys)) == len(keys)
    assert len({op.sdk_method for op in OPERATIONS}) == len(OPERATIONS)


def test_served_operations_are_found_by_the_router() -> None:
    assert served_by(ROUTES, "GET", "/pools/{poolId}") == "/pools/{pool_id}"
    assert served_by(ROUTES, "HEAD", "/pools/{poolId}") == "/pools/{pool_id}"
    served = {s.operation.sdk_method for s in operation_statuses(ROUTES) if s.served}
    assert {"create_pool", "create_task_collection", "get_job_task_counts", "download_task_file"} <= served


def _entry_id(use: PropertyUse) -> str:
    return f"{use.body}:{use.path}"


_REFUSED = [u for u in PROPERTIES if u.handling is Handling.REFUSED and "." not in u.path]


@pytest.mark.parametrize("use", _REFUSED, ids=_entry_id)
def test_refused_properties_are_refused_with_a_batch_error(use: PropertyUse) -> None:
    assert use.sample is not None, f"{_entry_id(use)}: a refused property needs a sample value to test the refusal"
    base, build = _BUILDERS[use.body]
    with pytest.raises(BatchError) as raised:
        build({**base, use.path: use.sample})
    assert raised.value.status == 400
    assert raised.value.code not in ("InvalidRequestBody", "MissingRequiredProperty")
    assert use.path in str(raised.value.values)


def test_builders_accept_the_minimal_bodies() -> None:
    for base, build in _BUILDERS.values():
        build(dict(base))


def test_every_property_is_implemented_described_or_refused() -> None:
    assert {use.handling for use in PROPERTIES} <= set(Handling)
    assert {h.value for h in Handling} == {"implemented", "description", "refused"}


def test_no_property_is_listed_twice() -> None:
    keys = [(u.body, u.path) for u in PROPERTIES]
    assert len(set(keys)) == len(keys)


@pytest.mark.docker
def test_unserved_operations_answer_unsupported_operation(emulator: EmulatorProcess) -> None:
    unserved = [s.operation for s in operation_statuses(ROUTES) if not s.served]
    assert unserved, "every operation is served: this test has nothing left to check"
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as http:
        for op in unserved:
            path = op.path.replace("{", "x").replace("}", "")
            body = {} if op.method in ("POST", "PUT", "PATCH") else None
            response = http.send(op.method, path, body=body)
            assert response.status_code == 400, (op, response.status_code)
            if op.method == "HEAD":
                assert response.content == b""
                continue
            error = response.json()
            assert error["code"] == "UnsupportedOperation", (op, error)
            values = {v["key"]: v["value"] for v in error["values"]}
            assert values["Operation"] == op.sdk_method
            if op in RETIRED_OPERATIONS:
                assert "retired" in values["Reason"]
        typo = http.send("GET", "/poolz")
        assert typo.json()["code"] == "InvalidUri"
