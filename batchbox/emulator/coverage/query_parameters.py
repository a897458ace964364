"""The inventory of query parameters the emulator checks beyond ``api-version``: what it does with each value.

Each entry is rendered into the "Query parameters" section of docs/api-coverage.md. As for properties, nothing is
accepted and ignored: a value the emulator cannot honour is refused with ``InvalidQueryParameterValue`` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QUERY_PARAMETERS", "QueryParameterUse"]


@dataclass(frozen=True)
class QueryParameterUse:
    """One query parameter on a set of operations and what the emulator does with its values."""

    name: str
    operations: str
    handling: str
    note: str


QUERY_PARAMETERS: tuple[QueryParameterUse, ...] = (
    QueryParameterUse(
        "timeout",
        "every operation",
        "validated",
        "A whole number of seconds of at least 1 (above 30 means 30, as in Batch); the emulator answers within it. "
        "Anything else: 400.",
    ),
    QueryParameterUse(
        "$expand",
        "job get, job list",
        "implemented",
        "stats adds the job's statistics (its tasks and their ended runs); any other value: 400.",
    ),
    QueryParameterUse(
        "$expand",
        "job schedule get, job schedule list",
        "implemented",
        "stats adds the statistics of the schedule's jobs; any other value: 400.",
    ),
    QueryParameterUse(
        "$expand", "pool get, pool list", "refused", "The emulator keeps no pool statistics: any value is a 400."
    ),
    QueryParameterUse(
        "force",
        "job delete, job terminate, job schedule delete, job schedule terminate",
        "false implemented, true refused",
        "The emulator always waits for its nodes (release tasks run first), which is false; true and non-booleans: "
        "400.",
    ),
)
