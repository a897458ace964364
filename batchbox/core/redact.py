"""Removing secrets from text before it reaches a log, an error message or the terminal."""

from __future__ import annotations

import logging
import re

__all__ = ["SAS_SIGNATURE", "RedactingFilter", "redact"]

SAS_SIGNATURE = re.compile(r"(?i)(sig=)[^&\s\"'<>]+")
"""A SAS signature (``sig=`` and its value) in a URL or a message; group 1 is the ``sig=`` itself."""

_PATTERNS = (
    (SAS_SIGNATURE, r"\1REDACTED"),
    (re.compile(r"(?i)(AccountKey=)[^;\s\"']+"), r"\1REDACTED"),
    (re.compile(r"(?i)(SharedKey [^:\s]+:)[A-Za-z0-9+/=]+"), r"\1REDACTED"),
    (re.compile(r"(?i)(BatchboxNode [^:\s]+:)\S+"), r"\1REDACTED"),
    (re.compile(r"(?i)(Bearer )[A-Za-z0-9._~+/=-]+"), r"\1REDACTED"),
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with SAS signatures, connection-string keys, auth headers and the given secrets masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "REDACTED")
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's rendered message (install it on handlers)."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, *self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
