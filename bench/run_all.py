"""Run every benchmark in bench/ (each ``bench_*.py`` module), one after another, each in its own process.

Separate processes keep one benchmark's memory, threads and emulators out of the next one's numbers, and before
each benchmark the runner waits (up to 2 minutes) until the machine is mostly idle again, so that one benchmark's
tail (containers being removed, caches being written back) does not land in the next one's numbers. Each
benchmark updates its own section of bench/RESULTS.md; this runner only refreshes the machine section and
prints a summary. Exit code 1 when a benchmark failed (crashed or found a wrong result); a missed target is
reported in RESULTS.md, not as a failure.

Run: ``.venv/bin/python -m bench.run_all [--only NAME ...] [--list] [-- ARGS FOR EVERY BENCHMARK]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import (
    BENCH_DIR,
    INVOKED_BY_ENV,
    REPO,
    machine_busy_seconds,
    typed_command,
    update_machine_section,
)

__all__ = ["discover", "idle_share", "main", "settle"]


def discover() -> list[str]:
    """Module names of the benchmarks present (``bench_staging``, ...), sorted."""
    return sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def idle_share(seconds: float = 2.0) -> float:
    """The share of the machine's CPU time (all cores) spent idle during the next ``seconds``."""
    cores = os.cpu_count() or 1
    busy_before, _ = machine_busy_seconds()
    started = time.monotonic()
    time.sleep(seconds)
    busy = machine_busy_seconds()[0] - busy_before
    return max(0.0, 1.0 - busy / (cores * (time.monotonic() - started)))


def settle(threshold: float = 0.85, timeout: float = 120.0) -> tuple[float, float]:
    """Wait until the machine is at least ``threshold`` idle over 2 s, or ``timeout`` seconds have passed.

    Returns:
        (seconds waited, the last idle share measured).
    """
    started = time.monotonic()
    while True:
        idle = idle_share()
        waited = time.monotonic() - started
        if idle >= threshold or waited >= timeout:
            return waited, idle


def _invoked_by() -> str:
    return "make bench" if os.environ.get("MAKELEVEL") else typed_command()


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; return 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("extra", nargs="*", help="arguments passed to every benchmark (after --)")
    args = parser.parse_args(argv)
    names = discover()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = wanted - set(names)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    if "--no-write" not in args.extra:
        update_machine_section()
    env = {**os.environ, INVOKED_BY_ENV: _invoked_by()}
    outcomes: list[tuple[str, int, float]] = []
    for index, name in enumerate(names):
        print(f"=== {name}", flush=True)
        if index:
            waited, idle = settle()
            print(f"(waited {waited:.0f} s for the machine to settle: {idle:.0%} idle)", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *args.extra], cwd=REPO, env=env)
        outcomes.append((name, code, time.monotonic() - started))
    print("=== summary")
    for name, code, seconds in outcomes:
        print(f"{name:24s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {seconds:7.1f} s")
    return 1 if any(code != 0 for _, code, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
