"""Benchmark 12, the workflow at 20,000 tasks: ``batchbox run`` of a parameter sweep against the tutorial's way.

``batchbox run bench/workloads/sweep.py --yes`` on a local stack (Azurite and the emulator, started once before the
rounds): 20,000 tasks of 0.1 s each on 4 nodes x 2 slots, each writing one small output file that Batch uploads;
the workflow then downloads them all. It runs in a child process (``bench.counted_cli``: the same command, with
its requests and steps recorded), so its peak memory is its own (``wait4``). Timed: process start to the end of
the collect step (every output on disk; the clean-up after it is not counted). Ideal: tasks x 0.1 s / 8 slots.

Baseline, the tutorial's way scaled (in this process, against the same stack, same task bodies): the script
uploaded with ``upload_blob``, the pool and job created, tasks added 100 per ``create_task_collection`` one request
after another, every task listed each second until all completed, then ``list_blobs`` and one
``download_blob().readall()`` and file write per output, one after another.

Run: ``.venv/bin/python -m bench.bench_workflow [--tasks 20000] [--tutorial-tasks 2000] [--repeat 3] [--big-repeat 1]
[--no-write]`` (``--repeat`` rounds of the 2,000-task pair; the first ``--big-repeat`` of them also run the big one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batchbox.backends.local.azurite import find_free_port
from batchbox.backends.local.stack import LocalStack
from bench.common import REPO, base_parser, provenance, publish
from bench.workflow_report import CliRun, TutorialRun, read_record, render
from bench.workflow_tutorial import run_tutorial

__all__ = ["main", "run_batchbox"]

SECTION = "workflow"
WORKLOAD = "bench/workloads/sweep.py"
SLOTS = 8


def run_batchbox(home: Path, ports: tuple[int, int], tasks: int, seconds: float, tag: str) -> CliRun:
    """One ``batchbox run`` of the sweep in a child process; its outputs are checked, then deleted."""
    output_dir = home / f"out-{tag}"
    record = home / f"record-{tag}.json"
    env = dict(os.environ)
    env.update(
        BATCHBOX_HOME=str(home),
        BATCHBOX_AZURITE_PORT=str(ports[0]),
        BATCHBOX_EMULATOR_PORT=str(ports[1]),
        BATCHBOX_NODE_LABELS="batchbox.bench=1",
        BATCHBOX_BACKEND="local",
        BATCHBOX_SWEEP_TASKS=str(tasks),
        BATCHBOX_SWEEP_SECONDS=str(seconds),
        BATCHBOX_SWEEP_JOB=f"sweep-{tag}",
        BATCHBOX_SWEEP_POOL=f"sweep-pool-{tag}",
        BATCHBOX_BENCH_RECORD=str(record),
    )
    command = [sys.executable, "-m", "bench.counted_cli", "run", WORKLOAD, "--yes", "--output-dir", str(output_dir)]
    log = home / f"run-{tag}.log"
    started = time.monotonic()
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    text = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"batchbox run exited with {process.returncode}:\n{text[-3000:]}")
    outputs = sorted(output_dir.glob("result-*.txt"))
    if len(outputs) != tasks or any(not p.read_text().startswith("point ") for p in outputs[:: max(1, tasks // 50)]):
        raise RuntimeError(f"expected {tasks} outputs in {output_dir}, found {len(outputs)}")
    shutil.rmtree(output_dir, ignore_errors=True)
    return CliRun.of(
        tasks=tasks,
        seconds=seconds,
        started=started,
        wall=wall,
        max_rss_kib=usage.ru_maxrss,
        record=read_record(record),
        output_lines=len(text.splitlines()),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "workflow benchmark", repeat=3)
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks of batchbox's run (20000)")
    parser.add_argument("--tutorial-tasks", type=int, default=2000, help="tasks of the tutorial's run (2000)")
    parser.add_argument("--seconds", type=float, default=0.1, help="each task's work in seconds (0.1)")
    parser.add_argument(
        "--big-repeat", type=int, default=1, help="rounds that include the big run (1; each takes minutes)"
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="batchbox-bench-workflow-"))
    ports = (find_free_port(), find_free_port())
    os.environ["BATCHBOX_NODE_LABELS"] = "batchbox.bench=1"
    stack = LocalStack(home, azurite_port=ports[0], emulator_port=ports[1])
    big: list[CliRun] = []
    small: list[CliRun] = []
    tutorial: list[TutorialRun] = []
    try:
        endpoints = stack.up()
        run_batchbox(home, ports, 16, args.seconds, "warmup")
        for rep in range(args.repeat):
            sides = ["big", "small", "tutorial"] if rep % 2 == 0 else ["tutorial", "small", "big"]
            if rep >= args.big_repeat:
                sides.remove("big")
            for side in sides:
                tag = f"{side}{rep}"
                if side == "big":
                    big.append(run_batchbox(home, ports, args.tasks, args.seconds, tag))
                    print(f"round {rep + 1}: batchbox {args.tasks:,}: {big[-1]}", flush=True)
                elif side == "small":
                    small.append(run_batchbox(home, ports, args.tutorial_tasks, args.seconds, tag))
                    print(f"round {rep + 1}: batchbox {args.tutorial_tasks:,}: {small[-1]}", flush=True)
                else:
                    tutorial.append(run_tutorial(endpoints, home, args.tutorial_tasks, args.seconds, tag))
                    print(f"round {rep + 1}: tutorial {args.tutorial_tasks:,}: {tutorial[-1]}", flush=True)
    finally:
        stack.down(remove_nodes=True)
        shutil.rmtree(home, ignore_errors=True)
    load_after = os.getloadavg()
    body = render(big, small, tutorial, slots=SLOTS, repeat=args.repeat)
    body += "\n\n" + provenance(load) + f" Load average after: {load_after[0]:.2f}."
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
