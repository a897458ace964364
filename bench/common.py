"""Shared helpers of the benchmarks: machine details, statistics, result tables and the RESULTS.md writer.

Every benchmark owns one section of ``bench/RESULTS.md`` between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; :func:`update_section` replaces only that section, so benchmarks can be rerun one at a
time. The machine section (``<!-- bench:machine -->``) is rewritten by every benchmark run.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import platform
import re
import resource
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from batchbox.backends.local.azurite import AzuriteProcess

__all__ = [
    "BENCH_DIR",
    "INVOKED_BY_ENV",
    "REPO",
    "RESULTS_PATH",
    "Row",
    "azurite",
    "base_parser",
    "command_line",
    "fmt_ratio",
    "fmt_seconds",
    "machine_busy_seconds",
    "machine_info",
    "machine_section",
    "median",
    "process_cpu_seconds",
    "provenance",
    "publish",
    "quantile",
    "render_table",
    "self_cpu_seconds",
    "typed_command",
    "update_machine_section",
    "update_section",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
INVOKED_BY_ENV = "BATCHBOX_BENCH_INVOKED_BY"
"""Set by ``bench.run_all`` for its children, so each section records the command the user actually typed."""


# -- statistics -------------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 <= q <= 1) of ``values`` with linear interpolation between order statistics.

    Raises:
        ValueError: ``values`` is empty or ``q`` is outside [0, 1].
    """
    if not values:
        raise ValueError("quantile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (the mean of the two middle ones for an even count)."""
    return quantile(values, 0.5)


def process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid``, from ``/proc``.

    Args:
        pid: the process.
        thread: a thread id of that process to count alone (its main thread has ``thread == pid``); None for
            all its threads.
    """
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine so far, of which stolen by the hypervisor), from ``/proc/stat``.

    Busy = user + nice + system + irq + softirq + steal, summed over all cores.
    """
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, steal / tick


def self_cpu_seconds() -> float:
    """User + system CPU seconds used so far by this process (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fmt_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x"


# -- tables -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a benchmark's result table."""

    metric: str
    baseline: str
    batchbox: str
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    """True/False for a line that carries a target; None for an informational line."""


def render_table(rows: Sequence[Row]) -> str:
    """The Markdown table ``metric | baseline | batchbox | ratio | target | met?``."""
    lines = ["| metric | baseline | batchbox | ratio | target | met? |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for row in rows:
        met = "" if row.met is None else ("**yes**" if row.met else "**NO**")
        cells = [row.metric, row.baseline, row.batchbox, row.ratio, row.target, met]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


# -- machine and provenance -------------------------------------------------------------------------------------


def _run_quiet(args: Sequence[str], timeout: float = 10.0) -> str | None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def _os_name() -> str:
    pretty = ""
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    return f"{pretty or platform.system()} (kernel {platform.release()}, {platform.machine()})"


def _azurite_version() -> str:
    package = REPO / "node_modules" / "azurite" / "package.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return str(json.loads(package.read_text())["version"])
    return "not installed"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python, Docker engine, Node.js, Azurite and azure-storage-blob versions."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    docker = _run_quiet(["docker", "version", "--format", "{{.Server.Version}}"])
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical ({affinity} usable by this process)",
        "memory": _memory_total(),
        "OS": _os_name(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Docker engine": docker or "not reachable",
        "Node.js": _run_quiet(["node", "--version"]) or "not installed",
        "Azurite": _azurite_version(),
        "azure-storage-blob": _package_version("azure-storage-blob"),
        "load average at start (1, 5, 15 min)": load,
    }


def machine_section(info: dict[str, str] | None = None) -> str:
    """The body of the machine section: a two-column table of :func:`machine_info`."""
    info = info if info is not None else machine_info()
    lines = ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    lines += [
        "",
        f"_Written by the last benchmark run ({_now()}). Each benchmark section repeats the CPU, core count and "
        "load average it was measured with._",
    ]
    return "\n".join(lines)


def typed_command() -> str:
    """This process's command line as typed (``.venv/bin/python -m bench.X ARGS``), the repository path cut."""
    argv = list(getattr(sys, "orig_argv", sys.argv))
    if argv and Path(argv[0]).is_absolute():
        with contextlib.suppress(ValueError):
            argv[0] = str(Path(argv[0]).relative_to(REPO))
    return shlex.join(argv)


def command_line() -> str:
    """The command that produced the numbers, in backticks, with the runner that started it if any."""
    parent = os.environ.get(INVOKED_BY_ENV)
    return f"`{typed_command()}` (run by `{parent}`)" if parent else f"`{typed_command()}`"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _git_revision() -> str:
    revision = _run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = _run_quiet(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return f"{revision}{' + uncommitted changes' if dirty else ''}"


def provenance(load_before: tuple[float, float, float] | None = None) -> str:
    """One paragraph: when, on what, at which revision and with which command the numbers were produced."""
    load = load_before or (os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3)
    return (
        f"Measured {_now()} at git {_git_revision()} on {_cpu_model()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} before the run. Command: {command_line()}."
    )


# -- RESULTS.md -------------------------------------------------------------------------------------------------


def _markers(name: str) -> tuple[str, str]:
    if not re.fullmatch(r"[a-z0-9_-]+", name):
        raise ValueError(f"bad section name {name!r}")
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialize writers of ``path`` (benchmarks may run at the same time)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"batchbox-bench-{digest}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_section(name: str, body: str, path: Path = RESULTS_PATH) -> None:
    """Replace the text between the markers of section ``name`` by ``body``; append the section if it is missing.

    Args:
        name: section name (``staging``, ``topn``, ...): lower-case letters, digits, ``-`` and ``_``.
        body: Markdown, normally starting with a ``##`` heading.
        path: the results file.
    """
    start, end = _markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    with _locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else "# batchbox benchmark results\n"
        begin = text.find(start)
        finish = text.find(end, begin + len(start)) if begin >= 0 else -1
        if begin >= 0 and finish >= 0:
            text = text[:begin] + block + text[finish + len(end) :]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, mode)  # mkstemp makes 0600 files
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)


def update_machine_section(path: Path = RESULTS_PATH) -> None:
    """Rewrite the machine section from :func:`machine_info`."""
    update_section("machine", machine_section(), path)


def publish(section: str, body: str, *, write: bool) -> None:
    """Print a benchmark's section and, unless ``write`` is False, store it and the machine section."""
    print(body)
    if write:
        update_machine_section()
        update_section(section, body)


# -- Azurite ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def azurite(state_dir: Path | None = None, *, in_memory: bool = False) -> Iterator[AzuriteProcess]:
    """A fresh Azurite blob service on a free loopback port, ended by its PID on exit.

    Args:
        state_dir: where its data and log go; a temporary directory (deleted afterwards) when None.
        in_memory: keep blobs in memory instead of on disk (the local stack uses disk).
    """
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="batchbox-bench-azurite-")))
        process = AzuriteProcess(state_dir, port=0, in_memory=in_memory)
        process.start()
        stack.callback(process.stop)
        yield process


# -- command line -----------------------------------------------------------------------------------------------


def base_parser(description: str, *, repeat: int = 3) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark has: ``--repeat`` and ``--no-write``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=repeat, help=f"runs per measurement (default {repeat})")
    parser.add_argument("--no-write", action="store_true", help="print the results, leave bench/RESULTS.md alone")
    return parser
