"""Validation of Batch resource ids, done in core before any backend call."""

from __future__ import annotations

import re

__all__ = ["MAX_ID_LENGTH", "is_valid_id", "validate_id"]

MAX_ID_LENGTH = 64
_ID_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")


def is_valid_id(value: object) -> bool:
    """Whether ``value`` is a valid pool, job or task id: a string of 1-64 letters, digits, ``-`` or ``_``.

    The one statement of the rule: :func:`validate_id` raises on it, the emulator answers Batch's errors on it.
    """
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def validate_id(kind: str, value: object) -> str:
    """Check a pool, job or task id against the Batch rules and return it.

    Args:
        kind: what the id names ("pool", "job", "task"), used in the message.
        value: the candidate id.

    Returns:
        The id, unchanged.

    Raises:
        ValueError: naming the bad id, when it is not 1-64 letters, digits, ``-`` or ``_``.
    """
    if not isinstance(value, str):
        raise ValueError(f"{kind} id must be a string, got {type(value).__name__}")
    if not is_valid_id(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"invalid {kind} id {shown!r}: use 1-{MAX_ID_LENGTH} characters of letters, digits, '-' and '_'"
        )
    return value
