"""The one retry policy of batchbox's Batch calls: a time budget per request, ``Retry-After`` honoured, POST included.

azure-core's own :class:`~azure.core.pipeline.policies.RetryPolicy` sends a POST or PATCH again only after 500,
503 or 504, or when the answer carries ``Retry-After``: not after a 429 without it, a 502, or a lost connection.
Every Batch call batchbox makes is safe to send again by design, so :class:`BatchRetryPolicy` retries every
method:

- ``addtaskcollection``: a task the first attempt added comes back as ``TaskExists`` (``_task_collections``);
- create pool / job: ``PoolExists`` / ``JobExists`` in answer to a request sent again is our own first attempt
  (:class:`AttemptLog` tells);
- resize: ``PoolBeingResized`` in answer to a request sent again, likewise;
- terminate / delete: their "already" codes are not errors; GET, PUT, PATCH are idempotent.

It is built on azure-core's policy (its pipeline position, Retry-After parsing, body rewinding, history) and
changes three things: the methods retried, a time budget instead of counts (a request is not sent again when the
wait before it would end past ``budget`` seconds after its first attempt), and a little jitter on the backoff so
that concurrent requests throttled together do not come back together. A connection that cannot be made at all
(refused, unknown host) is tried ``retry_connect`` more times only: that is not throttling.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy

__all__ = ["RETRIED", "AttemptLog", "BatchRetryPolicy", "RetryStats"]

log = logging.getLogger(__name__)

RETRIED = "batchbox_retried"
"""Pipeline context key set once a request has been sent again (read by :class:`AttemptLog`)."""

_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH"})
_UNLIMITED = 1_000_000


@dataclass
class RetryStats:
    """How much a policy retried so far (all threads): requests sent again, and seconds spent waiting first."""

    retries: int = 0
    waited: float = 0.0
    throttled: int = 0
    """Answers 429 or 503 among those that were retried."""


class BatchRetryPolicy(RetryPolicy[Any, Any]):
    """azure-core's retry policy with a time budget, every method retried, and jittered backoff.

    Args:
        budget: seconds after a request's first attempt past which it is not sent again.
        retry_total: an upper bound on retries per request as well (None: the budget alone; 0: no retries).
        retry_connect: retries of a request whose connection could not be made at all.
        backoff_factor: the n-th retry (n >= 2) waits about ``backoff_factor * 2 ** (n - 1)`` seconds; the first
            is immediate, as in azure-core. A ``Retry-After`` header replaces the backoff.
        backoff_max: the longest backoff (a ``Retry-After`` may ask for longer, within the budget).
        jitter: the backoff is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
    """

    def __init__(
        self,
        *,
        budget: float = 60.0,
        retry_total: int | None = None,
        retry_connect: int = 3,
        backoff_factor: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.2,
    ) -> None:
        total = _UNLIMITED if retry_total is None else retry_total
        super().__init__(
            retry_total=total,
            retry_connect=min(total, retry_connect),
            retry_read=total,
            retry_status=total,
            retry_backoff_factor=backoff_factor,
            retry_backoff_max=backoff_max,
            retry_on_status_codes=sorted(_STATUSES),
        )
        self._retry_on_status_codes = set(_STATUSES)
        self._method_whitelist = _METHODS
        self.budget = budget
        self.jitter = jitter
        self._stats = RetryStats()
        self._stats_lock = threading.Lock()

    @property
    def stats(self) -> RetryStats:
        """A copy of the counters so far."""
        with self._stats_lock:
            return RetryStats(self._stats.retries, self._stats.waited, self._stats.throttled)

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = super().configure_retries(options)
        settings["deadline"] = time.monotonic() + options.pop("retry_budget", self.budget)
        return settings

    def _is_method_retryable(self, settings: dict[str, Any], request: Any, response: Any = None) -> bool:
        return request.method.upper() in settings["methods"]

    def increment(
        self,
        settings: dict[str, Any],
        response: PipelineRequest[Any] | PipelineResponse[Any, Any] | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super().increment(settings, response=response, error=error):
            return False
        status: int | None = None
        wait: float | None = None
        if isinstance(response, PipelineResponse):
            status = response.http_response.status_code
            wait = self.get_retry_after(response)
        if wait is None:
            wait = self.get_backoff_time(settings) * random.uniform(1 - self.jitter, 1 + self.jitter)
        if time.monotonic() + wait > settings["deadline"]:
            log.debug("not retrying: the next attempt would start after the retry budget of %.0f s", self.budget)
            return False
        settings["next_wait"] = wait
        if response is not None:
            response.context[RETRIED] = True
        with self._stats_lock:
            self._stats.retries += 1
            self._stats.waited += wait
            self._stats.throttled += status in (429, 503)
        what = f"HTTP {status}" if status is not None else type(error).__name__
        log.debug("Batch request answered %s; sending it again in %.2f s", what, wait)
        return True

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        wait = settings.pop("next_wait", None)
        if wait is None:
            super().sleep(settings, transport, response)
        elif wait > 0:
            transport.sleep(wait)


class AttemptLog:
    """A ``raw_response_hook`` that remembers whether the answer came to a request sent more than once.

    Args:
        then: another hook to call with each answer (e.g. one reading an error body).
    """

    def __init__(self, then: Any = None) -> None:
        self.retried = False
        self._then = then

    def __call__(self, pipeline_response: PipelineResponse[Any, Any]) -> None:
        self.retried = bool(pipeline_response.context.get(RETRIED))
        if self._then is not None:
            self._then(pipeline_response)
