"""`make demo`: run the top-N words workload on the local backend and print what it found.

Equivalent to ``batchbox run examples/topn_words/workload.py --yes`` followed by printing the outputs; written
against the Python API to show it. ``BATCHBOX_BACKEND=azure`` runs the same thing on Azure. ``--timeout SECONDS``
gives up when the job runs longer. Errors (a timeout among them) print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.console import Console

from batchbox.cli.progress import RichReporter
from batchbox.core.backend import open_backend
from batchbox.core.errors import BatchboxError
from batchbox.core.reporting import LogReporter, Reporter
from batchbox.core.settings import load_settings
from batchbox.core.workflow import RunOptions, Workflow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workload import TopNWords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the top-N words sample and print what it found.")
    parser.add_argument("--timeout", type=float, help="give up when the job runs longer (seconds)")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("batchbox").addHandler(handler)
    logging.getLogger("batchbox").setLevel(logging.INFO)
    console = Console()
    reporter: Reporter = RichReporter(console) if console.is_terminal else LogReporter()
    started = time.monotonic()
    workload = TopNWords()
    try:
        with open_backend(load_settings()) as backend:
            console.print(f"running {workload.job_id} on {backend.describe()}", markup=False)
            options = RunOptions(poll_interval=0.2, job_timeout=args.timeout)
            result = Workflow(backend, workload, options, reporter).run()
    except (BatchboxError, TimeoutError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted; run it again to resume", file=sys.stderr)
        return 130
    for path in result.outputs:
        print(f"\n== {path.name}")
        print(path.read_text(encoding="utf-8"), end="")
    counts = result.counts
    print(
        f"\n{counts.succeeded} task(s) succeeded, {counts.failed} failed; outputs in {result.output_dir}; "
        f"elapsed {time.monotonic() - started:.1f} s (the tutorial took about 6 minutes on Azure)"
    )
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
