"""Batch state names, spelled exactly as the Batch REST API spells them."""

from __future__ import annotations

from enum import Enum

__all__ = [
    "AllocationState",
    "ComputeNodeState",
    "ElevationLevel",
    "JobState",
    "NodeFillType",
    "OnAllTasksComplete",
    "OutputFileUploadCondition",
    "PoolState",
    "StartTaskState",
    "TaskExecutionResult",
    "TaskState",
]


class _BatchEnum(str, Enum):
    def __str__(self) -> str:
        return str(self.value)


class TaskState(_BatchEnum):
    """Lifecycle of a task: active -> preparing -> running -> completed."""

    ACTIVE = "active"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"


class TaskExecutionResult(_BatchEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class StartTaskState(_BatchEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class ComputeNodeState(_BatchEnum):
    """States of a compute node; the subset batchbox's emulator produces is documented in the README."""

    IDLE = "idle"
    REBOOTING = "rebooting"
    REIMAGING = "reimaging"
    RUNNING = "running"
    UNUSABLE = "unusable"
    CREATING = "creating"
    STARTING = "starting"
    WAITING_FOR_START_TASK = "waitingforstarttask"
    START_TASK_FAILED = "starttaskfailed"
    UNKNOWN = "unknown"
    LEAVING_POOL = "leavingpool"
    OFFLINE = "offline"
    PREEMPTED = "preempted"
    UPGRADING_OS = "upgradingos"
    DEALLOCATED = "deallocated"
    DEALLOCATING = "deallocating"

    @property
    def is_usable(self) -> bool:
        """True when the node can run tasks now."""
        return self in (ComputeNodeState.IDLE, ComputeNodeState.RUNNING)

    @property
    def is_settled(self) -> bool:
        """True when the node will not become usable without outside action."""
        return self in (
            ComputeNodeState.IDLE,
            ComputeNodeState.RUNNING,
            ComputeNodeState.START_TASK_FAILED,
            ComputeNodeState.UNUSABLE,
            ComputeNodeState.OFFLINE,
            ComputeNodeState.PREEMPTED,
        )


class PoolState(_BatchEnum):
    ACTIVE = "active"
    DELETING = "deleting"


class AllocationState(_BatchEnum):
    STEADY = "steady"
    RESIZING = "resizing"
    STOPPING = "stopping"


class JobState(_BatchEnum):
    ACTIVE = "active"
    DISABLING = "disabling"
    DISABLED = "disabled"
    ENABLING = "enabling"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    DELETING = "deleting"


class OnAllTasksComplete(_BatchEnum):
    NO_ACTION = "noaction"
    TERMINATE_JOB = "terminatejob"


class NodeFillType(_BatchEnum):
    SPREAD = "spread"
    PACK = "pack"


class ElevationLevel(_BatchEnum):
    NON_ADMIN = "nonadmin"
    ADMIN = "admin"


class OutputFileUploadCondition(_BatchEnum):
    TASK_SUCCESS = "tasksuccess"
    TASK_FAILURE = "taskfailure"
    TASK_COMPLETION = "taskcompletion"
