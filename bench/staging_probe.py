"""Benchmark 4's probe: Azurite driven by the cheapest blob client we could write (``staging_probe.js``).

The probe shows what Azurite itself allows on this machine, whatever the client: a Node.js script on the standard
``http`` module, with a container SAS (nothing signed per request), keep-alive connections and a fixed number of
requests in flight, which reads the files into memory before its clock starts and discards what it downloads. Its
speed-up over the tutorial's loop bounds what any client, batchbox's included, can reach against this Azurite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["PROBE_SCRIPT", "ProbeError", "ProbeRun", "run_probe"]

PROBE_SCRIPT = Path(__file__).with_name("staging_probe.js")
_TIMEOUT = 300.0


class ProbeError(Exception):
    """The probe could not run, or a transfer of it failed (its message says which)."""


@dataclass(frozen=True)
class ProbeRun:
    """One probe transfer: its own wall clock and CPU (both from inside the Node.js process), and bytes moved."""

    wall: float
    client_cpu: float
    bytes: int
    requests: int


def run_probe(container_url: str, sas: str, mode: Literal["up", "down"], source_dir: Path, in_flight: int) -> ProbeRun:
    """Upload every file of ``source_dir`` to the container, or download them back, ``in_flight`` at a time.

    Raises:
        ProbeError: Node.js is missing, or the probe failed (its one-line message, never the SAS).
    """
    node = shutil.which("node")
    if node is None:
        raise ProbeError("Node.js (`node`) is not on PATH; run `make setup`")
    command = [node, str(PROBE_SCRIPT), container_url, mode, str(source_dir), str(in_flight)]
    environment = {**os.environ, "STAGING_PROBE_SAS": sas}  # not in argv, where a process listing would show it
    done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, check=False, env=environment)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise ProbeError(f"probe {mode} failed: {reason[0].replace(sas, '<SAS>')}")
    answer = json.loads(done.stdout)
    return ProbeRun(float(answer["wall"]), float(answer["cpu"]), int(answer["bytes"]), int(answer["requests"]))
