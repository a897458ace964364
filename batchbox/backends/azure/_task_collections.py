"""Adding many tasks to a job: ``addtaskcollection`` requests of up to 100 tasks, several in flight.

This does what the SDK's ``BatchClient.create_tasks`` does (chunks of 100, halved while the service answers
RequestBodyTooLarge; tasks answered ``serverError`` sent again; ``TaskExists`` told apart from other refusals)
through the SDK's own ``create_task_collection`` call, so the SDK's pipeline still signs, retries and times out
every request. The difference is in what crosses it: the bodies go out as the REST JSON they already are and the
answers are read as JSON. ``create_tasks`` takes SDK models, encodes them one by one in Python and
deserializes every per-task answer into a model: half of the client's CPU when submitting thousands of tasks
(bench/RESULTS.md, benchmark 2). And where ``create_tasks`` re-sends after server errors without end, a run of
failed requests ends the call here.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

from azure.batch import BatchClient
from azure.core.exceptions import HttpResponseError

from batchbox.backends.azure._batch_errors import ServiceKeepsFailing, batch_error_info, read_error_body

__all__ = ["MAX_TASKS_PER_REQUEST", "CollectionOutcome", "add_task_collections"]

MAX_TASKS_PER_REQUEST = 100
"""The most tasks one ``addtaskcollection`` request may carry (a Batch limit)."""

Json = dict[str, Any]


@dataclass
class CollectionOutcome:
    """What the service answered for each task, keyed by the lower-cased task id (Batch ids are case-blind)."""

    added: set[str] = field(default_factory=set)
    existed: set[str] = field(default_factory=set)
    refused: dict[str, Json] = field(default_factory=dict)
    """Tasks the service refused (other than ``TaskExists``): the REST JSON ``error`` of each answer."""


def add_task_collections(
    client: BatchClient,
    job_id: str,
    bodies: Sequence[Json],
    *,
    threads: int,
    server_error_limit: int,
    backoff: float = 0.5,
    backoff_max: float = 8.0,
) -> CollectionOutcome:
    """Add the task ``bodies`` (REST JSON, unique ids) to ``job_id``, ``threads`` requests in flight.

    Args:
        client: the SDK client (its pipeline's retries already cover each request).
        server_error_limit: how many requests in a row may end in server errors (HTTP 5xx after the pipeline's
            own retries, or answers holding ``serverError`` results) before the call gives up.
        backoff / backoff_max: seconds to wait before re-sending after the n-th such request in a row:
            ``backoff * 2 ** (n - 1)``, at most ``backoff_max``.

    Raises:
        ServiceKeepsFailing: more than ``server_error_limit`` failed requests in a row.
        azure.core.exceptions.AzureError: a request failed as a whole (job missing, authentication, network,
            one task larger than a request may be). No new request starts after the first failure; the tasks
            not named in the outcome may or may not have been added.
    """
    submission = _Submission(client, job_id, bodies, server_error_limit, backoff, backoff_max)
    if threads <= 1:
        submission.work()
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batchbox-add-tasks") as pool:
            for _ in range(threads):
                pool.submit(submission.work)
    return submission.result()


def _json_answer(pipeline_response: Any, streamed: Iterator[bytes], headers: Any) -> Any:
    return json.loads(b"".join(streamed))


class _Submission:
    """The shared state of one ``add_task_collections`` call; every worker thread runs :meth:`work`."""

    def __init__(
        self,
        client: BatchClient,
        job_id: str,
        bodies: Sequence[Json],
        server_error_limit: int,
        backoff: float,
        backoff_max: float,
    ) -> None:
        self._client = client
        self._job_id = job_id
        self._pending: deque[Json] = deque(bodies)
        self._per_request = MAX_TASKS_PER_REQUEST
        self._failed_in_a_row = 0
        self._limit = server_error_limit
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._error: Exception | None = None
        self._outcome = CollectionOutcome()

    def result(self) -> CollectionOutcome:
        if self._error is not None:
            raise self._error
        return self._outcome

    def work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                count = min(self._per_request, len(self._pending))
                chunk = [self._pending.popleft() for _ in range(count)]
            if not chunk:
                return
            try:
                self._send(chunk)
            except Exception as exc:  # raised to the caller by result(), after the other workers stop
                with self._lock:
                    if self._error is None:
                        self._error = exc
                self._stop.set()
                return

    def _send(self, chunk: list[Json]) -> None:
        try:
            # The REST JSON goes through the SDK's JSON encoder unchanged; stream=True hands the answer's bytes
            # to _json_answer instead of deserializing it into models first.
            answer = self._client.create_task_collection(
                self._job_id,
                cast(Any, {"value": chunk}),
                stream=True,
                cls=_json_answer,
                raw_response_hook=read_error_body,
            )
        except HttpResponseError as exc:
            if batch_error_info(exc).code == "RequestBodyTooLarge" and len(chunk) > 1:
                with self._lock:
                    self._per_request = min(self._per_request, len(chunk) // 2)
                    self._pending.extendleft(reversed(chunk))
                return
            if (exc.status_code or 0) >= 500:
                self._failed(chunk, f"HTTP {exc.status_code}")
                return
            raise
        by_id = {body["id"].lower(): body for body in chunk}
        again: list[Json] = []
        with self._lock:
            for result in answer.get("value") or ():
                key = str(result.get("taskId") or "").lower()
                status = str(result.get("status") or "").lower()
                error = result.get("error") if isinstance(result.get("error"), dict) else {}
                if status == "success":
                    self._outcome.added.add(key)
                elif status == "servererror" and key in by_id:
                    again.append(by_id[key])
                elif error.get("code") == "TaskExists":
                    self._outcome.existed.add(key)
                else:
                    self._outcome.refused[key] = error
            if not again:
                self._failed_in_a_row = 0
        if again:
            self._failed(again, f"{len(again)} serverError results")

    def _failed(self, chunk: list[Json], what: str) -> None:
        with self._lock:
            self._failed_in_a_row += 1
            failures = self._failed_in_a_row
        if failures > self._limit:
            raise ServiceKeepsFailing(f"{failures} requests in a row ended in server errors (last: {what})")
        time.sleep(min(self._backoff_max, self._backoff * 2 ** (failures - 1)))
        with self._lock:
            self._pending.extendleft(reversed(chunk))
