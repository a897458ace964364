"""What the agent remembers across its own restarts, in a small JSON file under the node root.

Only the start task's completion is kept: after a restart the agent answers ``startTaskState: completed`` when
it registers and does not run the start task again. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["STATE_FILE", "load_completed_start_task", "save_completed_start_task"]

STATE_FILE = "agent-state.json"


def load_completed_start_task(node_root: str) -> dict[str, Any] | None:
    """The recorded start task completion (``assignmentId``, ``result``, ``exitCode``), or None."""
    try:
        with open(os.path.join(node_root, STATE_FILE), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    start_task = state.get("startTask") if isinstance(state, dict) else None
    if isinstance(start_task, dict) and start_task.get("state") == "completed":
        return start_task
    return None


def save_completed_start_task(node_root: str, assignment_id: str | None, result: str, exit_code: int | None) -> None:
    """Record that the start task completed (written atomically).

    Raises:
        OSError: the file could not be written.
    """
    path = os.path.join(node_root, STATE_FILE)
    record = {"state": "completed", "assignmentId": assignment_id, "result": result, "exitCode": exit_code}
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump({"startTask": record}, f)
    os.replace(path + ".partial", path)
