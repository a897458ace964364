"""BatchRetryPolicy with the real SDK against a scripted HTTP server: which answers are sent again, for how long, and
how the calls that create something tell their own lost first attempt from a resource that was there before.

The emulator's fault options (tests/test_faults_*.py) exercise the same paths end to end; here each answer is
scripted exactly, so every branch is reached on purpose.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.core.errors import InvalidRequestError, ResourceExistsError, ServiceBusyError
from batchbox.core.models import JobSpec, PoolSpec, TaskSpec
from tests.fixtures.fake_batch import DROP, Answer, FakeBatch, Recorded, batch_error
from tests.test_azure_compute_mapping import ACCOUNT, KEY, collection_server

pytestmark = pytest.mark.timeout(60)

THROTTLED = batch_error("TooManyRequests", "The request rate is too high.")


def make_compute(fake: FakeBatch, **options: float) -> AzureBatchCompute:
    settings = {"retry_budget": 2.0, "retry_backoff_factor": 0.01, "retry_backoff_max": 0.05, **options}
    return AzureBatchCompute.from_shared_key(fake.url, ACCOUNT, KEY, connection_timeout=5, read_timeout=10, **settings)


@pytest.fixture
def compute(fake: FakeBatch) -> Iterator[AzureBatchCompute]:
    backend = make_compute(fake)
    yield backend
    backend.close()


def scripted(*answers: Answer) -> object:
    """A route giving ``answers`` in turn, then the last one for ever."""
    remaining = list(answers)
    lock = threading.Lock()

    def route(_request: Recorded) -> Answer:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return route


@pytest.mark.parametrize(
    "first",
    [(429, THROTTLED), (502, batch_error("BadGateway", "Bad gateway.")), (408, None), (503, None)],
    ids=["429-without-retry-after", "502", "408", "503"],
)
def test_a_post_is_sent_again_after_answers_azure_core_would_not_retry(
    compute: AzureBatchCompute, fake: FakeBatch, first: Answer
) -> None:
    fake.handle("POST", "/pools", scripted(first, (201, None)))  # type: ignore[arg-type]
    compute.create_pool(PoolSpec(id="p1", dedicated_nodes=0))
    assert len(fake.seen("POST", "/pools")) == 2
    assert compute.retry_stats.retries == 1


def test_retry_after_sets_the_wait(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.handle("POST", "/jobs", scripted((429, THROTTLED, {"Retry-After": "1"}), (201, None)))  # type: ignore[arg-type]
    compute.create_job(JobSpec(id="j1", pool_id="p1"))
    stats = compute.retry_stats
    assert (stats.retries, stats.waited, stats.throttled) == (1, 1.0, 1)
    assert len(fake.seen("POST", "/jobs")) == 2


def test_a_retry_after_beyond_the_budget_ends_the_call_at_once(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    fake.handle("POST", "/pools", lambda _r: (429, THROTTLED, {"Retry-After": "30"}))
    with pytest.raises(ServiceBusyError) as busy:
        compute.create_pool(PoolSpec(id="p1", dedicated_nodes=0))
    assert len(fake.seen("POST", "/pools")) == 1 and compute.retry_stats.retries == 0
    assert "pool 'p1'" in str(busy.value) and "429" in str(busy.value) and "TooManyRequests" in str(busy.value)


def test_throttling_past_the_budget_is_busy_not_an_invalid_request(fake: FakeBatch) -> None:
    fake.on("POST", "/pools", 429, THROTTLED)
    with make_compute(fake, retry_budget=0.5) as compute, pytest.raises(ServiceBusyError) as busy:
        compute.create_pool(PoolSpec(id="p1", dedicated_nodes=0))
    assert not isinstance(busy.value, InvalidRequestError)
    message = str(busy.value)
    assert message.startswith("Batch service is busy:") and "kept answering 429 for pool 'p1'" in message
    assert len(fake.seen("POST", "/pools")) > 2  # sent again and again until half a second had passed
    with make_compute(fake, retry_total=0) as no_retries, pytest.raises(ServiceBusyError):
        no_retries.create_pool(PoolSpec(id="p2", dedicated_nodes=0))


def test_a_create_whose_answer_was_lost_is_not_reported_as_existing(
    compute: AzureBatchCompute, fake: FakeBatch
) -> None:
    exists = batch_error("PoolExists", "The specified pool already exists.")
    fake.handle("POST", "/pools", scripted((201, DROP), (409, exists)))  # type: ignore[arg-type]
    compute.create_pool(PoolSpec(id="p1", dedicated_nodes=0))  # the lost first attempt created it
    assert len(fake.seen("POST", "/pools")) == 2
    with pytest.raises(ResourceExistsError) as existed:  # no retry: the pool was there before
        compute.create_pool(PoolSpec(id="p1", dedicated_nodes=0))
    assert (existed.value.kind, existed.value.name) == ("pool", "p1")

    job_exists = batch_error("JobExists", "The specified job already exists.")
    fake.handle("POST", "/jobs", scripted((201, DROP), (409, job_exists)))  # type: ignore[arg-type]
    compute.create_job(JobSpec(id="j1", pool_id="p1"))
    assert len(fake.seen("POST", "/jobs")) == 2


def test_a_resize_sent_again_that_finds_the_pool_resizing_to_its_target_is_done(
    compute: AzureBatchCompute, fake: FakeBatch
) -> None:
    pool = {"id": "p1", "state": "active", "allocationState": "resizing", "targetDedicatedNodes": 3}
    fake.on("GET", "/pools/p1", 200, pool)
    resizing = batch_error("PoolBeingResized", "The specified pool is being resized.")
    fake.handle("POST", "/pools/p1/resize", scripted((202, DROP), (409, resizing)))  # type: ignore[arg-type]
    compute.resize_pool("p1", 3)
    assert len(fake.seen("POST", "/pools/p1/resize")) == 2
    with pytest.raises(InvalidRequestError, match="PoolBeingResized"):  # resizing to another target: refused
        compute.resize_pool("p1", 5)


def test_tasks_whose_answer_was_lost_count_as_added_not_as_left_by_an_earlier_run(
    compute: AzureBatchCompute, fake: FakeBatch
) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added = fake.routes[("POST", "/jobs/j/addtaskcollection")]
    calls = iter(range(1000))

    def lossy(request: Recorded) -> Answer:
        status, body = added(request)  # type: ignore[misc]
        return (status, DROP) if next(calls) == 0 else (status, body)

    fake.handle("POST", "/jobs/j/addtaskcollection", lossy)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(5)])
    assert result.added == tuple(f"t{i}" for i in range(5)) and result.already_existed == ()
    assert len(fake.seen("POST", "/jobs/j/addtaskcollection")) == 2


def test_any_413_splits_the_chunk(compute: AzureBatchCompute, fake: FakeBatch) -> None:
    existing: set[str] = set()
    collection_server(fake, existing)
    added = fake.routes[("POST", "/jobs/j/addtaskcollection")]

    def limited(request: Recorded) -> Answer:
        if len(request.json()["value"]) > 30:
            return 413, b"request entity too large"  # a front end's answer: no Batch error body
        return added(request)

    fake.handle("POST", "/jobs/j/addtaskcollection", limited)
    result = compute.add_tasks("j", [TaskSpec(id=f"t{i}", command_line="true") for i in range(100)])
    assert len(result.added) == 100 and existing == {f"t{i}" for i in range(100)}
