"""The emulator's protocol layer: SharedKey auth, api-version, request ids, error bodies, OData, paging, the runner.

The middleware runs in a tiny Starlette app under a real uvicorn server and is called with the real azure-batch 15.x
SDK (and, when ``.venv-sdk14`` exists, the 14.x msrest SDK in a subprocess).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from azure.batch import BatchClient
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.batch.models import BatchPoolCreateOptions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchbox.backends.local.entra import LocalIssuer
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.errors import BatchError
from batchbox.emulator.protocol import (
    FILTER_PROPERTIES,
    BatchProtocolMiddleware,
    SharedKeyVerifier,
    accepted,
    batch_json,
    created,
    list_response,
    next_link,
    paginate,
    parse_filter,
    parse_maxresults,
    parse_select,
    read_json,
    request_id,
)
from batchbox.emulator.protocol.auth import HEADERS_TO_SIGN, sign_string
from batchbox.emulator.protocol.odata import apply_select
from batchbox.emulator.protocol.responses import base_url
from batchbox.emulator.protocol.versions import SUPPORTED_API_VERSIONS, check_api_version
from batchbox.emulator.server import is_loopback, run

REPO = Path(__file__).resolve().parents[1]
ACCOUNT = "protoacct"
KEY = base64.b64encode(b"protocol-test-key-0123456789abcdef").decode()
WRONG_KEY = base64.b64encode(b"some-other-key-0123456789abcdef!").decode()
SECRET_IN_EXCEPTION = "kaboom-internal-detail-4711"


# ----------------------------------------------------------------------------------------------------- the test app


@dataclass
class Recorder:
    fetch_limits: list[int] = field(default_factory=list)


TASKS = [
    {"id": f"task{i:04d}", "state": "completed" if i % 3 == 0 else "active", "commandLine": "x"} for i in range(2500)
]
TASK_INDEX = {task["id"].lower(): index for index, task in enumerate(TASKS)}
POOLS = [{"id": f"pool{i}", "state": "active", "vmSize": "standard_d2s_v3"} for i in range(7)]


def make_app(config: EmulatorConfig, recorder: Recorder, *, pass_config: bool) -> Starlette:
    async def get_pool(request: Request) -> Response:
        pool_id = request.path_params["pool_id"]
        doc = {"id": pool_id, "state": "active", "vmSize": "standard_d2s_v3"}
        return batch_json(doc, etag="0x8D000000000001", last_modified="2024-01-02T03:04:05.0000000Z")

    async def list_pools(request: Request) -> Response:
        query = request.query_params
        predicate = parse_filter(query.get("$filter"), FILTER_PROPERTIES["pools"])
        select = parse_select(query.get("$select"), FILTER_PROPERTIES["pools"] | {"url"})
        page, token = paginate(
            POOLS, parse_maxresults(query.get("maxresults")), query.get("$skiptoken"), predicate=predicate
        )
        values = [apply_select(doc, query.get("$select")) if select else doc for doc in page]
        return list_response(base_url(request), "pools", values, next_link(request, token))

    async def add_pool(request: Request) -> Response:
        body = await read_json(request)
        location = f"{base_url(request)}/pools/{body['id']}"
        return created(location, "0x8D000000000002", datetime(2024, 1, 2, tzinfo=timezone.utc))

    async def list_tasks(request: Request) -> Response:
        query = request.query_params
        predicate = parse_filter(query.get("$filter"), FILTER_PROPERTIES["tasks"])
        select = parse_select(query.get("$select"), FILTER_PROPERTIES["tasks"])

        def fetch(after_key: str | None, limit: int) -> Sequence[dict[str, Any]]:
            recorder.fetch_limits.append(limit)
            start = TASK_INDEX[after_key] + 1 if after_key is not None else 0
            return TASKS[start : start + limit]

        maxresults = parse_maxresults(query.get("maxresults"))
        page, token = paginate(fetch, maxresults, query.get("$skiptoken"), predicate=predicate)
        values = [apply_select(doc, query.get("$select")) if select else doc for doc in page]
        return list_response(base_url(request), "tasks", values, next_link(request, token))

    async def get_file(request: Request) -> Response:
        return Response(request.path_params["file_path"].encode(), media_type="application/octet-stream")

    async def delete_job(request: Request) -> Response:
        return accepted()

    async def terminate_job(request: Request) -> Response:
        return accepted()

    async def boom(request: Request) -> Response:
        raise RuntimeError(SECRET_IN_EXCEPTION)

    async def conflict(request: Request) -> Response:
        raise BatchError(409, "PoolExists", "The specified pool already exists.", {"PoolId": "p1"})

    async def echo(request: Request) -> Response:
        return batch_json({"echo": await read_json(request), "requestId": request_id(request)})

    async def ping(request: Request) -> Response:
        return JSONResponse({"ok": True, "requestId": request_id(request)})

    routes = [
        Route("/pools", list_pools, methods=["GET"]),
        Route("/pools", add_pool, methods=["POST"]),
        Route("/pools/{pool_id}", get_pool, methods=["GET"]),
        Route("/jobs/{job_id}", delete_job, methods=["DELETE"]),
        Route("/jobs/{job_id}/terminate", terminate_job, methods=["POST"]),
        Route("/jobs/{job_id}/tasks", list_tasks, methods=["GET"]),
        Route("/jobs/{job_id}/tasks/{task_id}/files/{file_path:path}", get_file, methods=["GET"]),
        Route("/boom", boom),
        Route("/conflict", conflict),
        Route("/echo", echo, methods=["POST"]),
        Route("/_agent/v1/echo", echo, methods=["POST"]),
        Route("/_agent/v1/ping", ping),
    ]
    middleware = [Middleware(BatchProtocolMiddleware, config=config if pass_config else None)]
    app = Starlette(routes=routes, middleware=middleware)
    app.state.config = config
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    config: EmulatorConfig
    recorder: Recorder


def _serve(config: EmulatorConfig, *, pass_config: bool) -> Iterator[Served]:
    recorder = Recorder()
    app = make_app(config, recorder, pass_config=pass_config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=config.port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{config.port}", config, recorder)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    config = EmulatorConfig(
        port=free_port(), account_name=ACCOUNT, account_key=KEY, state_dir=tmp_path_factory.mktemp("state")
    )
    yield from _serve(config, pass_config=False)


@pytest.fixture(scope="module")
def local_issuer(tmp_path_factory: pytest.TempPathFactory) -> LocalIssuer:
    return LocalIssuer.ensure(tmp_path_factory.mktemp("issuer") / "entra")


@pytest.fixture(scope="module")
def served_bearer(tmp_path_factory: pytest.TempPathFactory, local_issuer: LocalIssuer) -> Iterator[Served]:
    config = EmulatorConfig(
        port=free_port(),
        account_name=ACCOUNT,
        account_key=KEY,
        entra_issuer=local_issuer.openid_configuration,
        state_dir=tmp_path_factory.mktemp("state"),
    )
    yield from _serve(config, pass_config=True)


def client(served: Served, *, account: str = ACCOUNT, key: str = KEY, **kwargs: Any) -> BatchClient:
    kwargs.setdefault("retry_total", 0)
    return BatchClient(served.url, AzureNamedKeyCredential(account, key), **kwargs)


def send(served: Served, request: HttpRequest, **kwargs: Any) -> Any:
    """Send a raw request through the SDK's pipeline (signed exactly as the SDK signs); errors are returned too."""
    try:
        return client(served, **kwargs).send_request(request)
    except HttpResponseError as exc:  # the SDK's exception policy raises on every non-2xx answer
        return exc.response


def error_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json;odata=minimalmetadata"
    body: dict[str, Any] = response.json()
    return body


API = {"api-version": "2025-06-01"}


# ------------------------------------------------------------------------------------------- SharedKey, 15.x SDK


def test_sdk15_get_pool_and_exists_are_accepted(served: Served) -> None:
    batch = client(served)
    pool = batch.get_pool("pool-A_1")
    assert pool.id == "pool-A_1"
    assert batch.pool_exists("pool-A_1") is True


@pytest.mark.parametrize("file_path", ["wd/dir with space/ü&x#1.txt", "a+b%c;d=e/f?g", "stdout.txt"])
def test_sdk15_percent_encoded_paths_are_signed_on_the_raw_path(served: Served, file_path: str) -> None:
    data = b"".join(client(served).download_task_file("job-1", "task 1?", file_path))
    assert data.decode() == file_path


def test_sdk15_post_with_json_body_gets_201_headers(served: Served) -> None:
    headers = client(served).create_pool(
        BatchPoolCreateOptions(id="newpool", vm_size="standard_d2s_v3"), cls=lambda response, body, hdrs: hdrs
    )
    assert headers["DataServiceId"] == f"{served.url}/pools/newpool"
    assert headers["ETag"] == "0x8D000000000002"
    assert headers["Last-Modified"] == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert uuid.UUID(headers["request-id"])


@pytest.mark.parametrize(
    "request_",
    [HttpRequest("DELETE", "/jobs/job1", params=API), HttpRequest("POST", "/jobs/job1/terminate", params=API)],
    ids=["delete", "post-without-body"],
)
def test_sdk15_bodiless_requests_sign_content_length(served: Served, request_: HttpRequest) -> None:
    response = send(served, request_)
    assert response.status_code == 202, response.text()


def test_sdk15_list_with_filter_spaces_quotes_and_paging(served: Served) -> None:
    served.recorder.fetch_limits.clear()
    wanted = [t["id"] for t in TASKS if t["state"] == "completed" and t["id"].startswith("task1")]
    tasks = list(
        client(served).list_tasks("job1", filter="state eq 'Completed' and startswith(id, 'TASK1')", max_results=100)
    )
    assert [t.id for t in tasks] == wanted
    assert len(wanted) > 300
    # every page was read lazily in short chunks, never the whole list at once
    assert served.recorder.fetch_limits and max(served.recorder.fetch_limits) <= 256


def test_sdk15_list_pages_follow_next_link_and_select(served: Served) -> None:
    pages = client(served).list_pools(max_results=3, select=["id", "state"]).by_page()
    seen = [[(p.id, p.state, p.vm_size) for p in page] for page in pages]
    assert [len(page) for page in seen] == [3, 3, 1]
    assert [item[0] for page in seen for item in page] == [p["id"] for p in POOLS]
    assert all(vm_size is None and state == "active" for page in seen for _, state, vm_size in page)


def test_wrong_key_is_403_authentication_failed_without_secrets(served: Served) -> None:
    with pytest.raises(HttpResponseError) as info:
        client(served, key=WRONG_KEY).get_pool("p1")
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "AuthenticationFailed"
    body = info.value.response.text()
    assert "Make sure the value of Authorization header is formed correctly including the signature." in body
    assert KEY not in body and WRONG_KEY not in body
    detail = json.loads(body)["values"][0]
    assert detail["key"] == "AuthenticationErrorDetail" and "MAC signature" in detail["value"]
    # the signature the server expected is never echoed
    for token in re.findall(r"[A-Za-z0-9+/]{43}=", body):
        pytest.fail(f"a base64 digest leaked into the error body: {token}")


def test_unknown_account_is_403(served: Served) -> None:
    with pytest.raises(HttpResponseError) as info:
        client(served, account="someoneelse").get_pool("p1")
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "AuthenticationFailed"
    assert "someoneelse" in json.loads(info.value.response.text())["values"][0]["value"]


@pytest.mark.parametrize(("skew_minutes", "fragment"), [(-20, "too old"), (20, "future")])
def test_skewed_ocp_date_is_403(served: Served, skew_minutes: int, fragment: str) -> None:
    when = datetime.now(timezone.utc) + timedelta(minutes=skew_minutes)
    with pytest.raises(HttpResponseError) as info:
        client(served).get_pool("p1", ocp_date=when)
    assert info.value.status_code == 403
    assert fragment in json.loads(info.value.response.text())["values"][0]["value"]


def test_ocp_date_within_fifteen_minutes_is_accepted(served: Served) -> None:
    when = datetime.now(timezone.utc) - timedelta(minutes=10)
    assert client(served).get_pool("p1", ocp_date=when).id == "p1"


def test_missing_authorization_is_403(served: Served) -> None:
    response = httpx.get(f"{served.url}/pools/p1", params=API)
    assert response.status_code == 403
    assert response.json()["code"] == "AuthenticationFailed"


# ------------------------------------------------------------------------------------------------- api-version


def test_missing_api_version_is_400_even_unauthenticated(served: Served) -> None:
    response = httpx.get(f"{served.url}/pools/p1")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "MissingRequiredQueryParameter"
    assert {"key": "QueryParameterName", "value": "api-version"} in body["values"]


def test_unknown_api_version_is_400_invalid_query_parameter_value(served: Served) -> None:
    with pytest.raises(HttpResponseError) as info:
        client(served, api_version="2099-01-01").get_pool("p1")
    assert info.value.status_code == 400
    assert info.value.error is not None and info.value.error.code == "InvalidQueryParameterValue"
    values = {v["key"]: v["value"] for v in json.loads(info.value.response.text())["values"]}
    assert values["QueryParameterName"] == "api-version" and values["QueryParameterValue"] == "2099-01-01"


@pytest.mark.parametrize("version", ["2024-07-01.20.0", "2024-02-01.19.0", "2020-03-01.11.0"])
def test_older_api_versions_are_accepted(served: Served, version: str) -> None:
    assert client(served, api_version=version).get_pool("p1").id == "p1"


def test_version_table() -> None:
    assert "2025-06-01" in SUPPORTED_API_VERSIONS and "2023-05-01.17.0" in SUPPORTED_API_VERSIONS
    assert check_api_version("2022-01-01.15.0") == "2022-01-01.15.0"
    with pytest.raises(BatchError) as missing:
        check_api_version(None)
    assert (missing.value.status, missing.value.code) == (400, "MissingRequiredQueryParameter")
    with pytest.raises(BatchError) as unknown:
        check_api_version("2025-06-01.21.0")
    assert (unknown.value.status, unknown.value.code) == (400, "InvalidQueryParameterValue")


# ------------------------------------------------------------------------------ request ids and error rendering


def test_request_id_on_every_response_and_client_request_id_echo_rule(served: Served) -> None:
    echoed = send(
        served,
        HttpRequest(
            "GET", "/pools/p1", params=API, headers={"client-request-id": "abc-123", "return-client-request-id": "true"}
        ),
    )
    assert echoed.status_code == 200
    assert echoed.headers["client-request-id"] == "abc-123"
    first = uuid.UUID(echoed.headers["request-id"])
    plain = send(served, HttpRequest("GET", "/pools/p1", params=API, headers={"client-request-id": "abc-123"}))
    assert "client-request-id" not in plain.headers
    assert uuid.UUID(plain.headers["request-id"]) != first
    unauthenticated = httpx.get(f"{served.url}/pools/p1")
    assert uuid.UUID(unauthenticated.headers["request-id"])


def test_batch_error_body_shape(served: Served) -> None:
    response = send(served, HttpRequest("GET", "/conflict", params=API))
    assert response.status_code == 409
    body = error_of(response)
    assert list(body) == ["odata.metadata", "code", "message", "values"]
    assert body["odata.metadata"] == (
        f"{served.url}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
    )
    assert body["code"] == "PoolExists"
    assert body["message"]["lang"] == "en-US"
    text, rid, stamp = body["message"]["value"].split("\n")
    assert text == "The specified pool already exists."
    assert rid == f"RequestId:{response.headers['request-id']}"
    assert re.fullmatch(r"Time:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", stamp)
    assert body["values"] == [{"key": "PoolId", "value": "p1"}]


def test_unexpected_exception_is_500_internal_error_and_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="batchbox.emulator.protocol.middleware"):
        response = send(served, HttpRequest("GET", "/boom", params=API))
    assert response.status_code == 500
    body = error_of(response)
    assert body["code"] == "InternalError"
    assert SECRET_IN_EXCEPTION not in response.text()
    logged = [r for r in caplog.records if r.exc_info and SECRET_IN_EXCEPTION in str(r.exc_info[1])]
    assert logged, "the traceback was not logged"
    # the server is still alive
    assert client(served).get_pool("p1").id == "p1"


def test_unknown_path_and_wrong_method_get_batch_errors(served: Served) -> None:
    missing = send(served, HttpRequest("GET", "/nosuchthing", params=API))
    assert missing.status_code == 400
    assert error_of(missing)["code"] == "InvalidUri"
    wrong = send(served, HttpRequest("PUT", "/pools/p1", params=API, json={}))
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "UnsupportedHttpVerb"


def test_body_over_the_limit_is_413_by_content_length(served: Served) -> None:
    big = {"blob": "x" * (4 * 1024 * 1024 + 10)}
    response = send(served, HttpRequest("POST", "/echo", params=API, json=big))
    assert response.status_code == 413
    assert error_of(response)["code"] == "RequestBodyTooLarge"


def test_streamed_body_over_the_limit_is_413(served: Served) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    response = httpx.post(f"{served.url}/_agent/v1/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["code"] == "RequestBodyTooLarge"


@pytest.mark.parametrize("body", [b"{not json", b"", "ü".encode("latin-1")])
def test_malformed_json_is_400_invalid_request_body(served: Served, body: bytes) -> None:
    response = httpx.post(f"{served.url}/_agent/v1/echo", content=body)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidRequestBody"


def test_agent_paths_skip_api_version_and_shared_key(served: Served) -> None:
    response = httpx.get(f"{served.url}/_agent/v1/ping")
    assert response.status_code == 200
    assert response.json()["requestId"] == response.headers["request-id"]


def test_bearer_tokens_need_a_trusted_issuer_and_are_verified(
    served: Served, served_bearer: Served, local_issuer: LocalIssuer
) -> None:
    token = local_issuer.issue("https://batch.core.windows.net/").token
    signed = {"Authorization": f"Bearer {token}"}
    refused = httpx.get(f"{served.url}/pools/p1", params=API, headers=signed)
    assert refused.status_code == 403
    assert "--entra-issuer" in refused.json()["values"][0]["value"]
    unchecked = httpx.get(f"{served_bearer.url}/pools/p1", params=API, headers={"Authorization": "Bearer not-a-jwt"})
    assert unchecked.status_code == 403 and unchecked.json()["code"] == "AuthenticationFailed"
    allowed = httpx.get(f"{served_bearer.url}/pools/p1", params=API, headers=signed)
    assert allowed.status_code == 200 and allowed.json()["id"] == "p1"
    # SharedKey still works on the opted-in server, which got its config through the constructor
    assert client(served_bearer).get_pool("p2").id == "p2"


# ----------------------------------------------------------------------------- the verifier, without a server


def sdk15_signed(method: str, url: str, **kwargs: Any) -> HttpRequest:
    request = HttpRequest(method, url, **kwargs)
    BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(ACCOUNT, KEY)).on_request(
        PipelineRequest(request, PipelineContext(None))
    )
    return request


def verify(request: HttpRequest, *, extra: dict[str, str] | None = None, path: str | None = None) -> Any:
    split = httpx.URL(request.url)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers.update(extra or {})
    raw_path = path if path is not None else split.raw_path.decode().partition("?")[0]
    return SharedKeyVerifier(ACCOUNT, KEY).verify(request.method, raw_path, split.query.decode(), headers)


QUERY_URL = "http://h/jobs/j%201/tasks?api-version=2025-06-01&%24filter=state%20eq%20%27it%27%27s%27&timeOut=30"


def test_verifier_accepts_sdk15_signatures_and_transport_content_length() -> None:
    assert verify(sdk15_signed("GET", QUERY_URL)).account == ACCOUNT
    post = sdk15_signed("POST", "http://h/jobs/j/terminate?api-version=2025-06-01")
    assert verify(post, extra={"content-length": "0"}).scheme == "SharedKey"  # requests sends Content-Length: 0
    assert verify(post).scheme == "SharedKey"  # clients that send no Content-Length
    json_post = sdk15_signed("POST", "http://h/pools?api-version=2025-06-01", json={"id": "p"})
    assert verify(json_post, extra={"x-unsigned-proxy-header": "1"}).scheme == "SharedKey"


@pytest.mark.parametrize(
    ("change", "value"),
    [("path", "/jobs/j%202/tasks"), ("ocp-date", "now"), ("if-match", "0x1"), ("query", "")],
)
def test_verifier_rejects_tampering(change: str, value: str) -> None:
    request = sdk15_signed("GET", QUERY_URL)
    with pytest.raises(BatchError) as info:
        if change == "path":
            verify(request, path=value)
        elif change == "ocp-date":
            later = datetime.now(timezone.utc) + timedelta(seconds=61)
            verify(request, extra={"ocp-date": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})
        elif change == "query":
            tampered = HttpRequest("GET", QUERY_URL.replace("timeOut=30", "timeOut=31"), headers=request.headers)
            verify(tampered)
        else:
            verify(request, extra={change: value})
    assert (info.value.status, info.value.code) == (403, "AuthenticationFailed")
    expected = sign_string(base64.b64decode(KEY), "x")
    assert expected not in str(info.value.values) and KEY not in str(info.value.values)


def test_verifier_accepts_the_documented_lower_cased_query_names_and_empty_content_length() -> None:
    date = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    values = {name: "" for name in HEADERS_TO_SIGN}
    string = (
        "POST\n" + "\n".join(values[name] for name in HEADERS_TO_SIGN) + f"\nocp-date:{date}\n"
        f"/{ACCOUNT}/jobs/j/terminate\napi-version:2025-06-01\ntimeout:30"
    )
    signature = sign_string(base64.b64decode(KEY), string)
    headers = {"ocp-date": date, "content-length": "0", "authorization": f"SharedKey {ACCOUNT}:{signature}"}
    principal = SharedKeyVerifier(ACCOUNT, KEY).verify(
        "POST", "/jobs/j/terminate", "api-version=2025-06-01&timeOut=30", headers
    )
    assert principal.account == ACCOUNT


@pytest.mark.parametrize(
    "authorization",
    ["", "SharedKey", f"SharedKey {ACCOUNT}", f"SharedKey :{'A' * 44}", f"Basic {ACCOUNT}:x", "Bearer x"],
)
def test_verifier_rejects_malformed_headers(authorization: str) -> None:
    date = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    with pytest.raises(BatchError) as info:
        SharedKeyVerifier(ACCOUNT, KEY).verify("GET", "/pools", "", {"authorization": authorization, "ocp-date": date})
    assert (info.value.status, info.value.code) == (403, "AuthenticationFailed")


def test_verifier_refuses_a_key_that_is_not_base64() -> None:
    with pytest.raises(ValueError) as info:
        SharedKeyVerifier(ACCOUNT, "not base64!!")
    assert "not base64!!" not in str(info.value)


# ------------------------------------------------------------------------------------------- 14.x msrest SDK

SDK14_PYTHON = Path(os.environ.get("BATCHBOX_SDK14_PYTHON", REPO / ".venv-sdk14" / "bin" / "python"))

SDK14_SCRIPT = r"""
import json, sys
import azure.batch.models as m
from azure.batch import BatchServiceClient
from azure.batch.batch_auth import SharedKeyCredentials
url, account, key, wrong = sys.argv[1:5]
c = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=url)
out = {"pool": c.pool.get("p1").id, "exists": c.pool.exists("p1")}
opts = m.TaskListOptions(filter="state eq 'completed' and startswith(id,'task2')", max_results=50)
out["tasks"] = [t.id for t in c.task.list("job1", task_list_options=opts)]
c.job.delete("job1")
c.job.terminate("job1")
c.pool.add(m.PoolAddParameter(id="p14", vm_size="standard_d2s_v3"))
out["posted"] = True
out["file"] = b"".join(c.file.get_from_task("job-1", "t 1", "wd/a b&c.txt")).decode()
try:
    BatchServiceClient(SharedKeyCredentials(account, wrong), batch_url=url).pool.get("p1")
except m.BatchErrorException as exc:
    out["wrong"] = exc.error.code
print(json.dumps(out))
"""


@pytest.mark.skipif(not SDK14_PYTHON.exists(), reason="needs .venv-sdk14 (make sdk14-venv)")
def test_sdk14_msrest_signing_is_accepted(served: Served) -> None:
    result = subprocess.run(
        [str(SDK14_PYTHON), "-c", SDK14_SCRIPT, served.url, ACCOUNT, KEY, WRONG_KEY],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["pool"] == "p1" and out["exists"] is True
    assert out["tasks"] == [t["id"] for t in TASKS if t["state"] == "completed" and t["id"].startswith("task2")]
    assert out["file"] == "wd/a b&c.txt"
    assert out["posted"] is True
    assert out["wrong"] == "AuthenticationFailed"


# ----------------------------------------------------------------------------------------------------- $filter

DOCS = [
    {"id": "Task-1", "state": "completed", "executionInfo": {"exitCode": 0}, "creationTime": "2024-01-01T00:00:00Z"},
    {"id": "task-2", "state": "completed", "executionInfo": {"exitCode": 3}, "creationTime": "2024-01-02T00:00:00Z"},
    {"id": "other", "state": "active", "creationTime": "2024-01-03T00:00:00.1234567Z"},
    {"id": "it's", "state": "running", "nodeInfo": {"nodeId": "tvmps_1_d"}, "creationTime": "bad"},
]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("state eq 'completed'", ["Task-1", "task-2"]),
        ("state eq 'COMPLETED'", ["Task-1", "task-2"]),
        ("state ne 'completed'", ["other", "it's"]),
        ("executionInfo/exitCode ne 0", ["task-2"]),
        ("executionInfo/exitCode gt 0 or state eq 'active'", ["task-2", "other"]),
        ("executionInfo/exitCode ge 0 and executionInfo/exitCode lt 3", ["Task-1"]),
        ("executionInfo/exitCode le -1", []),
        ("executionInfo/exitCode eq null", ["other", "it's"]),
        ("executionInfo/exitCode ne null", ["Task-1", "task-2"]),
        ("startswith(id, 'task')", ["Task-1", "task-2"]),
        ("startswith(id,'TASK-') eq false", ["other", "it's"]),
        ("not (state eq 'completed' or state eq 'active')", ["it's"]),
        ("id eq 'it''s'", ["it's"]),
        ("nodeInfo/nodeId eq 'TVMPS_1_D'", ["it's"]),
        ("creationTime ge datetime'2024-01-02T00:00:00Z'", ["task-2", "other"]),
        ("creationTime lt datetime'2024-01-03T00:00:00.1234567Z'", ["Task-1", "task-2"]),
        ("(state eq 'completed') and (startswith(id, 'task-2'))", ["task-2"]),
        ("  ", ["Task-1", "task-2", "other", "it's"]),
    ],
)
def test_filter_matches(expression: str, expected: list[str]) -> None:
    predicate = parse_filter(expression, FILTER_PROPERTIES["tasks"])
    assert [doc["id"] for doc in DOCS if predicate(doc)] == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("bogus eq 1", "cannot be used in a filter"),
        ("State eq 'active'", "cannot be used in a filter"),
        ("substringof('a', id)", "not supported"),
        ("endswith(id, 'a')", "not supported"),
        ("state eq", "expected a property or a value"),
        ("state eq 'a' and", "expected a property or a value"),
        ("(state eq 'a'", "expected ')'"),
        ("state = 'a'", "unexpected character"),
        ("state eq 'unterminated", "unexpected character"),
        ("'a' eq 'b'", "does not name a property"),
        ("state eq 'a' 'b'", "unexpected"),
        ("startswith(id, 3)", "string literal"),
        ("startswith('x', 'y')", "must be a property"),
        ("creationTime gt datetime'yesterday'", "invalid datetime"),
        ("state", "comparison operator"),
        ("not " * 100 + "state eq 'a'", "nested too deeply"),
    ],
)
def test_filter_errors_are_400_naming_filter(expression: str, reason: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_filter(expression, FILTER_PROPERTIES["tasks"])
    assert (info.value.status, info.value.code) == (400, "InvalidQueryParameterValue")
    assert info.value.values["QueryParameterName"] == "$filter"
    assert reason in info.value.values["Reason"]


def test_filter_without_whitelist_allows_any_property() -> None:
    predicate = parse_filter("custom/deep eq 2")
    assert predicate({"custom": {"deep": 2}}) and not predicate({"custom": 2})


# -------------------------------------------------------------------------------------------- $select, paging


def test_select_keeps_listed_and_nested_paths() -> None:
    doc = {"id": "t", "state": "active", "executionInfo": {"exitCode": 1, "retryCount": 0}, "url": "u"}
    assert apply_select(doc, "id, executionInfo/exitCode", FILTER_PROPERTIES["tasks"]) == {
        "id": "t",
        "executionInfo": {"exitCode": 1},
    }
    assert apply_select(doc, None, FILTER_PROPERTIES["tasks"]) == doc
    assert apply_select(doc, "nodeInfo", None) == {}


@pytest.mark.parametrize("select", ["id,,state", "bogus", "id,State", "id;state"])
def test_select_errors_are_400(select: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_select(select, FILTER_PROPERTIES["tasks"])
    assert info.value.code == "InvalidQueryParameterValue" and info.value.values["QueryParameterName"] == "$select"


@pytest.mark.parametrize(("value", "expected"), [(None, 1000), ("", 1000), ("1", 1), ("1000", 1000), (" 7 ", 7)])
def test_maxresults(value: str | None, expected: int) -> None:
    assert parse_maxresults(value) == expected


@pytest.mark.parametrize("value", ["0", "1001", "-3", "abc", "1.5"])
def test_invalid_maxresults_is_400(value: str) -> None:
    with pytest.raises(BatchError) as info:
        parse_maxresults(value)
    assert info.value.code == "InvalidQueryParameterValue" and info.value.values["QueryParameterName"] == "maxresults"


def test_paginate_a_list_with_a_filter() -> None:
    predicate = parse_filter("state eq 'completed'")
    items = TASKS[:30]
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page, token = paginate(items, 4, token, predicate=predicate)
        pages += 1
        seen.extend(doc["id"] for doc in page)
        if token is None:
            break
    assert seen == [t["id"] for t in items if t["state"] == "completed"]
    assert pages == 3  # 10 matches in pages of 4: no empty trailing page


def test_paginate_a_list_that_changed_between_pages() -> None:
    items = list(TASKS[:10])
    page, token = paginate(items, 3, None)
    del items[0]  # the list shifts; the page continues after the last id it returned
    rest, _ = paginate(items, 3, token)
    assert [d["id"] for d in page] == ["task0000", "task0001", "task0002"]
    assert [d["id"] for d in rest] == ["task0003", "task0004", "task0005"]


def test_paginate_fetches_lazily() -> None:
    calls: list[tuple[str | None, int]] = []

    def fetch(after: str | None, limit: int) -> list[dict[str, Any]]:
        calls.append((after, limit))
        start = TASK_INDEX[after] + 1 if after else 0
        return TASKS[start : start + limit]

    page, token = paginate(fetch, 50, None)
    assert [d["id"] for d in page] == [t["id"] for t in TASKS[:50]] and token is not None
    assert calls == [(None, 51)]
    page2, _ = paginate(fetch, 50, token)
    assert page2[0]["id"] == "task0050" and calls[-1] == ("task0049", 51)


@pytest.mark.parametrize("token", ["!!!", "e30", base64.urlsafe_b64encode(b'["x", -1]').decode()])
def test_bad_skiptoken_is_400(token: str) -> None:
    with pytest.raises(BatchError) as info:
        paginate(TASKS, 10, token)
    assert info.value.values["QueryParameterName"] == "$skiptoken"


def test_next_link_keeps_the_query_and_replaces_the_token() -> None:
    scope = {
        "type": "http",
        "scheme": "http",
        "method": "GET",
        "path": "/jobs/j 1/tasks",
        "raw_path": b"/jobs/j%201/tasks",
        "query_string": b"api-version=2025-06-01&%24skiptoken=old&maxresults=10&%24filter=state%20eq%20%27a%27",
        "headers": [(b"host", b"localhost:8446")],
    }
    link = next_link(Request(scope), "tok=+/")
    assert link == (
        "http://localhost:8446/jobs/j%201/tasks?api-version=2025-06-01&maxresults=10"
        "&%24filter=state%20eq%20%27a%27&$skiptoken=tok%3D%2B%2F"
    )
    assert next_link(Request(scope), None) is None


# ------------------------------------------------------------------------------------------ server.run and CLI

RUNNER = r"""
import sys
from pathlib import Path
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.protocol import BatchProtocolMiddleware
from batchbox.emulator.server import run

def factory(config):
    app = Starlette(routes=[Route("/_agent/v1/ping", lambda request: JSONResponse({"ok": True}))],
                    middleware=[Middleware(BatchProtocolMiddleware)])
    app.state.config = config
    return app

port, state_dir, key = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
run(EmulatorConfig(port=port, state_dir=state_dir, account_key=key, account_name="runacct"), app_factory=factory)
"""


def _start_runner(tmp_path: Path) -> tuple[subprocess.Popen[str], int, Path]:
    port = free_port()
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(port), str(state_dir), KEY],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "the runner did not start"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_agent/v1/ping", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return proc, port, state_dir


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_serves_until_a_stop_signal_then_exits_0(tmp_path: Path, stop_signal: signal.Signals) -> None:
    proc, port, state_dir = _start_runner(tmp_path)
    try:
        assert (state_dir / "emulator.pid").read_text().strip() == str(proc.pid)
        proc.send_signal(stop_signal)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert f"batchbox emulator listening on http://127.0.0.1:{port} (account runacct)" in stderr
    assert KEY not in stderr
    assert not (state_dir / "emulator.pid").exists()


def test_run_refuses_a_second_emulator_on_the_same_state_dir(tmp_path: Path) -> None:
    proc, _, state_dir = _start_runner(tmp_path)
    try:
        with pytest.raises(RuntimeError, match=f"pid {proc.pid}"):
            run(EmulatorConfig(port=free_port(), state_dir=state_dir), app_factory=lambda config: Starlette())
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_run_refuses_non_loopback_hosts_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        run(EmulatorConfig(host="0.0.0.0", state_dir=tmp_path), app_factory=lambda config: Starlette())
    assert not (tmp_path / "emulator.pid").exists()
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("")


def test_cli_help_and_bad_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    shown = subprocess.run(
        [sys.executable, "-m", "batchbox.emulator", "--help"], capture_output=True, text=True, cwd=REPO, env=env
    )
    assert shown.returncode == 0
    for option in (
        "--host",
        "--port",
        "--state-dir",
        "--node-image",
        "--account-name",
        "--account-key",
        "--entra-issuer",
        "--disable-shared-key",
        "--tls-cert",
        "--tls-key",
        "--ca-file",
        "--instance-label",
        "--log-level",
        "BATCHBOX_EMULATOR_KEY",
    ):
        assert option in shown.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "batchbox.emulator", "--account-key", "sekrit!!not-b64"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert bad.returncode == 2
    assert "--account-key" in bad.stderr and "sekrit" not in bad.stderr + bad.stdout
