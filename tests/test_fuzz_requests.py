"""Property-based fuzzing of the emulator's request parsing: whatever arrives, never a 500 and never a dead process.

One real emulator process serves the module (the module-scoped ``emulator`` fixture). Hypothesis generates random
JSON bodies and mutations of valid bodies for add pool / job / task / task collection, patch, update and resize;
random raw bytes; random query strings (``$filter`` from a small grammar plus noise, ``$select``, ``maxresults``,
``api-version``, ``$skiptoken``); random headers (authorization, dates, conditional headers); random paths and
methods, including the node-agent API. Every request except the auth fuzz is signed correctly, so the parsing
behind authentication is reached. Each example asserts a status below 500 and a living process; each test ends by
checking that the emulator logged no internal error.

Mutations never ask for nodes (positive node targets become 0), so no container is ever started here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.fixtures.emulator import EmulatorProcess
from tests.signing import API_VERSION, AUTH_MODES, SignedClient

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

POOL, JOB, TASK = "fz-pool", "fz-job", "fz-task"
QUERY = f"api-version={API_VERSION}"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
VM = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
}
VALID_BODIES: dict[str, dict[str, Any]] = {
    "pool": {
        "id": "fz-p",
        "vmSize": "standard_d2_v3",
        "virtualMachineConfiguration": VM,
        "targetDedicatedNodes": 0,
        "taskSlotsPerNode": 2,
        "taskSchedulingPolicy": {"nodeFillType": "pack"},
        "resizeTimeout": "PT15M",
        "startTask": {
            "commandLine": "/bin/sh -c 'echo hi'",
            "resourceFiles": [{"httpUrl": "http://127.0.0.1:9/f", "filePath": "f.txt", "fileMode": "0644"}],
            "environmentSettings": [{"name": "A", "value": "1"}],
            "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
            "maxTaskRetryCount": 1,
            "waitForSuccess": True,
        },
        "metadata": [{"name": "m", "value": "v"}],
    },
    "job": {
        "id": "fz-j",
        "poolInfo": {"poolId": POOL},
        "priority": 10,
        "maxParallelTasks": -1,
        "constraints": {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 2},
        "commonEnvironmentSettings": [{"name": "A", "value": "1"}],
        "onAllTasksComplete": "noaction",
        "usesTaskDependencies": True,
        "metadata": [{"name": "m", "value": "v"}],
    },
    "task": {
        "id": "fz-t",
        "displayName": "a task",
        "commandLine": "/bin/sh -c 'echo hi'",
        "resourceFiles": [{"httpUrl": "http://127.0.0.1:9/f", "filePath": "in/f.txt"}],
        "outputFiles": [
            {
                "filePattern": "*.txt",
                "destination": {"container": {"containerUrl": "http://127.0.0.1:9/out", "path": "p"}},
                "uploadOptions": {"uploadCondition": "tasksuccess"},
            }
        ],
        "environmentSettings": [{"name": "A", "value": "1"}],
        "constraints": {"maxWallClockTime": "PT10M", "retentionTime": "P1D", "maxTaskRetryCount": 1},
        "requiredSlots": 1,
        "userIdentity": {"autoUser": {"scope": "task", "elevationLevel": "nonadmin"}},
    },
    "pool-patch": {"startTask": {"commandLine": "/bin/true"}, "metadata": [], "displayName": "d"},
    "job-patch": {"priority": 5, "constraints": {"maxTaskRetryCount": 1}, "onAllTasksComplete": "noaction"},
    "job-put": {"poolInfo": {"poolId": POOL}, "priority": 1, "constraints": {"maxWallClockTime": "PT1H"}},
    "pool-update-properties": {"applicationPackageReferences": [], "metadata": [], "startTask": {"commandLine": "x"}},
    "pool-resize": {"targetDedicatedNodes": 0, "resizeTimeout": "PT10M", "nodeDeallocationOption": "requeue"},
    "job-terminate": {"terminateReason": "because"},
    "task-put": {"constraints": {"maxWallClockTime": "PT5M", "retentionTime": "PT1H", "maxTaskRetryCount": 0}},
}
VALID_BODIES["collection"] = {"value": [VALID_BODIES["task"], {"id": "fz-t2", "commandLine": "/bin/true"}]}
TARGETS = {
    "pool": ("POST", "/pools"),
    "job": ("POST", "/jobs"),
    "task": ("POST", f"/jobs/{JOB}/tasks"),
    "collection": ("POST", f"/jobs/{JOB}/addtaskcollection"),
    "pool-patch": ("PATCH", f"/pools/{POOL}"),
    "job-patch": ("PATCH", f"/jobs/{JOB}"),
    "job-put": ("PUT", f"/jobs/{JOB}"),
    "pool-update-properties": ("POST", f"/pools/{POOL}/updateproperties"),
    "pool-resize": ("POST", f"/pools/{POOL}/resize"),
    "job-terminate": ("POST", f"/jobs/{JOB}X/terminate"),  # a missing job: the body is still parsed first
    "task-put": ("PUT", f"/jobs/{JOB}/tasks/{TASK}"),
}
PROPERTY_NAMES = sorted(
    {name for body in VALID_BODIES.values() for name in body}
    | {"targetLowPriorityNodes", "enableAutoScale", "jobManagerTask", "multiInstanceSettings", "dependsOn",
       "taskIds", "taskIdRanges", "start", "end", "odata.type", "blobPrefix", "storageContainerUrl", "fileMode"}
)  # fmt: skip
_NODE_TARGETS = ("targetDedicatedNodes", "targetLowPriorityNodes")


# ----------------------------------------------------------------------------------------------------- strategies

_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "\u0000", "\ud800", "\U0001f600", "../..", "PT-1S", "P1Y", "PT99999999999999999999S",
                     "1e400", "true", "null", "0770", "99999"]),
    st.integers(min_value=60, max_value=5000).map(lambda length: "x" * length),
)  # fmt: skip
_numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 1.5, 1e308]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _texts)
_keys = st.one_of(st.sampled_from(PROPERTY_NAMES), st.text(max_size=12))
json_values = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any, *, delete: bool = False) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    if delete and not rest:
        del copy[head]
        return copy
    copy[head] = _replace(copy[head], rest, new, delete=delete)
    return copy


@st.composite
def mutated(draw: st.DrawFn, body: dict[str, Any]) -> Any:
    """``body`` after 1-4 random edits: a value replaced (by any JSON, a wrong type, an extreme), a property
    deleted, an unknown property added, a property renamed, or a container wrapped in a list."""
    value: Any = body
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(value))
        path = draw(st.sampled_from(paths))
        operation = draw(st.sampled_from(["replace", "replace", "delete", "add", "rename", "wrap"]))
        target: Any = value
        for part in path:
            target = target[part]
        if operation == "replace":
            value = _replace(value, path, draw(json_values))
        elif operation == "delete" and path:
            value = _replace(value, path, None, delete=True)
        elif operation in ("add", "rename") and isinstance(target, dict):
            new_key = draw(_keys)
            updated = dict(target)
            if operation == "rename" and updated:
                old_key = draw(st.sampled_from(sorted(updated)))
                updated[new_key] = updated.pop(old_key)
            else:
                updated[new_key] = draw(json_values)
            value = _replace(value, path, updated)
        elif operation == "wrap":
            value = _replace(value, path, [target])
    return value


def no_nodes(body: Any) -> Any:
    """The body with any positive node target set to 0 (the fuzzer must never start containers)."""
    if isinstance(body, dict):
        for name in _NODE_TARGETS:
            target = body.get(name)
            if isinstance(target, (int, float)) and not isinstance(target, bool) and target >= 1:
                body = {**body, name: 0}
    return body


_filter_properties = st.sampled_from(
    ["id", "state", "displayName", "vmSize", "allocationState", "executionInfo/exitCode", "executionInfo/result",
     "executionInfo/failureInfo/code", "creationTime", "stateTransitionTime", "poolInfo/poolId", "nodeInfo/nodeId",
     "priority", "requiredSlots", "poolId", "colour", "state/inner", "Id", "executionInfo"]
)  # fmt: skip
_filter_literals = st.one_of(
    st.text(max_size=8).map(lambda text: "'" + text.replace("'", "''") + "'"),
    st.integers(min_value=-(2**40), max_value=2**40).map(str),
    st.sampled_from(["null", "true", "false", "''", "'", "'unterminated", "datetime'2025-01-01T00:00:00Z'",
                     "datetime'garbage'", "1e400", "-0", "1.5", "9" * 400, "guid'x'", "'\u00e9'"]),
)  # fmt: skip
_comparisons = st.one_of(
    st.tuples(_filter_properties, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "in", "has"]), _filter_literals)
    .map(" ".join),
    st.tuples(st.sampled_from(["startswith", "endswith", "substringof", "contains", "tolower", "length"]),
              _filter_properties, _filter_literals).map(lambda t: f"{t[0]}({t[1]},{t[2]})"),
)  # fmt: skip
_filters = st.one_of(
    st.recursive(
        _comparisons,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or", "AND", "xor"]), inner).map(" ".join),
            inner.map(lambda expression: f"({expression})"),
            inner.map(lambda expression: f"not {expression}"),
        ),
        max_leaves=8,
    ),
    st.lists(
        st.one_of(st.sampled_from(["(", ")", "'", "eq", "and", "not", ",", "/", "id", "state", "''"]),
                  st.text(max_size=4)),
        max_size=12,
    ).map(" ".join),
)  # fmt: skip
_query_values = st.one_of(st.text(max_size=30), st.sampled_from(["0", "-1", "1001", "1", "1000", "x", "1e3", ""]))
_api_versions = st.one_of(  # mostly valid, so the rest of the query is parsed too
    st.just(API_VERSION),
    st.just(API_VERSION),
    st.sampled_from(["2024-02-01.19.0", "2018-12-01.8.0", "2099-01-01", "", "latest"]),
    st.text(max_size=16),
)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    params: list[tuple[str, str]] = [("api-version", draw(_api_versions))]
    if draw(st.booleans()):
        params.append(("$filter", draw(_filters)))
    if draw(st.booleans()):
        params.append(("$select", draw(st.one_of(st.lists(_filter_properties, max_size=4).map(",".join),
                                                 st.text(max_size=20)))))  # fmt: skip
    for name in ("maxresults", "$skiptoken", "timeout", "recursive", "$expand"):
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            params.append((name, draw(_query_values)))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        params.append((draw(st.text(min_size=1, max_size=8)), draw(_query_values)))
    params = draw(st.permutations(params))
    return "&".join(f"{quote(name, safe='$')}={quote(value, safe='')}" for name, value in params)


_segments = st.one_of(
    st.sampled_from(["pools", "jobs", "tasks", "nodes", "files", "addtaskcollection", "terminate", "reactivate",
                     "resize", "stopresize", "updateproperties", "nodecounts", "taskcounts", "_agent", "v1",
                     "register", "poll", "events", "..", ".", "", "%2e%2e", "%2F", "%00", "%ff", "stdout.txt",
                     "fz-missing", "FZ-POOL-X", "tvmps_000000000000000000000000_d", "a" * 70]),
    st.text(min_size=1, max_size=10).map(lambda text: quote(text, safe="")),
)  # fmt: skip
_any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)
"""Any code points, lone surrogates and NUL included (sent as JSON escapes)."""
_free_text = {
    "pool": ("displayName", "vmSize"),
    "job": ("displayName",),
    "task": ("displayName", "commandLine"),
}
_methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "MERGE"])
# Printable ASCII without surrounding blanks: what an HTTP client can send at all; and dates in many shapes.
_header_text = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip),
    st.tuples(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["GMT", "-0000", "+0000", "+0130", "-1200", "UTC", "EST", "", "+9999"]),
    ).map(lambda moment_zone: (moment_zone[0].strftime("%a, %d %b %Y %H:%M:%S ") + moment_zone[1]).strip()),
    st.sampled_from(["*", '"0x8D0000000000000"', 'W/"x"', "bytes=0-", "bytes=-5", "bytes=5-2", "0", "-1"]),
)


# ------------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def rest(emulator: EmulatorProcess) -> Iterator[SignedClient]:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as client:
        for path, body in [
            ("/pools", {**VALID_BODIES["pool"], "id": POOL}),
            ("/jobs", {**VALID_BODIES["job"], "id": JOB}),
            (f"/jobs/{JOB}/tasks", {"id": TASK, "commandLine": "/bin/true"}),
        ]:
            response = client.send("POST", path, body=body)
            assert response.status_code == 201, response.text
        yield client


def alive(emulator: EmulatorProcess) -> bool:
    try:
        state = Path(f"/proc/{emulator.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def check(response: httpx.Response, emulator: EmulatorProcess, what: object) -> None:
    code = ""
    if response.status_code >= 400 and response.content and "json" in response.headers.get("content-type", ""):
        code = str(response.json().get("code", ""))
    event(f"{response.status_code} {code}".strip())  # shown by --hypothesis-show-statistics
    assert response.status_code < 500, (what, response.status_code, response.text[:1000])
    assert alive(emulator), what


def no_internal_errors(emulator: EmulatorProcess) -> None:
    logged = [line for line in emulator.log_text().splitlines() if " failed (request-id " in line]
    assert not logged, logged[:5]
    assert alive(emulator)
    assert emulator_answers(emulator)


def emulator_answers(emulator: EmulatorProcess) -> bool:
    with SignedClient(emulator.url, emulator.account_name, emulator.account_key) as client:
        return client.send("GET", "/pools").status_code == 200


# -------------------------------------------------------------------------------------------------------- the tests


@FUZZ
@given(data=st.data())
def test_mutated_valid_bodies(data: st.DataObject, rest: SignedClient, emulator: EmulatorProcess) -> None:
    kind = data.draw(st.sampled_from(sorted(VALID_BODIES)))
    body = no_nodes(data.draw(mutated(VALID_BODIES[kind])))
    method, path = TARGETS[kind]
    check(rest.send(method, path, body=body), emulator, (kind, body))


@FUZZ
@given(
    kind=st.sampled_from(sorted(_free_text)),
    suffix=st.from_regex(r"[A-Za-z0-9_-]{1,50}", fullmatch=True),
    texts=st.lists(_any_text, min_size=4, max_size=4),
)
def test_valid_bodies_with_any_unicode_text(
    kind: str, suffix: str, texts: list[str], rest: SignedClient, emulator: EmulatorProcess
) -> None:
    body = {**VALID_BODIES[kind], "id": f"fzu-{suffix}"}
    for name, text in zip(_free_text[kind], texts, strict=False):
        body[name] = text
    body["metadata" if kind != "task" else "environmentSettings"] = [{"name": texts[2] or "n", "value": texts[3]}]
    method, path = TARGETS[kind]
    check(rest.send(method, path, body=body), emulator, (kind, body))
    if kind == "task":  # what was stored must render again
        check(rest.send("GET", f"/jobs/{JOB}/tasks", query=f"{QUERY}&$filter=startswith(id,'fzu-')"), emulator, body)
    else:
        check(rest.send("GET", f"/{kind}s"), emulator, body)


@FUZZ
@given(kind=st.sampled_from(sorted(TARGETS)), body=json_values.map(no_nodes))
def test_random_json_bodies(kind: str, body: Any, rest: SignedClient, emulator: EmulatorProcess) -> None:
    method, path = TARGETS[kind]
    check(rest.send(method, path, body=body), emulator, (kind, body))


@FUZZ
@given(
    kind=st.sampled_from(sorted(TARGETS)),
    raw=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"{", b'{"id":', b"[" * 5000, b'{"a":' * 3000, b'"\\ud800"', b"1" * 5000, b"\xef\xbb\xbf{}"]),
    ),
    content_type=st.sampled_from(["application/json", "text/plain", "application/xml", ""]),
)
def test_raw_bytes_bodies(
    kind: str, raw: bytes, content_type: str, rest: SignedClient, emulator: EmulatorProcess
) -> None:
    method, path = TARGETS[kind]
    response = rest.send(method, path, raw=raw, headers={"Content-Type": content_type} if content_type else None)
    check(response, emulator, (kind, raw[:200]))


@FUZZ
@given(
    path=st.sampled_from(["/pools", "/jobs", f"/jobs/{JOB}/tasks", "/nodecounts", f"/pools/{POOL}/nodes",
                          f"/jobs/{JOB}/tasks/{TASK}", f"/pools/{POOL}", f"/jobs/{JOB}", f"/jobs/{JOB}/taskcounts",
                          f"/jobs/{JOB}/tasks/{TASK}/files"]),
    query=query_strings(),
)  # fmt: skip
def test_random_query_strings(path: str, query: str, rest: SignedClient, emulator: EmulatorProcess) -> None:
    check(rest.send("GET", path, query=query), emulator, (path, query))


@FUZZ
@given(
    method=_methods,
    segments=st.lists(_segments, min_size=1, max_size=7),
    query=st.one_of(st.just(QUERY), query_strings()),
    body=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), _scalars, max_size=3)),
)
def test_random_paths_and_methods(
    method: str, segments: list[str], query: str, body: Any, rest: SignedClient, emulator: EmulatorProcess
) -> None:
    path = "/" + "/".join(segments)
    check(rest.send(method, path, query=query, body=body), emulator, (method, path, query, body))


@FUZZ
@given(
    auth=st.one_of(st.just("sharedkey"), st.sampled_from(AUTH_MODES)),  # half of them reach the handlers
    headers=st.dictionaries(
        st.sampled_from(["Authorization", "ocp-date", "Date", "If-Match", "If-None-Match", "If-Modified-Since",
                         "If-Unmodified-Since", "ocp-range", "Range", "client-request-id", "return-client-request-id",
                         "Content-Type", "Content-Encoding"]),
        _header_text,
        max_size=4,
    ),
    target=st.sampled_from([("GET", f"/pools/{POOL}"), ("GET", f"/jobs/{JOB}/tasks/{TASK}"), ("HEAD", f"/pools/{POOL}"),
                            ("GET", f"/jobs/{JOB}/tasks/{TASK}/files/stdout.txt"), ("POST", "/pools"),
                            ("POST", "/_agent/v1/nodes/tvmps_000000000000000000000000_d/poll")]),
)  # fmt: skip
def test_random_headers_and_authentication(
    auth: str, headers: dict[str, str], target: tuple[str, str], rest: SignedClient, emulator: EmulatorProcess
) -> None:
    method, path = target
    body = {"id": "fz-hdr"} if method == "POST" else None
    check(rest.send(method, path, body=body, headers=headers, auth=auth), emulator, (auth, headers, target))


def test_no_internal_error_was_logged_and_the_emulator_still_serves(
    rest: SignedClient, emulator: EmulatorProcess
) -> None:
    no_internal_errors(emulator)
    assert rest.get(f"/pools/{POOL}")["id"] == POOL
    assert rest.get(f"/jobs/{JOB}/tasks/{TASK}")["id"] == TASK
    assert json.dumps(rest.get("/pools"))  # every stored document still renders as JSON
