"""The run history next to the store's documents, and the store's filtered task pages (a real SQLite file)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from batchbox.emulator.run_history import epoch_seconds, run_from_doc
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "state.db", Sealer(DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME))
    opened.insert_job({"id": "Job1", "state": "active", "poolInfo": {"poolId": "p"}})
    try:
        yield opened
    finally:
        opened.close()


def _running(task_id: str, node: str, start: str, retries: int = 0) -> dict[str, object]:
    return {
        "id": task_id,
        "state": "running",
        "nodeInfo": {"nodeId": node},
        "executionInfo": {"startTime": start, "retryCount": retries, "requeueCount": 0},
    }


def test_batch_times_with_seven_fractional_digits_become_epoch_seconds() -> None:
    expected = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc).timestamp()
    assert epoch_seconds("2026-01-02T03:04:05.1234567Z") == pytest.approx(expected)
    assert epoch_seconds("2026-01-02T03:04:05Z") == pytest.approx(expected - 0.123456)
    assert epoch_seconds("yesterday") is None and epoch_seconds(None) is None


def test_runs_are_listed_in_the_order_they_ended_and_after_a_cursor(store: Store) -> None:
    first = run_from_doc(
        _running("T1", "n1", "2026-01-01T00:00:00.0000000Z"), "retried", end="2026-01-01T00:00:01Z", exit_code=1
    )
    store.runs.record("job1", first)
    store.runs.record(
        "JOB1",
        run_from_doc(
            _running("t1", "n2", "2026-01-01T00:00:02Z", retries=1),
            "succeeded",
            end="2026-01-01T00:00:03Z",
            exit_code=0,
        ),
    )
    store.runs.record(
        "job1", run_from_doc(_running("t2", "n1", "2026-01-01T00:00:00Z"), "requeued", end="2026-01-01T00:00:04Z")
    )
    runs = store.runs.list("Job1")
    assert [(r.task_id, r.node_id, r.outcome, r.exit_code, r.retry_count) for r in runs] == [
        ("T1", "n1", "retried", 1, 0),
        ("t1", "n2", "succeeded", 0, 1),
        ("t2", "n1", "requeued", None, 0),
    ]
    assert runs[0].end - runs[0].start == pytest.approx(1.0)
    assert [r.outcome for r in store.runs.list("job1", task_id="T1")] == ["retried", "succeeded"]
    assert [r.task_id for r in store.runs.list("job1", after_id=runs[1].run_id)] == ["t2"]
    with pytest.raises(ValueError):
        store.runs.record("job1", run_from_doc(_running("t3", "n1", "2026-01-01T00:00:00Z"), "running", end=None))


def test_deleting_a_task_or_its_job_deletes_its_runs(store: Store) -> None:
    store.insert_tasks("job1", [{"id": "a", "state": "active"}, {"id": "b", "state": "active"}])
    for task in ("a", "b"):
        store.runs.record(
            "job1", run_from_doc(_running(task, "n", "2026-01-01T00:00:00Z"), "failed", end="2026-01-01T00:00:01Z")
        )
    store.delete_task("job1", "A")
    assert [r.task_id for r in store.runs.list("job1")] == ["b"]
    store.delete_job("job1")
    assert store.runs.list("job1") == []


def test_task_pages_filter_by_state_result_and_id_prefix(store: Store) -> None:
    docs = [{"id": f"Task{i:02d}", "state": "active"} for i in range(12)] + [{"id": "other", "state": "active"}]
    store.insert_tasks("job1", docs)
    done = store.get_task("job1", "task03")
    assert done is not None
    done.update(state="completed", executionInfo={"result": "failure", "exitCode": 2})
    store.update_task("job1", done)
    total, page = store.find_tasks("job1", id_prefix="task", offset=10, limit=5)
    assert total == 12 and [d["id"] for d in page] == ["Task10", "Task11"]
    total, page = store.find_tasks("job1", states=["completed"], result="failure")
    assert total == 1 and page[0]["id"] == "Task03"
    assert store.find_tasks("job1", states=["completed"], result="success") == (0, [])
    assert store.find_tasks("job1", id_prefix="task1")[0] == 2
    assert store.find_tasks("job1", id_prefix="%")[0] == 0
