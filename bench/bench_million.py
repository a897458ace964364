"""Benchmark 10, a million queued tasks: one job of 1,000,000 tasks queued behind busy nodes.

On a pool of 4 nodes x 2 slots whose slots are all held by a blocker job (higher priority, 8 ``sleep`` tasks), a
job gets 1,000,000 ``/bin/true`` tasks, added as ``batchbox run`` adds them (``AzureBatchCompute.add_tasks``: 100
per ``addtaskcollection``, 8 in flight). With them queued this measures: the emulator's memory (``VmRSS`` /
``VmHWM`` from ``/proc``), ``GET .../taskcounts`` (median of many calls, next to the same call on a 1,000-task
job), listing every task with ``$select=id,state`` through the SDK's pager, the bulk add against sequential
``create_task`` (a sample, scaled), an emulator restart (time to answer, memory after it, counts unchanged), and
dispatch: the blocker is terminated and the time per task while the big job runs is compared with a 1,000-task
job run the same way (before the million was added, and between the million's windows).

Dispatch overhead per task = (time from the first to the W-th completion seen by a 20 ms task-count poll) /
(W - 1) x slots. The 1,000-task job runs at a priority between the blocker's and the big job's, so it runs first
when the blocker is ended.

Run: ``.venv/bin/python -m bench.bench_million [--tasks 1000000] [--repeat 3] [--window 1000] [--no-write]``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from azure.batch import BatchClient
from azure.batch import models as bm

# 15.1 exports no public name for it; without a reason the SDK sends no content-type and fails client-side.
from azure.batch.models._models import BatchJobTerminateOptions

from batchbox.backends.azure._batch_models import to_task_create
from batchbox.backends.azure.compute import AzureBatchCompute
from batchbox.core.models import EnvironmentSetting, TaskSpec
from batchbox.emulator.config import DEFAULT_ACCOUNT_KEY, DEFAULT_ACCOUNT_NAME
from bench.common import base_parser, median, process_cpu_seconds, provenance, publish
from bench.harness import BenchEmulator, create_pool, wait_for, wait_nodes_idle
from bench.million_report import DispatchRound, MillionFigures, plot_depths, render

__all__ = ["main"]

SECTION = "million"
POOL = "million-pool"
NODES, SLOTS = 4, 2
CONCURRENCY = 8
POLL = 0.02


def specs(count: int, prefix: str) -> list[TaskSpec]:
    """``count`` no-op tasks with one environment variable each."""
    return [
        TaskSpec(id=f"{prefix}{i:07d}", command_line="/bin/true", environment=(EnvironmentSetting("N", str(i)),))
        for i in range(count)
    ]


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


@dataclass
class Bench:
    emu: BenchEmulator
    client: BatchClient
    compute: AzureBatchCompute

    def job(self, priority: int) -> str:
        job_id = f"m-{uuid.uuid4().hex[:8]}"
        self.client.create_job(
            bm.BatchJobCreateOptions(id=job_id, priority=priority, pool_info=bm.BatchPoolInfo(pool_id=POOL))
        )
        return job_id

    def block(self) -> str:
        """A job above every other whose 8 sleeping tasks take every slot as soon as it frees."""
        job_id = self.job(1000)
        sleepers = [TaskSpec(id=f"b{i}", command_line="/bin/sleep 3600") for i in range(NODES * SLOTS)]
        self.compute.add_tasks(job_id, sleepers)
        wait_for(
            lambda: self.client.get_job_task_counts(job_id).task_counts.running == NODES * SLOTS,
            120,
            interval=0.1,
            what="the blocker holding every slot",
        )
        return job_id

    def unblock(self, blocker: str) -> None:
        self.client.begin_terminate_job(blocker, BatchJobTerminateOptions(termination_reason="Bench"))

    def counts(self, job_id: str) -> bm.BatchTaskCounts:
        return self.client.get_job_task_counts(job_id).task_counts

    def window(self, job_id: str, blocker: str, window: int) -> DispatchRound:
        """End the blocker, time the job's first ``window`` completions, block again."""
        base = self.counts(job_id).completed
        self.unblock(blocker)
        first = last = 0.0
        while True:
            done = self.counts(job_id).completed - base
            now = time.perf_counter()
            if done >= 1 and not first:
                first, cpu_first = now, process_cpu_seconds(self.emu.pid)
            if done >= window:
                last, cpu_last = now, process_cpu_seconds(self.emu.pid)
                break
            time.sleep(POLL)
        return DispatchRound(
            per_task=(last - first) / (window - 1) * NODES * SLOTS,
            emulator_cpu=(cpu_last - cpu_first) / (window - 1),
        )


def timed_counts(client: BatchClient, job_id: str, calls: int = 200) -> float:
    """Median wall time of ``GET .../taskcounts`` through the SDK."""
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        client.get_job_task_counts(job_id)
        times.append(time.perf_counter() - began)
    return median(times)


def timed_listing(client: BatchClient, job_id: str, expected: int) -> float:
    began = time.perf_counter()
    seen = sum(1 for _ in client.list_tasks(job_id, select=["id", "state"]))
    wall = time.perf_counter() - began
    if seen != expected:
        raise RuntimeError(f"listed {seen} tasks of {expected}")
    return wall


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "million benchmark", repeat=3)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks queued in the big job (1000000)")
    parser.add_argument("--small", type=int, default=1000, help="tasks of the small job (1000)")
    parser.add_argument("--sequential", type=int, default=2000, help="tasks the create_task baseline adds (2000)")
    parser.add_argument("--window", type=int, default=1000, help="completions timed per dispatch round (1000)")
    parser.add_argument(
        "--depths", default="10000,100000", help="queue depths timed once each before the million (10000,100000)"
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    figures = MillionFigures(tasks=args.tasks, small=args.small, sequential=args.sequential, window=args.window)
    with BenchEmulator("million") as emu:
        client = emu.client()
        compute = AzureBatchCompute.from_shared_key(emu.url, DEFAULT_ACCOUNT_NAME, DEFAULT_ACCOUNT_KEY)
        bench = Bench(emu, client, compute)
        try:
            create_pool(client, POOL, NODES, SLOTS)
            wait_nodes_idle(client, POOL, NODES)
            figures.rss_empty = rss_mib(emu.pid)[0]
            blocker = bench.block()
            small = bench.job(500)
            compute.add_tasks(small, specs(args.small, "s"), max_concurrency=CONCURRENCY)
            figures.counts_small = timed_counts(client, small)
            figures.small_rounds.append(bench.window(small, blocker, min(args.window, args.small)))
            print(f"small job before the million: {figures.small_rounds[-1]}", flush=True)
            blocker = bench.block()
            for depth in [int(d) for d in args.depths.split(",") if d.strip()]:
                deep = bench.job(500)
                compute.add_tasks(deep, specs(depth, "d"), max_concurrency=CONCURRENCY)
                figures.depth_rounds[depth] = bench.window(deep, blocker, args.window)
                print(f"{depth:,} queued: {figures.depth_rounds[depth]}", flush=True)
                blocker = bench.block()
                client.begin_delete_job(deep).result()

            big = bench.job(0)
            began = time.perf_counter()
            result = compute.add_tasks(big, specs(args.tasks, "t"), max_concurrency=CONCURRENCY)
            figures.bulk_add = time.perf_counter() - began
            if len(result.added) != args.tasks or bench.counts(big).active != args.tasks:
                raise RuntimeError("the big job does not hold every task it was given")
            print(f"added {args.tasks:,} in {figures.bulk_add:.1f} s", flush=True)
            figures.rss_queued = rss_mib(emu.pid)
            figures.counts_big = timed_counts(client, big)
            figures.listing = timed_listing(client, big, args.tasks)
            print(f"listing {figures.listing:.1f} s, counts {figures.counts_big * 1e3:.2f} ms", flush=True)

            sequential = bench.job(-10)
            bodies = [to_task_create(spec) for spec in specs(args.sequential, "q")]
            began = time.perf_counter()
            for body in bodies:
                client.create_task(sequential, body)
            figures.sequential_per_task = (time.perf_counter() - began) / args.sequential
            client.begin_delete_job(sequential).result()

            before = bench.counts(big)
            began = time.perf_counter()
            emu.stop()
            emu.start()
            figures.restart = time.perf_counter() - began
            client = emu.client()
            bench = Bench(emu, client, compute)
            after = bench.counts(big)
            if (after.active, after.completed) != (before.active, before.completed):
                raise RuntimeError(f"task counts changed over a restart: {before} -> {after}")
            figures.rss_restarted = rss_mib(emu.pid)[0]

            for rep in range(args.repeat):
                figures.big_rounds.append(bench.window(big, blocker, args.window))
                print(f"round {rep + 1}: million queued {figures.big_rounds[-1]}", flush=True)
                blocker = bench.block()
                small = bench.job(500)
                compute.add_tasks(small, specs(args.small, "s"), max_concurrency=CONCURRENCY)
                figures.small_rounds.append(bench.window(small, blocker, min(args.window, args.small)))
                print(f"round {rep + 1}: small job {figures.small_rounds[-1]}", flush=True)
                blocker = bench.block()
            figures.rss_peak = max(figures.rss_queued[1], rss_mib(emu.pid)[1])
            figures.left_queued = bench.counts(big).active
        finally:
            compute.close()
    load_after = os.getloadavg()
    if not args.no_write:
        plot_depths(figures)
    body = render(figures) + "\n\n" + provenance(load) + f" Load average after: {load_after[0]:.2f}."
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
