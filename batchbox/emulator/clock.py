"""Times and ISO 8601 durations as the Batch REST API writes and reads them: the emulator's one home for both.

Times are rendered ``2024-01-31T12:00:00.1234560Z`` (UTC, seven fractional digits, ``Z``) and parsed from any ISO
8601 form with ``Z`` or an offset. Durations are parsed by one grammar (:func:`parse_duration`) and rendered in the
compact form the service returns (:func:`format_duration`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = [
    "DAYS_PER_MONTH",
    "DAYS_PER_YEAR",
    "INFINITE_DURATION",
    "UNLIMITED_SECONDS",
    "duration_seconds",
    "format_duration",
    "format_time",
    "now_iso",
    "parse_duration",
    "parse_time",
    "valid_time",
]

INFINITE_DURATION = "P10675199DT2H48M5.4775807S"
""".NET ``TimeSpan.MaxValue``: what Batch reports for "no limit" (e.g. a task's default maxWallClockTime)."""

UNLIMITED_SECONDS = 10 * 365 * 86400.0
"""Durations at least this long count as "no limit" where the emulator enforces one (see :func:`duration_seconds`)."""

DAYS_PER_YEAR = 365
"""Days in a duration's year: the service stores ``P3Y6M4DT12H30M5S`` as ``P1279DT12H30M5S``."""
DAYS_PER_MONTH = 30
"""Days in a duration's month (see :data:`DAYS_PER_YEAR`)."""

_INFINITE_TIMEDELTA = timedelta(days=10675199, hours=2, minutes=48, seconds=5, microseconds=477580)
_DURATION = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$")


# -- times ------------------------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """Render a time the way Batch does: UTC, ISO 8601, seven fractional digits, ``Z`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def now_iso() -> str:
    """The current UTC time as :func:`format_time` renders it."""
    return format_time(datetime.now(timezone.utc))


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp (``Z`` or an offset; any number of fractional digits) as an aware UTC datetime.

    Returns:
        The time; ``None`` when ``value`` is not a string or does not parse. A time without a zone is UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = _FRACTION.match(text)
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
    """``value`` rewritten as a Batch UTC timestamp when it parses, else ``default``."""
    parsed = parse_time(value)
    return default if parsed is None else format_time(parsed)


# -- durations --------------------------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration as Batch accepts it: ``PT30S``, ``P1D``, ``PT1H30M``, ``P1DT02H03M04.5S``,
    ``P2W``, ``P3Y6M4DT12H30M5S``.

    Components are whole numbers except the seconds, which may have a fraction (kept to the microsecond).
    A year counts :data:`DAYS_PER_YEAR` (365) days and a month :data:`DAYS_PER_MONTH` (30) days, which is how
    the service converts them (it answered ``P3Y6M4DT12H30M5S`` with ``P1279DT12H30M5S``). Letters may be lower
    case. Negative durations, an empty ``P`` / ``PT`` and a ``T`` with nothing after it are refused.

    Raises:
        ValueError: ``text`` is not such a duration.
    """
    cleaned = text.strip().upper() if isinstance(text, str) else ""
    match = _DURATION.fullmatch(cleaned)
    if match is None or not any(match.groupdict().values()) or cleaned.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration: {str(text)[:64]!r}")
    parts = {name: value or "0" for name, value in match.groupdict().items()}
    whole, _, fraction = parts["seconds"].partition(".")
    return timedelta(
        days=int(parts["years"]) * DAYS_PER_YEAR + int(parts["months"]) * DAYS_PER_MONTH + int(parts["days"]),
        weeks=int(parts["weeks"]),
        hours=int(parts["hours"]),
        minutes=int(parts["minutes"]),
        seconds=int(whole),
        microseconds=int((fraction + "000000")[:6]),
    )


def format_duration(value: timedelta) -> str:
    """Render a duration in the compact form Batch returns (``PT15M``, ``P7D``, ``P1DT2H3M4.5S``)."""
    if value >= _INFINITE_TIMEDELTA:
        return INFINITE_DURATION
    total_us = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    days, rest = divmod(total_us, 86_400_000_000)
    hours, rest = divmod(rest, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    text = "P" + (f"{days}D" if days else "")
    clock = ""
    if hours:
        clock += f"{hours}H"
    if minutes:
        clock += f"{minutes}M"
    if seconds or micro:
        clock += f"{seconds}.{micro:06d}".rstrip("0").rstrip(".") + "S"
    if clock:
        text += "T" + clock
    return text if text != "P" else "PT0S"


def duration_seconds(value: object) -> float | None:
    """Seconds of a stored duration, for limits the emulator enforces (wall clocks, job deadlines).

    Returns:
        The duration in seconds; ``None`` when the value is missing or malformed, or at least
        :data:`UNLIMITED_SECONDS` (Batch's default is ``TimeSpan.MaxValue``, ~29,000 years: no limit).
    """
    if not isinstance(value, str):
        return None
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError:
        return None
    return None if seconds >= UNLIMITED_SECONDS else seconds
