"""Validation of Batch resource ids, done in core before any backend call."""

from __future__ import annotations

import re

__all__ = ["MAX_ID_LENGTH", "validate_id"]

MAX_ID_LENGTH = 64
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


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
    if not _ID_PATTERN.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ValueError(
            f"invalid {kind} id {shown!r}: use 1-{MAX_ID_LENGTH} characters of letters, digits, '-' and '_'"
        )
    return value
