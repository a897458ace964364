"""The replay's report: a summary, the remaining differences grouped by reason, and one table row per exchange."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tests.replay.baseline import Verdict
from tests.replay.runner import Outcome

__all__ = ["render_report"]

_SHOWN = {"match": "match", "retired": "retired: today's error", "listed": "differs (baseline)", "problem": "PROBLEM"}


def _cell(text: str, limit: int = 160) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_report(results: Sequence[tuple[Outcome, Verdict]]) -> str:
    """Markdown: counts, the exchanges that still differ by reason, then every exchange."""
    counts: dict[str, int] = defaultdict(int)
    for _, verdict in results:
        counts[verdict.kind] += 1
    total = len(results)
    lines = [
        "# Recorded Azure Batch exchanges replayed against the emulator",
        "",
        f"- {counts['match']} of {total} match the recording (status, Batch error code, odata.metadata, "
        "property and header sets);",
        f"- {counts['retired']} use a feature Batch has retired and get the error the baseline expects;",
        f"- {counts['listed']} still differ, as the baseline lists;",
        f"- {counts['problem']} are problems (regressions, or baseline entries to update).",
        "",
    ]
    for title, kinds in (
        ("Retired features, by reason", ("retired",)),
        ("Still differing, by reason", ("listed", "problem")),
    ):
        lines += [f"## {title}", ""]
        by_reason: dict[str, list[str]] = defaultdict(list)
        for outcome, verdict in results:
            if verdict.kind in kinds:
                by_reason[verdict.reason or "(not in the baseline)"].append(outcome.exchange.key)
        for reason, keys in sorted(by_reason.items(), key=lambda item: (-len(item[1]), item[0])):
            lines.append(f"- {len(keys)} x {reason} ({', '.join(keys)})")
        lines.append("")
    lines += [
        "## Every exchange",
        "",
        "| # | exchange | request | recorded | emulator | verdict | differences / notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, (outcome, verdict) in enumerate(results, start=1):
        details = "; ".join([*outcome.differences, *outcome.notes])
        lines.append(
            f"| {number} | {outcome.exchange.key} | {_cell(outcome.exchange.label, 70)} | {outcome.recorded.summary} "
            f"| {outcome.replayed.summary} | {_SHOWN.get(verdict.kind, verdict.kind)} | {_cell(details)} |"
        )
    return "\n".join(lines) + "\n"
