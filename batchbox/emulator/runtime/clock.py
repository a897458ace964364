"""Timestamps and ISO 8601 durations as the Batch REST API writes them."""

from __future__ import annotations

import re
from datetime import datetime, timezone

__all__ = ["UNLIMITED_SECONDS", "now_iso", "parse_duration", "parse_time", "valid_time"]

UNLIMITED_SECONDS = 10 * 365 * 86400.0
"""Durations at least this long count as "no limit" (Batch's default is TimeSpan.MaxValue, ~29,000 years)."""

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {
    "y": 365 * 86400.0,
    "mo": 30 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "mi": 60.0,
    "s": 1.0,
}


def now_iso() -> str:
    """The current UTC time as Batch writes it: ``2024-01-31T12:00:00.1234560Z`` (seven fractional digits)."""
    return _render(datetime.now(timezone.utc))


def _render(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_duration(value: object) -> float | None:
    """Seconds of an ISO 8601 duration such as ``PT1H30M`` or ``P2DT5.5S``.

    Args:
        value: the duration string (anything else gives ``None``).

    Returns:
        The duration in seconds; ``None`` when the value is missing, malformed, or at least
        :data:`UNLIMITED_SECONDS` (which Batch treats as no limit).
    """
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value.strip().upper().replace(",", "."))
    if match is None or value.strip().upper() in ("P", "PT"):
        return None
    total = sum(float(match.group(unit)) * scale for unit, scale in _UNIT_SECONDS.items() if match.group(unit))
    if match.group("sign"):
        total = -total
    if total >= UNLIMITED_SECONDS:
        return None
    return total


def parse_time(value: object) -> datetime | None:
    """Parse an ISO 8601 timestamp (``Z`` or an offset; up to 7 fractional digits) to an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match is not None and match.group(2):
        # datetime.fromisoformat (3.10) accepts only 3 or 6 fractional digits.
        text = match.group(1) + (match.group(2) + "000000")[:7] + match.group(3)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def valid_time(value: object, default: str) -> str:
    """``value`` rewritten as a UTC ``...Z`` timestamp when it parses, else ``default``."""
    parsed = parse_time(value)
    if parsed is None:
        return default
    return _render(parsed)
