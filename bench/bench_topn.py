"""Benchmark 5, the top-N task on a 200 MB text: throughput and peak memory against the tutorial's one-liner.

Baseline: ``Counter(w.strip(string.punctuation) for w in open(f).read().split())`` as a ``python -c`` script.
batchbox: ``python3 batchbox/node/tasks/topn.py --filepath big.txt --numwords 3`` in a temporary directory. Each
side runs in its own child process, started the same way with the same interpreter; its wall time, CPU time and
peak RSS come from ``os.wait4`` on that child alone, forked from a small helper (see :data:`_MEASURE`). The text
is generated from a fixed seed (Zipf-distributed words from a vocabulary with punctuation and non-ASCII letters)
into a temporary directory and deleted afterwards. Both sides must report the same top words and token total, or
the benchmark fails.

Run: ``.venv/bin/python -m bench.bench_topn [--repeat 3] [--size-mb 200] [--no-write]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

from bench.common import (
    REPO,
    Row,
    base_parser,
    fmt_ratio,
    fmt_seconds,
    median,
    provenance,
    publish,
    render_table,
)

__all__ = ["BASELINE_SCRIPT", "ChildRun", "generate_text", "main", "run_child"]

SECTION = "topn"
TOPN_SCRIPT = REPO / "batchbox" / "node" / "tasks" / "topn.py"
SIZE_MB = 200
SEED = 1_867_530
VOCABULARY = 4000
NUMWORDS = 3
THROUGHPUT_TARGET = 1.0
MEMORY_TARGET = 0.25

BASELINE_SCRIPT = f"""\
import json, string, sys
from collections import Counter
f = sys.argv[1]
c = Counter(w.strip(string.punctuation) for w in open(f).read().split())
top = [(w, n) for w, n in c.most_common({NUMWORDS + 1}) if w][:{NUMWORDS}]
print(json.dumps({{"top": top, "tokens": sum(c.values())}}))
"""
"""The tutorial's counting as a ``python -c`` script. It also prints the top words (minus the empty string, which
the tutorial counts and topn.py drops on purpose) and the token total, so the two sides can be compared."""

_LETTERS = string.ascii_lowercase * 3 + "éèàüöäßñçøåœ"  # mostly ASCII, some Latin-1 and Latin Extended letters
_FOREIGN = ["straße", "façade", "naïve", "smörgåsbord", "déjà", "ελληνικά", "русский", "日本語", "中文", "한국어"]
_FORMS = [  # (template, weight): how a word appears in the text
    ("{}", 80),
    ("{},", 7),
    ("{}.", 6),
    ("{};", 1),
    ("{}:", 1),
    ("{}!", 1),
    ("{}?", 1),
    ('"{}"', 1),
    ("({})", 1),
    ("'{}'", 1),
    ("{}'s", 1),
    ("{}—", 1),  # an em dash is not ASCII punctuation: it stays part of the word
]


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set(_FOREIGN)
    while len(words) < size:
        words.add("".join(rng.choices(_LETTERS, k=rng.randint(2, 11))))
    ordered = sorted(words)
    rng.shuffle(ordered)
    return ordered


def generate_text(path: Path, size_bytes: int, seed: int = SEED) -> int:
    """Write at least ``size_bytes`` of deterministic UTF-8 text to ``path``; return the exact byte count.

    Words follow a Zipf law over a vocabulary of :data:`VOCABULARY` words; some carry ASCII punctuation, a few
    tokens are punctuation only (``...``, ``--``); lines hold 4 to 20 tokens.
    """
    rng = random.Random(seed)
    words = _vocabulary(rng, VOCABULARY)
    tokens: list[str] = ["...", "--"]
    weights: list[float] = [0.001, 0.001]
    for rank, word in enumerate(words, start=1):
        for template, weight in _FORMS:
            tokens.append(template.format(word))
            weights.append(weight / rank**1.05)
    cumulative = list(accumulate(weights))
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            batch = rng.choices(tokens, cum_weights=cumulative, k=200_000)
            lines, i = [], 0
            while i < len(batch):
                step = rng.randint(4, 20)
                lines.append(" ".join(batch[i : i + step]))
                i += step
            chunk = ("\n".join(lines) + "\n").encode("utf-8")
            f.write(chunk)
            written += len(chunk)
    return written


@dataclass(frozen=True)
class ChildRun:
    """What one child process cost and printed."""

    wall: float
    cpu: float
    max_rss_bytes: int
    stdout: str


_MEASURE = """\
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
print(json.dumps([wall, code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss]))
"""
"""Runs ``argv[1:]`` in a forked child and prints its wall time, exit code, CPU seconds and ``ru_maxrss`` (KiB).

On Linux a process's ``ru_maxrss`` starts at the resident size of the process it was forked (or vforked) from:
measured straight from this benchmark, a child would report at least the benchmark's own RSS (``/bin/true``
shows ~300 MB under a 300 MB parent). This helper, a bare ``python -S``, is forked from instead: what it passes
on (~6 MB, what ``/bin/true`` then shows) is below any Python process's own peak."""


def run_child(args: list[str], cwd: Path, env: dict[str, str]) -> ChildRun:
    """Run ``args`` to completion and measure it alone (see :data:`_MEASURE`).

    Raises:
        RuntimeError: the child exited with a non-zero code.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(
            [sys.executable, "-S", "-c", _MEASURE, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            check=False,
        )
        out.seek(0)
        err.seek(0)
        lines, stderr = out.read().decode().splitlines(), err.read().decode(errors="replace")
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"measuring {args[:3]} failed ({done.returncode}): {stderr.strip()[-500:]}")
    wall, code, cpu, max_rss_kib = json.loads(lines[-1])
    if code != 0:
        raise RuntimeError(f"{args[:3]} exited with {code}: {stderr.strip()[-500:]}")
    return ChildRun(float(wall), float(cpu), int(max_rss_kib) * 1024, "\n".join(lines[:-1]))


def _parse_report(report: str) -> list[tuple[str, int]]:
    """The ``word:<TAB>count`` lines between the two dashed lines of topn.py's report."""
    body = report.split("-" * 30)[1]
    top = []
    for line in body.strip("\n").splitlines():
        word, _, count = line.rpartition(":\t")
        top.append((word, int(count)))
    return top


class TopNRunner:
    """Runs either side on one input file and checks that both agree."""

    def __init__(self, text: Path, work: Path) -> None:
        self.text = text
        self.work = work
        self.env = {**os.environ, "PYTHONUTF8": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        self.env = {k: v for k, v in self.env.items() if not k.startswith("AZ_BATCH_")}
        self.expected: dict[str, object] | None = None

    def baseline(self) -> ChildRun:
        run = run_child([sys.executable, "-c", BASELINE_SCRIPT, str(self.text)], self.work, self.env)
        result = json.loads(run.stdout)
        self._check("baseline", [(str(word), int(count)) for word, count in result["top"]], int(result["tokens"]))
        return run

    def batchbox(self) -> ChildRun:
        args = [sys.executable, str(TOPN_SCRIPT), "--filepath", str(self.text), "--numwords", str(NUMWORDS)]
        run = run_child(args, self.work, self.env)
        report = self.work / f"{self.text.stem}_OUTPUT{self.text.suffix}"
        top = _parse_report(report.read_text(encoding="utf-8"))
        report.unlink()
        tokens = int(run.stdout.rsplit(" from ", 1)[1].split()[0])  # "<out>: 3 words from N tokens"
        self._check("batchbox", top, tokens)
        return run

    def _check(self, side: str, top: list[tuple[str, int]], tokens: int) -> None:
        result = {"top": [list(x) for x in top], "tokens": tokens}
        if len(top) != NUMWORDS:
            raise RuntimeError(f"{side} reported {len(top)} words, expected {NUMWORDS}")
        if self.expected is None:
            self.expected = result
        elif result != self.expected:
            raise RuntimeError(f"{side} disagrees: {result} != {self.expected}")


@dataclass
class Side:
    runs: list[ChildRun] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return median([float(getattr(run, attribute)) for run in self.runs])


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "top-N benchmark")
    parser.add_argument("--size-mb", type=int, default=SIZE_MB, help=f"size of the text in MB of 10^6 ({SIZE_MB})")
    parser.add_argument("--keep-dir", type=Path, help="generate the text here and keep it (default: a temp dir)")
    return parser.parse_args(argv)


def _interpreter() -> str:
    try:
        return str(Path(sys.executable).relative_to(REPO))
    except ValueError:
        return sys.executable


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and (unless ``--no-write``) update bench/RESULTS.md."""
    args = _parse_args(argv)
    load = os.getloadavg()
    sides = {"baseline": Side(), "batchbox": Side()}
    with tempfile.TemporaryDirectory(prefix="batchbox-bench-topn-") as tmp:
        directory = args.keep_dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        text = directory / "big.txt"
        started = time.perf_counter()
        if not (args.keep_dir and text.is_file()):
            generate_text(text, args.size_mb * 1_000_000)
        size = text.stat().st_size
        print(f"text: {size:,} bytes in {time.perf_counter() - started:.1f} s", flush=True)
        work = Path(tmp) / "cwd"
        work.mkdir()
        runner = TopNRunner(text, work)
        runner.batchbox()  # warm-up: page cache, and the reference answer for both sides
        for rep in range(args.repeat):
            order = ["baseline", "batchbox"] if rep % 2 == 0 else ["batchbox", "baseline"]
            for name in order:
                run = runner.baseline() if name == "baseline" else runner.batchbox()
                sides[name].runs.append(run)
                print(
                    f"run {rep + 1}: {name:8s} {fmt_seconds(run.wall)}, cpu {run.cpu:.2f} s, "
                    f"peak RSS {_mb(run.max_rss_bytes)}",
                    flush=True,
                )
        expected = runner.expected
        tiny = work / "one-line.txt"
        tiny.write_text("the quick brown fox jumps over the lazy dog\n", encoding="utf-8")
        floor = {"baseline": TopNRunner(tiny, work).baseline(), "batchbox": TopNRunner(tiny, work).batchbox()}
    load_after = os.getloadavg()
    base, bbx = sides["baseline"], sides["batchbox"]
    throughput = {name: size / side.median("wall") for name, side in sides.items()}
    speed = throughput["batchbox"] / throughput["baseline"]
    memory = bbx.median("max_rss_bytes") / base.median("max_rss_bytes")
    rows = [
        Row(
            "**throughput** (file bytes / median wall time of the process)",
            f"{throughput['baseline'] / 1e6:.1f} MB/s",
            f"{throughput['batchbox'] / 1e6:.1f} MB/s",
            fmt_ratio(speed),
            f"≥ {THROUGHPUT_TARGET:.1f}x",
            speed >= THROUGHPUT_TARGET,
        ),
        Row(
            "**peak memory** (median max RSS of the process)",
            _mb(base.median("max_rss_bytes")),
            _mb(bbx.median("max_rss_bytes")),
            fmt_ratio(memory),
            f"≤ {MEMORY_TARGET:.2f}x",
            memory <= MEMORY_TARGET,
        ),
        Row(
            "peak memory on a one-line file (interpreter and imports)",
            _mb(floor["baseline"].max_rss_bytes),
            _mb(floor["batchbox"].max_rss_bytes),
        ),
        Row(
            "wall time (median)",
            fmt_seconds(base.median("wall")),
            fmt_seconds(bbx.median("wall")),
            fmt_ratio(base.median("wall") / bbx.median("wall")),
        ),
        Row(
            "CPU time, user + system (median)",
            fmt_seconds(base.median("cpu")),
            fmt_seconds(bbx.median("cpu")),
            fmt_ratio(base.median("cpu") / bbx.median("cpu")),
        ),
    ]
    runs = "; ".join(
        f"{name} " + ", ".join(f"{r.wall:.2f} s / {r.max_rss_bytes / 1e6:.0f} MB" for r in side.runs)
        for name, side in sides.items()
    )
    met = speed >= THROUGHPUT_TARGET and memory <= MEMORY_TARGET
    verdict = "Both targets met" if met else "**Target missed**"
    body = "\n".join(
        [
            f"## 5. Top-N task on a {args.size_mb} MB text",
            "",
            "Baseline: the tutorial's `Counter(w.strip(string.punctuation) for w in open(f).read().split())` as a "
            "`python -c` script. batchbox: `python3 batchbox/node/tasks/topn.py --filepath big.txt --numwords 3` "
            "(streams the file in 1 MiB chunks). Both run as child processes of the same interpreter "
            f"(`{_interpreter()}`, Python {sys.version.split()[0]}, `PYTHONUTF8=1`); wall time, CPU and "
            "peak RSS are those of the child alone (`os.wait4` in a small helper process it is forked from, so "
            "that the benchmark's own memory does not leak into `ru_maxrss`), interpreter start-up included. "
            f"Input: {size:,} bytes of seeded random text (Zipf over {VOCABULARY:,} words, ASCII punctuation "
            "attached to ~20% of tokens, some non-ASCII words), generated into a temporary directory and deleted "
            f"afterwards; read once before timing so both sides read from the page cache. {args.repeat} runs of "
            "each, alternating order; medians shown. Both sides reported the same top words and token total: "
            f"`{json.dumps(expected, ensure_ascii=False)}`.",
            "",
            render_table(rows),
            "",
            f"Every run (wall / peak RSS): {runs}.",
            "",
            f"{verdict}: topn.py counts at {speed:.2f}x the one-liner's throughput in {memory:.3f}x its peak "
            "memory. The one-liner holds the whole file as one string plus a list of every token before counting, "
            "so its peak grows with the file; topn.py holds one 1 MiB chunk, that chunk's tokens and the "
            "vocabulary, so its peak does not grow with the file (the one-line file's line shows its fixed part). "
            "The two "
            "spend their CPU on the same steps (UTF-8 decoding, `str.split`, hashing every token into the "
            "`Counter`), which is why the throughput margin is modest: the CPU line is the steadier comparison "
            "on a shared machine.",
            "",
            provenance(load) + f" Load average after: {load_after[0]:.2f}.",
        ]
    )
    publish(SECTION, body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
