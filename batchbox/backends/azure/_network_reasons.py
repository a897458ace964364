"""Naming why a request got no answer, from the text of the SDK error (Batch and Blob Storage alike)."""

from __future__ import annotations

__all__ = ["network_reason"]

# Checked in this order: the first one found in the error's text (or its inner exception's) names the failure.
_NETWORK_REASONS = (
    "Connection refused",
    "Connection reset",
    "Connection aborted",
    "Name or service not known",
    "Temporary failure in name resolution",
    "No route to host",
    "Network is unreachable",
    "Read timed out",
    "timed out",
    "Remote end closed connection",
)


def network_reason(exc: BaseException) -> str:
    """A short lower-case reason such as ``connection refused``, else the exception's class name."""
    text = f"{exc} {getattr(exc, 'inner_exception', '')}".lower()
    for reason in _NETWORK_REASONS:
        if reason.lower() in text:
            return reason.lower()
    return type(exc).__name__
