"""Benchmark 7, scale: 2,000 CPU-bound tasks of 0.2 s CPU each on 4, 8 and 16 node containers of this machine.

Each task is ``python3 -c`` spinning until its own process CPU time (``time.process_time()``, interpreter start-up
included) reaches 0.2 s, so every task costs the same CPU however busy the machine is. Each node has 1 slot:
with 2 cores, 4 nodes already run 4 tasks at once. For each node count: a fresh pool, a warm-up job, then the
2,000 tasks added at once; wall time = ``create_tasks`` called → last task's ``executionInfo.endTime``.

Ideal = the tasks' total CPU / the machine's cores. The tasks' CPU is measured, not assumed: the node containers'
cgroup v1 ``cpuacct.usage`` over the run minus the agents' own CPU (``/proc/<pid>/stat``); the agents' and the
emulator's CPU are reported as overhead. Efficiency = ideal / wall. Memory per node: the container's cgroup
``memory.usage_in_bytes`` (and that minus page cache, what ``docker stats`` shows), idle before the run and the
peak sampled every 0.5 s during it.

Plots: ``bench/plots/scale.png`` (efficiency and wall time against node count) and ``bench/plots/timeline.png``
(tasks per node over time in the 4-node run).

Run: ``.venv/bin/python -m bench.bench_scale [--nodes 4,8,16] [--tasks 2000] [--cpu 0.2] [--no-write]``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from azure.batch import models as bm

from bench.common import (
    BENCH_DIR,
    Row,
    base_parser,
    fmt_seconds,
    machine_busy_seconds,
    process_cpu_seconds,
    provenance,
    publish,
    render_table,
    self_cpu_seconds,
)
from bench.harness import (
    BenchEmulator,
    TaskTimes,
    cgroup_cpu_seconds,
    cgroup_memory_bytes,
    count_containers,
    create_pool,
    task_times,
    wait_for,
    wait_nodes_idle,
)

__all__ = ["NodeCountResult", "burn_command", "main"]

SECTION = "scale"
TARGET = 0.80
TARGET_NODES = 4
PLOTS = BENCH_DIR / "plots"


def burn_command(cpu_seconds: float) -> str:
    """A task command line that spins until the process has used ``cpu_seconds`` of CPU (start-up included)."""
    return f'python3 -c "import time\nwhile time.process_time() < {cpu_seconds:g}:\n    sum(range(1000))"'


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _agent_pids(container: object) -> list[int]:
    """Host PIDs of the node agent (the child of the container's init) and of its process helper, if started."""
    init = int(container.attrs["State"]["Pid"])  # type: ignore[attr-defined]
    agent = _children(init)[0]
    helpers = [pid for pid in _children(agent) if b"_agent_spawner" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return [agent, *helpers]


@dataclass
class NodeCountResult:
    """One node count's run."""

    nodes: int
    tasks: int
    wall: float
    task_cpu: float
    agent_cpu: float
    emulator_cpu: float
    idle_memory: list[tuple[int, int]]
    peak_memory: list[tuple[int, int]]
    others_cores: float = 0.0
    """Cores' worth of CPU that other processes of the machine used (or the hypervisor stole) during the run."""
    times: list[TaskTimes] = field(default_factory=list)
    started: float = 0.0

    def ideal(self, cores: int) -> float:
        return self.task_cpu / cores

    def efficiency(self, cores: int) -> float:
        return self.ideal(cores) / self.wall

    def efficiency_on_free_cores(self, cores: int) -> float:
        """Ideal on the CPU other processes left free (cores minus their mean use) / wall."""
        return self.task_cpu / max(cores - self.others_cores, 0.1) / self.wall


class _MemorySampler:
    """Samples the containers' memory every ``interval`` seconds in a thread; keeps each one's peak."""

    def __init__(self, container_ids: list[str], interval: float = 0.5) -> None:
        self.ids = container_ids
        self.interval = interval
        self.peak: dict[str, tuple[int, int]] = {cid: (0, 0) for cid in container_ids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for cid in self.ids:
                try:
                    usage, no_cache = cgroup_memory_bytes(cid)
                except OSError:
                    continue
                old = self.peak[cid]
                self.peak[cid] = (max(old[0], usage), max(old[1], no_cache))
            self._stop.wait(self.interval)

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_job(emu: BenchEmulator, pool: str, count: int, command: str, timeout: float) -> tuple[str, float]:
    client = emu.client()
    job = f"scale-{uuid.uuid4().hex[:8]}"
    client.create_job(bm.BatchJobCreateOptions(id=job, pool_info=bm.BatchPoolInfo(pool_id=pool)))
    bodies = [bm.BatchTaskCreateOptions(id=f"t{i:05d}", command_line=command) for i in range(count)]
    started = time.time()
    client.create_tasks(job, bodies, max_concurrency=8)
    wait_for(lambda: client.get_job_task_counts(job).task_counts.completed >= count, timeout, 0.2, "tasks completed")
    return job, started


def _one_count(emu: BenchEmulator, nodes: int, tasks: int, command: str) -> NodeCountResult:
    client = emu.client()
    pool = f"scale-{nodes}"
    create_pool(client, pool, nodes, 1)
    wait_nodes_idle(client, pool, nodes, timeout=300)
    containers = [c for c in emu.node_containers() if c.labels.get("batchbox.pool") == pool]
    ids = [c.id for c in containers]
    _run_job(emu, pool, nodes * 2, command, 300)  # warm-up: page cache, agents' first runs (helper started)
    agents = [pid for c in containers for pid in _agent_pids(c)]
    time.sleep(2.0)  # let the nodes settle before the idle memory reading
    idle = [cgroup_memory_bytes(cid) for cid in ids]
    cgroup0 = cgroup_cpu_seconds(ids)
    agents0 = sum(process_cpu_seconds(pid) for pid in agents)
    emulator0 = process_cpu_seconds(emu.pid)
    own0 = self_cpu_seconds()
    busy0, _ = machine_busy_seconds()
    window0 = time.monotonic()
    with _MemorySampler(ids) as sampler:
        job, started = _run_job(emu, pool, tasks, command, 1800)
    window = time.monotonic() - window0
    busy = machine_busy_seconds()[0] - busy0
    cgroup = cgroup_cpu_seconds(ids) - cgroup0
    agent_cpu = sum(process_cpu_seconds(pid) for pid in agents) - agents0
    emulator_cpu = process_cpu_seconds(emu.pid) - emulator0
    others = max(0.0, busy - cgroup - emulator_cpu - (self_cpu_seconds() - own0))
    times = task_times(client, job)
    if len(times) != tasks or any(t.exit_code != 0 for t in times):
        raise RuntimeError(f"{job}: {len(times)} of {tasks} tasks completed, or some failed")
    result = NodeCountResult(
        nodes=nodes,
        tasks=tasks,
        wall=max(t.end for t in times) - started,
        task_cpu=cgroup - agent_cpu,
        agent_cpu=agent_cpu,
        emulator_cpu=emulator_cpu,
        idle_memory=idle,
        peak_memory=[sampler.peak[cid] for cid in ids],
        others_cores=others / window,
        times=times,
        started=started,
    )
    client.begin_delete_job(job, polling_interval=1)
    client.begin_delete_pool(pool, polling_interval=1)
    wait_for(
        lambda: count_containers(emu.docker, f"batchbox.emulator={emu.instance_label}", f"batchbox.pool={pool}") == 0,
        120,
        0.5,
        f"pool {pool}'s containers removed",
    )
    return result


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def _plot_scale(results: list[NodeCountResult], cores: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = [r.nodes for r in results]
    fig, (left, right, memory) = plt.subplots(1, 3, figsize=(12, 3.6))
    left.plot(nodes, [100 * r.efficiency(cores) for r in results], "o-", label="batchbox")
    left.plot(
        nodes,
        [100 * r.efficiency_on_free_cores(cores) for r in results],
        "^:",
        label="on the cores other processes left free",
    )
    left.axhline(100 * TARGET, color="tab:red", linestyle="--", label=f"target ({TARGET:.0%} at {TARGET_NODES} nodes)")
    left.set_xlabel("node containers (1 slot each)")
    left.set_ylabel("efficiency = ideal / wall (%)")
    left.set_ylim(0, 105)
    left.set_xticks(nodes)
    left.legend(loc="lower left", fontsize=8)
    left.set_title("Efficiency")
    right.plot(nodes, [r.wall for r in results], "o-", label="wall time")
    right.plot(nodes, [r.ideal(cores) for r in results], "s--", label=f"ideal = task CPU / {cores} cores")
    right.set_xlabel("node containers (1 slot each)")
    right.set_ylabel("seconds")
    right.set_ylim(0, max(r.wall for r in results) * 1.15)
    right.set_xticks(nodes)
    right.legend(loc="lower left", fontsize=8)
    right.set_title(f"{results[0].tasks:,} tasks of 0.2 s CPU")
    memory.plot(
        nodes,
        [sum(u for u, _ in r.idle_memory) / len(r.idle_memory) / 2**20 for r in results],
        "o-",
        label="idle (mean)",
    )
    memory.plot(nodes, [max(u for u, _ in r.peak_memory) / 2**20 for r in results], "s-", label="peak under load")
    memory.set_xlabel("node containers (1 slot each)")
    memory.set_ylabel("MiB per node (cgroup usage)")
    memory.set_ylim(0, max(max(u for u, _ in r.peak_memory) for r in results) / 2**20 * 1.3)
    memory.set_xticks(nodes)
    memory.legend(loc="lower left", fontsize=8)
    memory.set_title("Memory per node")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_timeline(result: NodeCountResult, path: Path, zoom: float = 8.0) -> None:
    """Top: tasks running on each node over the whole run (mean per second). Bottom: every task of the first
    ``zoom`` seconds as a bar on its node's row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.started
    by_node: dict[str, list[TaskTimes]] = defaultdict(list)
    for t in result.times:
        by_node[t.node_id].append(t)
    order = sorted(by_node)
    end = max(t.end for t in result.times) - t0
    seconds = int(end) + 1
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.2), gridspec_kw={"height_ratios": [1, 1.4]})
    for index, node in enumerate(order):
        busy = [0.0] * seconds
        for t in by_node[node]:
            start, stop = t.start - t0, t.end - t0
            for second in range(int(start), min(int(stop) + 1, seconds)):
                busy[second] += max(0.0, min(stop, second + 1) - max(start, second))
        top.plot(range(seconds), busy, linewidth=0.8, label=f"node {index + 1}")
    top.set_ylim(0, 1.1)
    top.set_xlim(0, end)
    top.set_ylabel("tasks running\n(mean per second)")
    top.set_xlabel("seconds since create_tasks")
    top.legend(loc="lower center", ncol=len(order), fontsize=7)
    top.set_title(f"Task timeline: {result.tasks:,} tasks on {result.nodes} nodes (1 slot each)")
    for row, node in enumerate(order):
        bars = [(t.start - t0, t.end - t.start) for t in sorted(by_node[node], key=lambda t: t.start)]
        bars = [bar for bar in bars if bar[0] < zoom]
        bottom.broken_barh(bars, (row - 0.4, 0.8), facecolors=("tab:blue", "tab:cyan"), linewidth=0)
    bottom.set_xlim(0, zoom)
    bottom.set_yticks(range(len(order)))
    bottom.set_yticklabels([f"node {i + 1} ({len(by_node[n])} tasks)" for i, n in enumerate(order)], fontsize=7)
    bottom.set_xlabel(f"seconds since create_tasks (first {zoom:g} s: one bar per task)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _analysis(results: list[NodeCountResult], cores: int) -> str:
    overhead = [(r.agent_cpu + r.emulator_cpu) / r.tasks for r in results]
    per_task = [r.task_cpu / r.tasks for r in results]
    effs = [r.efficiency(cores) for r in results]
    free = [r.efficiency_on_free_cores(cores) for r in results]
    memory = [max(u for u, _ in r.peak_memory) / 2**20 for r in results]
    return (
        f"Across {results[0].nodes}-{results[-1].nodes} nodes the efficiency stays between {min(effs):.0%} and "
        f"{max(effs):.0%}, and between {min(free):.0%} and {max(free):.0%} on the cores other processes of this "
        "shared machine left free (a lower point goes with their CPU in the table): the tasks are CPU-bound and "
        "every node count already keeps both cores busy, so more "
        "nodes only add processes for the kernel to share the cores between. batchbox's own CPU (agents, their "
        f"process helpers, the emulator) is {min(overhead) * 1e3:.1f}-{max(overhead) * 1e3:.1f} ms per task, "
        f"{min(overhead) / max(per_task):.1%}-{max(overhead) / min(per_task):.1%} of a task's "
        f"{sum(per_task) / len(per_task) * 1e3:.0f} ms; the rest of the gap to the ideal is the tail (the last "
        "tasks finishing on fewer busy slots than cores) and the time between a task's end and the next start on "
        f"its node. A node costs {min(memory):.0f}-{max(memory):.0f} MiB at its peak here (the agent, its process "
        "helper and the running task's `python3`), so memory is not what limits the node count on this machine."
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the plots, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "scale benchmark", repeat=1)
    parser.add_argument("--nodes", default="4,8,16", help="node counts, comma-separated (4,8,16)")
    parser.add_argument("--tasks", type=int, default=2000, help="tasks per node count (2000)")
    parser.add_argument("--cpu", type=float, default=0.2, help="CPU seconds each task burns (0.2)")
    parser.add_argument(
        "--plots", type=Path, default=PLOTS, help="where the PNGs go (bench/plots; written with --no-write only if set)"
    )
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    cores = os.cpu_count() or 1
    load = os.getloadavg()
    command = burn_command(args.cpu)
    results: list[NodeCountResult] = []
    with BenchEmulator("scale") as emu:
        for nodes in counts:
            result = _one_count(emu, nodes, args.tasks, command)
            results.append(result)
            print(
                f"{nodes} nodes: wall {result.wall:.1f} s, task CPU {result.task_cpu:.1f} s "
                f"({result.task_cpu / result.tasks * 1e3:.0f} ms/task), efficiency {result.efficiency(cores):.0%}",
                flush=True,
            )
    load_after = os.getloadavg()
    if not args.no_write or args.plots != PLOTS:
        _plot_scale(results, cores, args.plots / "scale.png")
        timeline_run = next((r for r in results if r.nodes == TARGET_NODES), results[0])
        _plot_timeline(timeline_run, args.plots / "timeline.png")
    rows: list[Row] = []
    for r in results:
        eff = r.efficiency(cores)
        rows.append(
            Row(
                f"**{r.nodes} nodes: efficiency** (ideal / wall)",
                f"{fmt_seconds(r.ideal(cores))} (ideal)",
                f"{fmt_seconds(r.wall)} (wall)",
                f"{eff:.0%}",
                f"≥ {TARGET:.0%}" if r.nodes == TARGET_NODES else "",
                eff >= TARGET if r.nodes == TARGET_NODES else None,
            )
        )
    for r in results:
        n = r.tasks
        rows += [
            Row(
                f"{r.nodes} nodes: other processes' CPU during the run; efficiency on the cores they left free",
                "",
                f"{r.others_cores:.2f} cores; {r.efficiency_on_free_cores(cores):.0%}",
            ),
            Row(
                f"{r.nodes} nodes: CPU per task: task process / agent / emulator",
                "",
                f"{r.task_cpu / n * 1e3:.0f} ms / {r.agent_cpu / n * 1e3:.1f} ms / {r.emulator_cpu / n * 1e3:.1f} ms",
            ),
            Row(
                f"{r.nodes} nodes: memory per node, idle → peak under load (usage; minus page cache)",
                "",
                f"{_mib(sum(u for u, _ in r.idle_memory) / len(r.idle_memory))} → "
                f"{_mib(max(u for u, _ in r.peak_memory))}; "
                f"{_mib(sum(c for _, c in r.idle_memory) / len(r.idle_memory))} → "
                f"{_mib(max(c for _, c in r.peak_memory))}",
            ),
        ]
    target_run = next((r for r in results if r.nodes == TARGET_NODES), None)
    verdict = ""
    if target_run is not None:
        eff = target_run.efficiency(cores)
        verdict = (
            f"Target met: {eff:.0%} of ideal at {TARGET_NODES} nodes."
            if eff >= TARGET
            else f"**Target missed** at {TARGET_NODES} nodes: {eff:.0%} of ideal, {TARGET - eff:.0%} short."
        )
    body = "\n".join(
        [
            f"## 7. Scale: {', '.join(map(str, counts))} node containers, {args.tasks:,} tasks of {args.cpu:g} s CPU",
            "",
            f"Each task is `python3 -c` spinning until its own process CPU time (`time.process_time()`, interpreter "
            f"start-up included) reaches {args.cpu:g} s, so every task costs the same CPU however busy the machine "
            "is. One slot per node: on this 2-core machine 4 nodes already run 4 tasks at once. For each node "
            f"count: a fresh pool, a warm-up job of 2 tasks per node, then the {args.tasks:,} tasks added at once; "
            "wall time = `create_tasks` called → last task's `executionInfo.endTime`. Ideal = the tasks' total CPU "
            f"/ {cores} cores, where the tasks' CPU is measured: the node containers' cgroup v1 `cpuacct.usage` "
            "over the run minus the agents' own CPU (`/proc/<pid>/stat`, the agent and its process helper). "
            "Efficiency = ideal / wall. Memory per "
            "node: the container's cgroup `memory.usage_in_bytes` (and that minus page cache, which is what "
            "`docker stats` shows), the mean idle before the run and the peak sampled every 0.5 s during it. "
            "Baseline: the ideal itself (all task CPU packed onto the cores with no overhead and no idle core).",
            "",
            render_table(rows),
            "",
            "![efficiency and wall time against node count](plots/scale.png)",
            "",
            "![tasks per node over time, 4-node run](plots/timeline.png)",
            "",
            verdict + " " + _analysis(results, cores),
            "",
            provenance(load) + f" Load average after: {load_after[0]:.2f}.",
        ]
    )
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
