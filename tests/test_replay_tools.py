"""The pieces of the recorded-exchange replay (``tests/replay``), on small made-up inputs: reading cassettes,
translating requests, comparing answers and judging them against a baseline. No emulator, no recordings needed."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest

from tests.replay.baseline import load_baseline
from tests.replay.cassettes import Exchange, load_cassettes
from tests.replay.compare import differences, observe, property_paths
from tests.replay.runner import Outcome
from tests.replay.translate import Translation, cloud_service_standin, posix_command_line, rewrite_command_lines


@pytest.mark.parametrize(
    ("recorded", "argv"),
    [
        ("cmd /c echo test", ["/bin/sh", "-c", "echo test"]),
        ("cmd /c dir /s", ["/bin/sh", "-c", "ls -R"]),
        ("cmd /c set AZ_BATCH_TASK_ID", ["/bin/sh", "-c", "env | grep '^AZ_BATCH_TASK_ID'"]),
        ("ping 127.0.0.1 -n 30", ["/bin/sh", "-c", "sleep 30"]),
        ("hostname", ["hostname"]),
    ],
)
def test_windows_command_lines_run_as_posix_shell(recorded: str, argv: list[str]) -> None:
    assert shlex.split(posix_command_line(recorded)) == argv


def test_every_command_line_of_a_body_is_translated() -> None:
    body = {"startTask": {"commandLine": "cmd /c echo hi"}, "value": [{"commandLine": "cmd /c dir /s", "id": "a"}]}
    rewritten = rewrite_command_lines(body)
    assert rewritten["startTask"]["commandLine"] == "/bin/sh -c 'echo hi'"
    assert rewritten["value"][0] == {"commandLine": "/bin/sh -c 'ls -R'", "id": "a"}
    assert body["startTask"]["commandLine"] == "cmd /c echo hi", "the recorded body is left alone"


def test_a_cloud_service_pool_gets_a_linux_standin() -> None:
    standin = cloud_service_standin({"id": "p", "vmSize": "small", "cloudServiceConfiguration": {"osFamily": "4"}})
    assert standin is not None
    assert "cloudServiceConfiguration" not in standin
    assert standin["virtualMachineConfiguration"]["nodeAgentSKUId"].startswith("batch.node.ubuntu")
    assert cloud_service_standin({"id": "p", "virtualMachineConfiguration": {}}) is None


def test_node_ids_and_conditional_dates_are_mapped() -> None:
    translation = Translation()
    recorded = {"value": [{"id": "tvmps_aaa_d"}, {"id": "tvmps_bbb_d"}]}
    translation.learn_nodes(recorded, {"value": [{"id": "tvmps_111_d"}, {"id": "tvmps_222_d"}]})
    assert translation.path("/pools/p/nodes/tvmps_bbb_d/files/x") == "/pools/p/nodes/tvmps_222_d/files/x"
    translation.learn_date("Thu, 18 Apr 2024 19:12:27 GMT", "Mon, 01 Jan 2029 10:00:00 GMT")
    headers = translation.headers({"if-unmodified-since": "Thu, 18 Apr 2024 19:12:27 GMT", "accept": "x"})
    assert headers == {"if-unmodified-since": "Mon, 01 Jan 2029 10:00:00 GMT", "accept": "x"}


def test_cassettes_keep_only_the_batch_data_plane(tmp_path: Path) -> None:
    (tmp_path / "sample.yaml").write_text(
        textwrap.dedent(
            """\
            interactions:
            - request: {method: PUT, uri: 'https://management.azure.com/x', headers: {}, body: null}
              response: {status: {code: 200}, headers: {}, body: {string: ''}}
            - request:
                method: post
                uri: 'https://acct.region.batch.azure.com/pools?api-version=2024-02-01.19.0'
                headers: {Content-Type: [application/json]}
                body: '{"id": "p"}'
              response:
                status: {code: 201}
                headers: {DataServiceVersion: ['3.0']}
                body: {string: ''}
            """
        )
    )
    (cassette,) = load_cassettes(tmp_path)
    (exchange,) = cassette.exchanges
    assert (exchange.key, exchange.label, exchange.query) == ("sample:1", "POST /pools", "api-version=2024-02-01.19.0")
    assert exchange.headers == {"content-type": "application/json"}
    assert exchange.request_json() == {"id": "p"}
    assert exchange.response_headers == {"dataserviceversion": "3.0"}


def test_property_paths_pool_list_items() -> None:
    paths = property_paths({"a": 1, "b": {"c": [{"d": 1}, {"e": 2}]}})
    assert paths == {"a", "b", "b.c", "b.c[].d", "b.c[].e"}


def test_differences_are_atomic_and_honour_local_differences() -> None:
    recorded = observe(
        200,
        {"dataserviceversion": "3.0", "etag": "x"},
        {"odata.metadata": "u/$metadata#pools/@Element", "id": "p", "tags": {"a": "b"}, "endpoint": {"ip": "1"}},
    )
    replayed = observe(200, {"etag": "y"}, {"odata.metadata": "u/$metadata#pools/@Element", "id": "p", "url": "u"})
    assert differences(recorded, replayed, ignore_paths=["endpoint*"]) == [
        "missing property: tags",
        "missing property: tags.a",
        "extra property: url",
        "missing header: dataserviceversion",
    ]
    failed = observe(404, {}, {"code": "PoolNotFound", "message": {"value": "..."}})
    assert differences(recorded, failed) == ["status: recorded 200, emulator 404 PoolNotFound"]


def test_an_empty_list_answer_is_one_difference() -> None:
    recorded = observe(200, {}, {"odata.metadata": "u#jobs", "value": [{"id": "a", "state": "active"}]})
    replayed = observe(200, {}, {"odata.metadata": "u#jobs", "value": []})
    assert differences(recorded, replayed) == ["value: recorded 1 item(s), emulator none"]


def test_standin_pools_leave_their_configuration_out() -> None:
    recorded = {"id": "p", "cloudServiceConfiguration": {"osFamily": "4"}}
    replayed = {"id": "p", "virtualMachineConfiguration": {"nodeAgentSKUId": "x"}}
    standins = frozenset({"p"})
    assert (
        differences(
            observe(200, {}, recorded, standin_pools=standins, entity_pool="p"),
            observe(200, {}, replayed, standin_pools=standins, entity_pool="p"),
        )
        == []
    )
    listed = observe(200, {}, {"value": [recorded]}, standin_pools=standins)
    assert differences(listed, observe(200, {}, {"value": [replayed]}, standin_pools=standins)) == []
    assert differences(observe(200, {}, recorded), observe(200, {}, replayed)), "only stand-ins are exempt"


def _outcome(key_index: int, recorded_status: int, replayed: tuple[int, str | None], found: list[str]) -> Outcome:
    exchange = Exchange("c", key_index, "GET", "/x", "", {}, None, recorded_status, {}, "")
    status, code = replayed
    body = {"code": code} if code else None
    return Outcome(exchange, observe(recorded_status, {}, None), observe(status, {}, body), tuple(found), ())


def test_the_baseline_judges_every_way_an_exchange_can_stand(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            local_differences:
              - {paths: ["x.*"], reason: "local"}
            retired:
              "c:1": {expect: "400 InvalidPropertyValue", reason: "retired feature"}
            differs:
              "c:2": {reason: "pending", differences: ["status: recorded 200, emulator 400 InvalidUri"]}
            """
        )
    )
    baseline = load_baseline(path)
    assert baseline.ignore_paths == ("x.*",)
    status_line = ["status: recorded 200, emulator 400 InvalidUri"]
    assert baseline.verdict(_outcome(1, 201, (400, "InvalidPropertyValue"), ["status: ..."])).kind == "retired"
    wrong = baseline.verdict(_outcome(1, 201, (201, None), []))
    assert wrong.problem is not None and "must answer 400 InvalidPropertyValue" in wrong.problem
    assert baseline.verdict(_outcome(2, 200, (400, "InvalidUri"), status_line)).kind == "listed"
    fixed = baseline.verdict(_outcome(2, 200, (200, None), []))
    assert fixed.problem is not None and "remove it from the baseline" in fixed.problem
    changed = baseline.verdict(_outcome(2, 200, (200, None), ["missing property: a"]))
    assert changed.problem is not None and "new: missing property: a" in changed.problem
    assert "gone (remove from the baseline)" in changed.problem
    assert baseline.verdict(_outcome(3, 200, (200, None), [])).kind == "match"
    regression = baseline.verdict(_outcome(3, 200, (500, "InternalError"), ["status: x"]))
    assert regression.problem is not None and "differs from the recording" in regression.problem
    assert baseline.stale_keys([_outcome(1, 201, (400, None), [])]) == ["c:2"]


def test_a_baseline_entry_needs_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "baseline.yaml"
    path.write_text('differs:\n  "c:2": {differences: ["x"]}\n')
    with pytest.raises(ValueError, match="reason"):
        load_baseline(path)
