"""Adding many tasks to a job: ``addtaskcollection`` requests of up to 100 tasks, several in flight.

This does what the SDK's ``BatchClient.create_tasks`` does (chunks of 100, halved while the service answers
413; tasks answered ``serverError`` sent again; ``TaskExists`` told apart from other refusals) through the SDK's
own ``create_task_collection`` call, so the SDK's pipeline still signs, retries and times out every request. The
difference is in what crosses it: the bodies go out as the REST JSON they already are and the answers are read
as JSON. ``create_tasks`` takes SDK models, encodes them one by one in Python and deserializes every per-task
answer into a model: half of the client's CPU when submitting thousands of tasks (bench/RESULTS.md, benchmark 2).

Two layers send things again, with one time budget:

- the pipeline's :class:`~batchbox.backends.azure._retry.BatchRetryPolicy` sends a request again after 429,
  5xx or a lost connection (``Retry-After`` honoured), until the budget of that request is spent;
- here, tasks answered ``serverError``, tasks missing from an answer, and whole chunks whose answer was lost
  while it was read, are sent again after a backoff, until ``budget`` seconds have passed since each task's
  first such failure. Each task keeps its own clock: no count is shared between the worker threads.

Sending tasks again is safe: a task the service already holds comes back ``TaskExists``.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from azure.batch import BatchClient
from azure.core.exceptions import AzureError, HttpResponseError

from batchbox.backends.azure._batch_errors import ServiceKeepsFailing, read_error_body
from batchbox.backends.azure._retry import AttemptLog

__all__ = ["MAX_TASKS_PER_REQUEST", "CollectionOutcome", "add_task_collections"]

MAX_TASKS_PER_REQUEST = 100
"""The most tasks one ``addtaskcollection`` request may carry (a Batch limit)."""

Json = dict[str, Any]


@dataclass
class CollectionOutcome:
    """What the service answered for each task, keyed by the lower-cased task id (Batch ids are case-blind)."""

    added: set[str] = field(default_factory=set)
    """Tasks the service added; ``TaskExists`` counts here too for a task sent before in a request whose answer was
    lost (sent again by the pipeline, or here): that attempt most likely added it."""
    existed: set[str] = field(default_factory=set)
    refused: dict[str, Json] = field(default_factory=dict)
    """Tasks the service refused (other than ``TaskExists``): the REST JSON ``error`` of each answer."""


def add_task_collections(
    client: BatchClient,
    job_id: str,
    bodies: Sequence[Json],
    *,
    threads: int,
    budget: float,
    backoff: float = 0.5,
    backoff_max: float = 8.0,
) -> CollectionOutcome:
    """Add the task ``bodies`` (REST JSON, unique ids) to ``job_id``, ``threads`` requests in flight.

    Args:
        client: the SDK client (its pipeline's retry policy already covers each request).
        budget: seconds a task may keep failing in a way worth another try (``serverError``, no answer, an
            answer lost while read) before the call gives up.
        backoff / backoff_max: seconds to wait before sending again after the n-th such failure of the same
            tasks: about ``backoff * 2 ** (n - 1)``, at most ``backoff_max``.

    Raises:
        ServiceKeepsFailing: tasks kept failing for longer than ``budget``.
        azure.core.exceptions.AzureError: a request failed as a whole once the pipeline stopped retrying it (job
            missing, authentication, throttled or failing past the budget, one task larger than a request may
            be). No new request starts after the first failure; the tasks not named in the outcome may or may
            not have been added.
    """
    submission = _Submission(client, job_id, bodies, budget, backoff, backoff_max)
    try:
        if threads <= 1:
            submission.work()
        else:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batchbox-add-tasks") as pool:
                for _ in range(threads):
                    pool.submit(submission.work)
    except BaseException:  # e.g. Ctrl-C while waiting: let the workers stop after the request they are in
        submission.stop()
        raise
    return submission.result()


class _AnswerLost(Exception):
    """The service's answer broke off, or was not the JSON expected, while it was read (after the pipeline)."""


def _json_answer(pipeline_response: Any, streamed: Iterator[bytes], headers: Any) -> list[Json]:
    try:
        answer = json.loads(b"".join(streamed))
    except (AzureError, ValueError) as exc:  # a connection reset or a truncated body while streaming
        raise _AnswerLost(type(exc).__name__) from exc
    results = answer.get("value") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise _AnswerLost("the addtaskcollection answer holds no list of task results")
    return [result for result in results if isinstance(result, dict)]


class _Submission:
    """The shared state of one ``add_task_collections`` call; every worker thread runs :meth:`work`.

    A worker takes the next chunk from ``pending``; one that finds it empty while other requests are in flight
    waits, since a failed chunk may come back to it.
    """

    def __init__(
        self,
        client: BatchClient,
        job_id: str,
        bodies: Sequence[Json],
        budget: float,
        backoff: float,
        backoff_max: float,
    ) -> None:
        self._client = client
        self._job_id = job_id
        self._pending: deque[Json] = deque(bodies)
        self._in_flight = 0
        self._per_request = MAX_TASKS_PER_REQUEST
        self._budget = budget
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._first_failure: dict[str, float] = {}  # task id -> when it first failed in a way worth a retry
        self._failures: dict[str, int] = {}  # task id -> how many times it did
        self._maybe_added: set[str] = set()  # task ids sent in a request whose answer about them never came
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._outcome = CollectionOutcome()

    def result(self) -> CollectionOutcome:
        if self._error is not None:
            raise self._error
        return self._outcome

    def stop(self) -> None:
        with self._changed:
            self._stop.set()
            self._changed.notify_all()

    def work(self) -> None:
        while True:
            with self._changed:
                while not self._pending and self._in_flight and not self._stop.is_set():
                    self._changed.wait()
                if self._stop.is_set() or not self._pending:
                    return
                count = min(self._per_request, len(self._pending))
                chunk = [self._pending.popleft() for _ in range(count)]
                self._in_flight += 1
            try:
                self._send(chunk)
            except Exception as exc:  # raised to the caller by result(), after the other workers stop
                with self._changed:
                    if self._error is None:
                        self._error = exc
                self.stop()
            finally:
                with self._changed:
                    self._in_flight -= 1
                    self._changed.notify_all()

    def _send(self, chunk: list[Json]) -> None:
        attempts = AttemptLog(then=read_error_body)
        try:
            # The REST JSON goes through the SDK's JSON encoder unchanged; stream=True hands the answer's bytes
            # to _json_answer instead of deserializing it into models first.
            answer = self._client.create_task_collection(
                self._job_id,
                cast(Any, {"value": chunk}),
                stream=True,
                cls=_json_answer,
                raw_response_hook=attempts,
            )
            results = cast("list[Json]", answer)
        except HttpResponseError as exc:
            if exc.status_code == 413 and len(chunk) > 1:  # any 413, whatever its code (or none)
                with self._changed:
                    self._per_request = min(self._per_request, len(chunk) // 2)
                    self._pending.extendleft(reversed(chunk))
                return
            raise
        except _AnswerLost as exc:
            with self._changed:
                self._maybe_added.update(body["id"].lower() for body in chunk)
            self._failed(chunk, f"the answer was lost while read ({exc})")
            return
        self._record(chunk, results, retried=attempts.retried)

    def _record(self, chunk: list[Json], results: list[Json], *, retried: bool) -> None:
        unanswered = {body["id"].lower(): body for body in chunk}
        again: list[Json] = []
        with self._changed:
            for result in results:
                key = str(result.get("taskId") or "").lower()
                body = unanswered.pop(key, None)
                outcome = str(result.get("status") or "").lower()
                raw_error = result.get("error")
                error: Json = raw_error if isinstance(raw_error, dict) else {}
                if outcome == "servererror" and body is not None:
                    again.append(body)
                elif outcome == "success":
                    self._outcome.added.add(key)
                elif error.get("code") == "TaskExists":
                    ours = retried or key in self._maybe_added  # an attempt whose answer was lost added it
                    (self._outcome.added if ours else self._outcome.existed).add(key)
                else:
                    self._outcome.refused[key] = error
            again.extend(unanswered.values())  # no answer for a task: send it again
            self._maybe_added.update(unanswered)
        if again:
            self._failed(again, f"{len(again)} task(s) answered serverError or not at all")

    def _failed(self, chunk: list[Json], what: str) -> None:
        now = time.monotonic()
        with self._changed:
            keys = [body["id"].lower() for body in chunk]
            since = min(self._first_failure.setdefault(key, now) for key in keys)
            failures = max(self._failures.get(key, 0) for key in keys) + 1
            for key in keys:
                self._failures[key] = failures
        if now - since > self._budget:
            raise ServiceKeepsFailing(f"{len(chunk)} task(s) kept failing for {now - since:.0f} s; last: {what}")
        delay = min(self._backoff_max, self._backoff * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
        if self._stop.wait(delay):
            return  # the call is ending: another request failed for good
        with self._changed:
            self._pending.extendleft(reversed(chunk))
