"""The committed baseline of the recorded-exchange replay, and the verdict on each replayed exchange.

The baseline (``tests/recorded_exchanges_baseline.yaml``) holds three things:

- ``local_differences``: property paths that differ by nature of a local emulator (e.g. no inbound endpoints on
  node containers), each with its reason; they are left out of every comparison;
- ``retired``: exchanges of features Batch has retired since the recording; the emulator must answer them with the
  error given as ``expect`` (e.g. ``400 InvalidPropertyValue``) instead of the recorded answer;
- ``differs``: exchanges that may still differ, each with its reason and the exact differences allowed.

Nothing joins ``differs`` silently and nothing stays in it once fixed: an unlisted difference fails, a listed
exchange that now matches fails ("remove it"), and so does a listed difference that is gone or a new one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.replay.runner import Outcome

__all__ = ["Baseline", "Verdict", "load_baseline"]


@dataclass(frozen=True)
class Verdict:
    """How an exchange stands against the baseline: ``match``, ``retired``, ``listed`` (all fine) or a problem."""

    kind: str
    reason: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class Baseline:
    local_differences: tuple[tuple[tuple[str, ...], str], ...]
    retired: dict[str, tuple[str, str]]
    differs: dict[str, tuple[str, tuple[str, ...]]]

    @property
    def ignore_paths(self) -> tuple[str, ...]:
        return tuple(path for paths, _ in self.local_differences for path in paths)

    def verdict(self, outcome: Outcome) -> Verdict:
        key = outcome.exchange.key
        if key in self.retired:
            expect, reason = self.retired[key]
            if outcome.replayed.summary == expect:
                return Verdict("retired", reason)
            return Verdict(
                "problem", reason, f"{key}: a retired feature must answer {expect}, the emulator answers "
                f"{outcome.replayed.summary}"
            )  # fmt: skip
        if key in self.differs:
            reason, allowed = self.differs[key]
            if outcome.matches:
                return Verdict("problem", reason, f"{key} now matches the recording: remove it from the baseline")
            new = [line for line in outcome.differences if line not in allowed]
            gone = [line for line in allowed if line not in outcome.differences]
            if not new and not gone:
                return Verdict("listed", reason)
            parts = [f"{key} ({outcome.exchange.label}) differs otherwise than the baseline says:"]
            parts += [f"  new: {line}" for line in new] + [
                f"  gone (remove from the baseline): {line}" for line in gone
            ]
            return Verdict("problem", reason, "\n".join(parts))
        if outcome.matches:
            return Verdict("match")
        lines = "\n".join(f"  {line}" for line in outcome.differences)
        return Verdict("problem", "", f"{key} ({outcome.exchange.label}) differs from the recording:\n{lines}")

    def stale_keys(self, outcomes: Iterable[Outcome]) -> list[str]:
        """Baseline entries naming no replayed exchange."""
        seen = {outcome.exchange.key for outcome in outcomes}
        return sorted(key for key in (*self.retired, *self.differs) if key not in seen)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(value)


def load_baseline(path: Path) -> Baseline:
    """Read and check the baseline file.

    Raises:
        ValueError: an entry is malformed (each needs a non-empty ``reason``).
    """
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    local = []
    for index, item in enumerate(document.get("local_differences") or []):
        if not item.get("reason"):
            raise ValueError(f"local_differences[{index}]: a reason is required")
        local.append((_strings(item.get("paths"), f"local_differences[{index}].paths"), str(item["reason"])))
    retired: dict[str, tuple[str, str]] = {}
    for key, item in (document.get("retired") or {}).items():
        if not item.get("reason") or not item.get("expect"):
            raise ValueError(f"retired {key}: expect and reason are required")
        retired[str(key)] = (str(item["expect"]), str(item["reason"]))
    differs: dict[str, tuple[str, tuple[str, ...]]] = {}
    for key, item in (document.get("differs") or {}).items():
        if not item.get("reason"):
            raise ValueError(f"differs {key}: a reason is required")
        differs[str(key)] = (str(item["reason"]), _strings(item.get("differences"), f"differs {key}.differences"))
    overlap = set(retired) & set(differs)
    if overlap:
        raise ValueError(f"listed both as retired and as differing: {sorted(overlap)}")
    return Baseline(tuple(local), retired, differs)
