"""Benchmark 9, container dispatch: container tasks one after another on a warm 1-node, 1-slot container pool.

batchbox: a round adds N container tasks (``/bin/true`` in a locally built image, ``containerSettings`` with its
image name) to a new job on the pool with ``create_tasks``; with one slot they run one after another, so the time
per task is (last task's ``executionInfo.endTime`` - the moment ``create_tasks`` began) / N. It covers the whole
path of each task: dispatch to the node, the agent asking the emulator (``containers/run``), the container's
create, attach, start, wait and exit through the Docker engine, the output files, the report, the next dispatch.

Baseline: ``docker run --rm IMAGE /bin/true`` with the docker CLI, the same image, one after another, in blocks
between the batchbox rounds; its median. Container start is the floor for both. Target: batchbox <= 1.2x it.

Run: ``.venv/bin/python -m bench.bench_container_dispatch [--repeat 3] [--tasks 30] [--runs 90] [--no-write]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import docker
from azure.batch import models as bm

from bench.common import Row, base_parser, fmt_ratio, fmt_seconds, median, provenance, publish, render_table
from bench.harness import BENCH_LABEL, BenchEmulator, task_times, wait_for, wait_nodes_idle

__all__ = ["ContainerRound", "main"]

SECTION = "container-dispatch"
TARGET = 1.2
POOL = "container-pool"
_IMAGE_REPOSITORY = "batchbox-bench-task"


@dataclass(frozen=True)
class ContainerRound:
    """One batchbox round: seconds from ``create_tasks`` to the last end, and per task."""

    tasks: int
    wall: float
    first_start: float

    @property
    def per_task(self) -> float:
        return self.wall / self.tasks


@contextmanager
def bench_image(client: docker.DockerClient, node_image: str) -> Iterator[str]:
    """A local image made with ``docker commit`` from the node image (no registry here); removed afterwards."""
    tag = uuid.uuid4().hex[:12]
    key, _, value = BENCH_LABEL.partition("=")
    container = client.containers.run(node_image, ["/bin/true"], detach=True, labels={key: value})
    try:
        container.wait(timeout=60)
        container.commit(repository=_IMAGE_REPOSITORY, tag=tag, changes=[f"LABEL {key}={value}"])
    finally:
        container.remove(force=True)
    image = f"{_IMAGE_REPOSITORY}:{tag}"
    try:
        yield image
    finally:
        client.images.remove(image, force=True)


def _docker_runs(image: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(["docker", "run", "--rm", image, "/bin/true"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def _round(emu: BenchEmulator, image: str, tasks: int) -> ContainerRound:
    client = emu.client()
    job = f"containers-{uuid.uuid4().hex[:8]}"
    client.create_job(bm.BatchJobCreateOptions(id=job, pool_info=bm.BatchPoolInfo(pool_id=POOL)))
    settings = bm.BatchTaskContainerSettings(image_name=image)
    bodies = [
        bm.BatchTaskCreateOptions(id=f"c{i:04d}", command_line="/bin/true", container_settings=settings)
        for i in range(tasks)
    ]
    started = time.time()
    client.create_tasks(job, bodies)
    wait_for(lambda: client.get_job_task_counts(job).task_counts.completed >= tasks, 600, 0.1, "all tasks completed")
    times = task_times(client, job)
    if len(times) != tasks or any(t.exit_code != 0 for t in times):
        raise RuntimeError(f"{job}: {len(times)} tasks completed, some failed or missing")
    client.begin_delete_job(job, polling_interval=1)
    return ContainerRound(tasks, max(t.end for t in times) - started, min(t.start for t in times) - started)


def _warm_pool(emu: BenchEmulator, image: str) -> None:
    client = emu.client()
    client.create_pool(
        bm.BatchPoolCreateOptions(
            id=POOL,
            vm_size="standard_d2s_v3",
            target_dedicated_nodes=1,
            task_slots_per_node=1,
            virtual_machine_configuration=bm.VirtualMachineConfiguration(
                image_reference=bm.BatchVmImageReference(publisher="microsoft-dsvm", offer="ubuntu-hpc", sku="2204"),
                node_agent_sku_id="batch.node.ubuntu 22.04",
                container_configuration=bm.BatchContainerConfiguration(
                    type=bm.ContainerType.DOCKER_COMPATIBLE, container_image_names=[image]
                ),
            ),
        )
    )
    wait_nodes_idle(client, POOL, 1)
    _round(emu, image, 3)  # warm-up: the agent's first container task, the emulator's task-container client


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "container dispatch benchmark", repeat=3)
    parser.add_argument("--tasks", type=int, default=30, help="container tasks per round (default 30)")
    parser.add_argument("--runs", type=int, default=90, help="docker run calls in all (default 90)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rounds: list[ContainerRound] = []
    runs: list[float] = []
    with BenchEmulator("containers") as emu, bench_image(emu.docker, emu.node_image) as image:
        _warm_pool(emu, image)
        _docker_runs(image, 3)
        per_block = -(-args.runs // args.repeat)
        for rep in range(args.repeat):
            block = _docker_runs(image, min(per_block, args.runs - len(runs)))
            runs.extend(block)
            print(f"docker run --rm: median {fmt_seconds(median(block))} over {len(block)}", flush=True)
            result = _round(emu, image, args.tasks)
            rounds.append(result)
            print(f"round {rep + 1}: {fmt_seconds(result.per_task)} per container task", flush=True)
    load_after = os.getloadavg()
    per_task = median([r.per_task for r in rounds])
    baseline = median(runs)
    ratio = per_task / baseline
    rows = [
        Row(
            "**per container task** (baseline: median `docker run --rm IMAGE /bin/true`; batchbox: wall / tasks)",
            fmt_seconds(baseline),
            fmt_seconds(per_task),
            fmt_ratio(ratio),
            f"≤ {TARGET:.1f}x docker run",
            ratio <= TARGET,
        ),
        Row(
            f"wall time for {args.tasks} tasks: `create_tasks` → last task's endTime",
            f"{fmt_seconds(baseline * args.tasks)} (median run x {args.tasks})",
            fmt_seconds(median([r.wall for r in rounds])),
        ),
        Row(
            "first task's startTime after `create_tasks` began",
            "",
            fmt_seconds(median([r.first_start for r in rounds])),
        ),
        Row(
            "docker run p10 / p90",
            f"{fmt_seconds(sorted(runs)[len(runs) // 10])} / {fmt_seconds(sorted(runs)[len(runs) * 9 // 10])}",
            "",
        ),
    ]
    every = "; ".join(f"{fmt_seconds(r.per_task)}" for r in rounds)
    verdict = (
        "Target met."
        if ratio <= TARGET
        else f"**Target missed**: {ratio:.2f}x docker run instead of at most {TARGET:.1f}x."
    )
    body = "\n".join(
        [
            f"## 9. Container dispatch: {args.tasks} container tasks one after another on a warm 1-slot node",
            "",
            "batchbox: a pool with `containerConfiguration` (the image prefetched), one node with one slot; each "
            f"round adds {args.tasks} tasks with `containerSettings` (a locally built image, `docker commit` of the "
            "node image) and the command `/bin/true` to a new job. With one slot they run one after another: time "
            "per task = (last task's `executionInfo.endTime` - the moment `create_tasks` began) / tasks. It covers "
            "the dispatch, the agent's `containers/run` request, the container's create, attach, start and exit "
            "through the Docker engine (the emulator runs it beside the node container: no Docker socket in "
            "nodes), stdout/stderr into the task directory, the report and the next dispatch. Baseline: "
            f"`docker run --rm IMAGE /bin/true` with the docker CLI and the same image, {len(runs)} times in blocks "
            f"between the {args.repeat} batchbox rounds; its median.",
            "",
            render_table(rows),
            "",
            f"Per task in each round: {every}. {verdict} The container's start and exit through the engine is the "
            "floor of both; batchbox adds the agent protocol round trips and the task's files, and saves the CLI's "
            "own start and its wait for the container's removal (the emulator removes it after reporting).",
            "",
            provenance(load) + f" Load average after: {load_after[0]:.2f}.",
        ]
    )
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
