"""Crash points: places where a test can make the emulator kill itself with SIGKILL, to prove crash consistency.

Off unless the environment variable ``BATCHBOX_EMULATOR_CRASH_AT`` is set; only tests set it::

    BATCHBOX_EMULATOR_CRASH_AT=<point>[/<detail>]:<n>

makes the emulator SIGKILL itself the ``n``-th time it reaches ``point`` (with that ``detail``, when one is given).
With ``BATCHBOX_EMULATOR_CRASH_ARM=<file>`` as well, hits are counted only while that file exists, so a test can
start the emulator, let it settle, and aim at the operation it sends next. Before dying the emulator writes one line
to stderr: ``crash point <point>/<detail> hit <n>: SIGKILL``.

The points:

* ``store.seal/<table>``: a document of ``<table>`` (``pools``, ``nodes``, ``jobs``, ``tasks``) is about to be
  written; its transaction has not committed;
* ``store.commit``: an outer transaction is about to commit;
* ``store.committed``: it has just committed; nothing after it has run (the answer, the container calls);
* ``driver.created``: a node container was created and started; the store does not know it yet;
* ``driver.removed``: a node container was removed; the store still lists its node;
* ``auto_pools.owner_ended/<job|jobschedule>``: an auto pool's job (or schedule) has ended and the pool is about to
  be deleted, in the transaction of that end, which has not committed.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CRASH_ARM_ENV", "CRASH_AT_ENV", "CrashPlan", "crash_point", "parse_plan"]

CRASH_AT_ENV = "BATCHBOX_EMULATOR_CRASH_AT"
CRASH_ARM_ENV = "BATCHBOX_EMULATOR_CRASH_ARM"


@dataclass
class CrashPlan:
    """Where to die: the ``count``-th hit of ``point`` (with ``detail`` when not empty), counted while ``arm``
    exists (always when None)."""

    point: str
    detail: str
    count: int
    arm: Path | None = None
    hits: int = 0

    def hit(self, point: str, detail: str) -> bool:
        """Count a hit; True when this is the one to die at."""
        if point != self.point or (self.detail and detail != self.detail):
            return False
        if self.arm is not None and not self.arm.exists():
            return False
        self.hits += 1
        return self.hits == self.count


def parse_plan(text: str | None, arm: str | None = None) -> CrashPlan | None:
    """``<point>[/<detail>]:<n>`` -> a plan (None for an empty text).

    Raises:
        ValueError: not of that form, or ``n`` < 1.
    """
    if not text:
        return None
    target, sep, count = text.rpartition(":")
    if not sep or not target or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{CRASH_AT_ENV} must be <point>[/<detail>]:<n> with n >= 1, got {text!r}")
    point, _, detail = target.partition("/")
    return CrashPlan(point, detail, int(count), Path(arm) if arm else None)


_plan = parse_plan(os.environ.get(CRASH_AT_ENV), os.environ.get(CRASH_ARM_ENV))


def crash_point(point: str, detail: str = "") -> None:
    """Die here (SIGKILL, no clean-up of any kind) when the test's plan says so; nothing otherwise."""
    if _plan is None or not _plan.hit(point, detail):
        return
    sys.stderr.write(f"crash point {point}/{detail} hit {_plan.hits}: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
