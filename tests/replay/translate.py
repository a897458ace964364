"""What changes between a recorded request and the one replayed against the emulator.

The recordings come from Windows pools in a real account; the replay runs on Linux containers of a fresh emulator.
So, for each request:

- command lines: ``cmd /c X`` runs as ``/bin/sh -c X'`` where ``X'`` is X with the few Windows commands the
  recordings use replaced by their POSIX equivalent (``dir /s`` -> ``ls -R``); other command lines stay as recorded;
- retired cloud service pools, VM sizes and images: the emulator refuses them (as Batch does today), so when the
  recording created one, a stand-in pool with the same id, a current Linux ``virtualMachineConfiguration`` (and a
  current size when the recorded one is retired) is created right after, letting the rest of the cassette run (its
  pool configuration is then not compared);
- node ids: a recorded node id is replaced by the emulator node listed at the same position;
- conditional dates: a recorded ``If-Unmodified-Since`` / ``If-Modified-Since`` value is replaced by the emulator's
  ``Last-Modified`` of the exchange that reported that value in the recording.
"""

from __future__ import annotations

import copy
import re
import shlex
from typing import Any

__all__ = [
    "CONDITIONAL_DATE_HEADERS",
    "STANDIN_VM_CONFIGURATION",
    "Translation",
    "cloud_service_standin",
    "posix_command_line",
    "retired_machine_standin",
    "rewrite_command_lines",
]

CONDITIONAL_DATE_HEADERS = ("if-unmodified-since", "if-modified-since")

STANDIN_VM_CONFIGURATION: dict[str, Any] = {
    "imageReference": {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"},
    "nodeAgentSKUId": "batch.node.ubuntu 24.04",
}
"""The configuration of the stand-in for a recorded cloud service pool."""

# Windows commands of the recordings and what does the same on Linux.
_WINDOWS_COMMANDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^dir /s$", re.IGNORECASE), "ls -R"),
    (re.compile(r"^set (\w+)$", re.IGNORECASE), r"env | grep '^\1'"),
    (re.compile(r"^ping 127\.0\.0\.1 -n (\d+)$", re.IGNORECASE), r"sleep \1"),
)
_CMD_PREFIX = re.compile(r"^cmd(?:\.exe)? /c\s+", re.IGNORECASE)
_COMMAND_KEYS = ("commandLine", "coordinationCommandLine")


def _posix(command: str) -> str | None:
    for pattern, replacement in _WINDOWS_COMMANDS:
        if pattern.match(command):
            return pattern.sub(replacement, command)
    return None


def posix_command_line(command_line: str) -> str:
    """The Linux command line for a recorded (Windows) one; unknown commands other than ``cmd /c`` stay as they are."""
    inner = _CMD_PREFIX.sub("", command_line, count=1)
    translated = _posix(inner)
    if inner == command_line and translated is None:
        return command_line
    return f"/bin/sh -c {shlex.quote(translated if translated is not None else inner)}"


def rewrite_command_lines(document: Any) -> Any:
    """A deep copy of a request body with every ``commandLine`` translated by :func:`posix_command_line`."""
    if isinstance(document, dict):
        return {
            key: posix_command_line(value) if key in _COMMAND_KEYS and isinstance(value, str) else
            rewrite_command_lines(value)
            for key, value in document.items()
        }  # fmt: skip
    if isinstance(document, list):
        return [rewrite_command_lines(item) for item in document]
    return document


def cloud_service_standin(body: Any) -> dict[str, Any] | None:
    """For an add-pool body with ``cloudServiceConfiguration``: the same pool on a Linux VM image; else None."""
    if not isinstance(body, dict) or "cloudServiceConfiguration" not in body:
        return None
    standin = copy.deepcopy(body)
    del standin["cloudServiceConfiguration"]
    standin["virtualMachineConfiguration"] = copy.deepcopy(STANDIN_VM_CONFIGURATION)
    return standin


STANDIN_VM_SIZE = "standard_d2s_v3"
"""The size of a stand-in pool whose recorded size Batch has retired."""


def retired_machine_standin(body: Any) -> dict[str, Any] | None:
    """For any add-pool body: the same pool on a current Linux image (and a current size when the recorded one is
    unknown to the emulator's table)."""
    from batchbox.emulator.vm_sizes import lookup_vm_size

    if not isinstance(body, dict):
        return None
    standin = copy.deepcopy(body)
    standin.pop("cloudServiceConfiguration", None)
    vm_configuration = dict(standin.get("virtualMachineConfiguration") or {})
    vm_configuration.update(copy.deepcopy(STANDIN_VM_CONFIGURATION))
    standin["virtualMachineConfiguration"] = vm_configuration
    if lookup_vm_size(str(standin.get("vmSize") or "")) is None:
        standin["vmSize"] = STANDIN_VM_SIZE
    return standin


class Translation:
    """The recorded -> emulator mappings learnt while a cassette is replayed (node ids, conditional dates)."""

    def __init__(self) -> None:
        self.node_ids: dict[str, str] = {}
        self.dates: dict[str, str] = {}
        self.standin_pools: set[str] = set()

    def learn_nodes(self, recorded: Any, replayed: Any) -> None:
        """Pair the node ids of a recorded node list (or node) with the emulator's, position by position."""
        for old, new in zip(_node_ids(recorded), _node_ids(replayed), strict=False):
            self.node_ids.setdefault(old, new)

    def learn_date(self, recorded: str | None, replayed: str | None) -> None:
        """Remember that the recording's ``Last-Modified`` ``recorded`` is ``replayed`` in this run."""
        if recorded and replayed:
            self.dates[recorded] = replayed

    def path(self, path: str) -> str:
        """The request path with recorded node ids replaced."""
        for old, new in self.node_ids.items():
            path = path.replace(old, new)
        return path

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        """Conditional dates mapped to this run's times (unknown ones stay as recorded)."""
        return {
            name: self.dates.get(value, value) if name in CONDITIONAL_DATE_HEADERS else value
            for name, value in headers.items()
        }


def _node_ids(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return []
    items = document.get("value") if isinstance(document.get("value"), list) else [document]
    return [
        str(item["id"]) for item in items if isinstance(item, dict) and str(item.get("id", "")).startswith("tvmps_")
    ]
