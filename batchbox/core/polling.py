"""Waiting for a state by polling: the one loop every wait of batchbox runs.

Polls start :data:`FIRST_POLL_DELAY` apart and the delay doubles up to the caller's ``poll_interval``, so short
waits end promptly and long ones cost no more requests than polling at ``poll_interval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from batchbox.core.errors import ResourceNotFoundError, WaitTimeoutError

__all__ = ["FIRST_POLL_DELAY", "poll_delays", "poll_until", "unless_being_deleted", "wait_until_gone"]

FIRST_POLL_DELAY = 0.1
"""Seconds before the second poll of a wait; the delay then doubles up to the caller's ``poll_interval``."""

_T = TypeVar("_T")


def poll_delays(poll_interval: float) -> Iterator[float]:
    """The sleeps between polls: :data:`FIRST_POLL_DELAY` (or less), doubling up to ``poll_interval``."""
    delay = min(FIRST_POLL_DELAY, poll_interval)
    while True:
        yield delay
        delay = min(delay * 2, poll_interval)


def poll_until(
    probe: Callable[[], _T],
    done: Callable[[_T], bool],
    *,
    timeout: float | None,
    poll_interval: float,
    timeout_message: Callable[[_T], str],
) -> _T:
    """Call ``probe`` until ``done`` accepts what it returned, and return that.

    Args:
        probe: reads the current state (one request); its errors propagate.
        done: True when the state is reached; it may raise to end the wait early (a state that cannot be reached).
        timeout: seconds before giving up, counted from the first poll; None waits for ever.
        poll_interval: the longest sleep between two polls.
        timeout_message: builds the error message from the last value seen.

    Raises:
        WaitTimeoutError: ``timeout`` passed and ``done`` still refuses the last value.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delays = poll_delays(poll_interval)
    while True:
        value = probe()
        if done(value):
            return value
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeoutError(timeout_message(value))
        time.sleep(next(delays))


def wait_until_gone(
    kind: str, name: str, read_state: Callable[[], object], *, timeout: float, poll_interval: float
) -> None:
    """Poll ``read_state`` until it raises :class:`ResourceNotFoundError` (Batch deletes asynchronously).

    Raises:
        WaitTimeoutError: the resource still exists after ``timeout`` seconds (the message names its last state).
    """
    gone = object()

    def probe() -> object:
        try:
            return read_state()
        except ResourceNotFoundError:
            return gone

    poll_until(
        probe,
        lambda state: state is gone,
        timeout=timeout,
        poll_interval=poll_interval,
        timeout_message=lambda state: f"{kind} '{name}' still exists after {timeout:.0f} s (state {state})",
    )


def unless_being_deleted(
    read: Callable[[], _T], being_deleted: Callable[[_T], bool], wait_until_deleted: Callable[[], None]
) -> _T | None:
    """What ``read`` returns about a resource, or None when there is none to reuse.

    None when ``read`` raises :class:`ResourceNotFoundError`, and when ``being_deleted`` holds for what it returned:
    then ``wait_until_deleted`` is called first (a new resource of the same id can be made only once the old one is
    gone).
    """
    try:
        value = read()
    except ResourceNotFoundError:
        return None
    if not being_deleted(value):
        return value
    wait_until_deleted()
    return None
