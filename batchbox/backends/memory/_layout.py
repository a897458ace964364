"""Where a node's files live and what a task's environment holds, as the README's node contract states them.

A node is a directory laid out like ``/mnt/batch/tasks`` on a Batch node: ``shared/``, ``startup/`` (the start
task, with its ``wd/``), ``fsmounts/`` and ``workitems/<job>/job-1/<task>/`` (a task, with ``stdout.txt``,
``stderr.txt`` and its working directory ``wd/``). Variables: the ``AZ_BATCH_*`` ones, then the job's common
environment settings, then the task's own (the task wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from batchbox.backends.memory._records import NodeRecord
from batchbox.core.models import EnvironmentSetting
from batchbox.core.states import ElevationLevel

__all__ = ["RESERVED_DISK_BYTES", "make_node_dirs", "start_task_environment", "task_dir", "task_environment"]

RESERVED_DISK_BYTES = 1_000_000_000
"""``AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES`` (the value the emulator gives too)."""

_NODE_DIRS = ("shared", "startup/wd", "fsmounts", "workitems")


def make_node_dirs(root: Path) -> None:
    """Create a node's directory tree."""
    for name in _NODE_DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)


def task_dir(node: NodeRecord, job_id: str, task_id: str) -> Path:
    """A task's directory on ``node``."""
    return node.root / "workitems" / job_id / "job-1" / task_id


def _node_environment(account: str, node: NodeRecord) -> dict[str, str]:
    return {
        "AZ_BATCH_ACCOUNT_NAME": account,
        "AZ_BATCH_ACCOUNT_URL": f"memory://{account}",
        "AZ_BATCH_POOL_ID": node.pool_id,
        "AZ_BATCH_NODE_ID": node.id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if node.dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": str(node.root),
        "AZ_BATCH_NODE_SHARED_DIR": str(node.root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(node.root / "startup"),
        "AZ_BATCH_NODE_MOUNTS_DIR": str(node.root / "fsmounts"),
        "AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES": str(RESERVED_DISK_BYTES),
    }


def _with_task_dir(env: dict[str, str], directory: Path, elevation: ElevationLevel) -> dict[str, str]:
    env["AZ_BATCH_TASK_DIR"] = str(directory)
    env["AZ_BATCH_TASK_WORKING_DIR"] = str(directory / "wd")
    env["AZ_BATCH_TASK_USER_IDENTITY"] = "PoolAdmin" if elevation is ElevationLevel.ADMIN else "PoolNonAdmin"
    return env


def _apply(env: dict[str, str], *settings: Iterable[EnvironmentSetting]) -> dict[str, str]:
    for group in settings:
        env.update((item.name, item.value) for item in group)
    return env


def start_task_environment(
    account: str, node: NodeRecord, elevation: ElevationLevel, own: Iterable[EnvironmentSetting]
) -> dict[str, str]:
    """The start task's variables: the node's, its directory, then its own settings."""
    env = _with_task_dir(_node_environment(account, node), node.root / "startup", elevation)
    return _apply(env, own)


def task_environment(
    account: str,
    node: NodeRecord,
    *,
    job_id: str,
    task_id: str,
    directory: Path,
    elevation: ElevationLevel,
    common: Iterable[EnvironmentSetting],
    own: Iterable[EnvironmentSetting],
) -> dict[str, str]:
    """A task's variables: the node's, the task's, the job's common settings, then the task's own."""
    env = _with_task_dir(_node_environment(account, node), directory, elevation)
    env["AZ_BATCH_JOB_ID"] = job_id
    env["AZ_BATCH_TASK_ID"] = task_id
    return _apply(env, common, own)
