"""Query parameters every Batch operation takes, checked before the handler runs.

``timeout`` is the longest time, in seconds, the service may spend on the request; Batch documents 30 as the default
and as the most it allows (a larger value means the default). The emulator answers every operation within that
time, so a valid value changes nothing; a value that is not a whole number of seconds of at least 1 is refused
with ``InvalidQueryParameterValue`` naming it, never ignored.

``force`` (job and job schedule delete and terminate) asks the service to go on before the nodes processed the
change. The emulator always waits for its nodes (a job's release tasks run first), so ``false`` is what it does and
``true`` is refused naming the parameter (:func:`check_force`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from batchbox.emulator.errors import invalid_query

__all__ = [
    "FORCE_PARAM",
    "MAX_TIMEOUT_SECONDS",
    "TIMEOUT_PARAM",
    "check_common_query",
    "check_force",
    "request_timeout",
]

TIMEOUT_PARAM = "timeout"
FORCE_PARAM = "force"
MAX_TIMEOUT_SECONDS = 30
"""Batch's default and largest server-side time limit of a request."""


def request_timeout(value: str | None) -> int:
    """The time limit a ``timeout`` query value asks for, in seconds (the default when absent or above 30).

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` when the value is not a whole number of at least 1.
    """
    if value is None:
        return MAX_TIMEOUT_SECONDS
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise invalid_query(TIMEOUT_PARAM, value, "The timeout must be a whole number of seconds of at least 1.")
    return min(int(text), MAX_TIMEOUT_SECONDS)


def check_common_query(query: Mapping[str, Sequence[str]]) -> None:
    """Check the query parameters every operation takes (``parse_qs`` output; its first value counts)."""
    values = query.get(TIMEOUT_PARAM)
    if values is not None:
        request_timeout(values[0])


def check_force(value: str | None) -> None:
    """Check a job or job schedule delete / terminate's ``force``: absent or ``false`` (what the emulator does).

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` for ``true`` (not emulated) or a value that is not a boolean.
    """
    if value is None or value.strip().lower() == "false":
        return
    if value.strip().lower() == "true":
        raise invalid_query(
            FORCE_PARAM,
            value,
            "The local batchbox emulator always waits for its nodes to process the change; force=true is not emulated.",
        )
    raise invalid_query(FORCE_PARAM, value, "The value must be true or false.")
