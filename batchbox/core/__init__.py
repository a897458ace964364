"""batchbox's SDK-free core: Batch-shaped models, backend contracts, errors and the workflow.

Everything a workload and its runner import is here: ``from batchbox.core import TaskSpec, Workload, Workflow``.
"""

from batchbox.core.backend import Backend, open_backend
from batchbox.core.compute import AddTasksResult, ComputeBackend
from batchbox.core.errors import (
    AuthenticationError,
    BackendUnavailableError,
    BatchboxError,
    ConfigurationError,
    InvalidRequestError,
    ResourceError,
    ResourceExistsError,
    ResourceNotFoundError,
    StartTaskFailedError,
    TaskFailedError,
    WaitTimeoutError,
)
from batchbox.core.ids import validate_id
from batchbox.core.models import (
    ComputeNodeInfo,
    EnvironmentSetting,
    FailureInfo,
    ImageReference,
    JobConstraints,
    JobSpec,
    OutputFile,
    PoolInfo,
    PoolSpec,
    ResourceFile,
    StartTask,
    TaskConstraints,
    TaskCounts,
    TaskInfo,
    TaskSpec,
)
from batchbox.core.reporting import LogReporter, Reporter
from batchbox.core.results import FailedTask, RunResult
from batchbox.core.settings import Settings, load_settings
from batchbox.core.states import (
    AllocationState,
    ComputeNodeState,
    ElevationLevel,
    JobState,
    NodeFillType,
    OnAllTasksComplete,
    OutputFileUploadCondition,
    PoolState,
    StartTaskState,
    TaskExecutionResult,
    TaskState,
)
from batchbox.core.storage import BlobInfo, ContainerPermission, StorageBackend, UploadItem, validate_container_name
from batchbox.core.workflow import RunOptions, Workflow
from batchbox.core.workload import ContainerNames, StagedFiles, Workload

__all__ = [
    "AddTasksResult",
    "AllocationState",
    "AuthenticationError",
    "Backend",
    "BackendUnavailableError",
    "BatchboxError",
    "BlobInfo",
    "ComputeBackend",
    "ComputeNodeInfo",
    "ComputeNodeState",
    "ConfigurationError",
    "ContainerNames",
    "ContainerPermission",
    "ElevationLevel",
    "EnvironmentSetting",
    "FailedTask",
    "FailureInfo",
    "ImageReference",
    "InvalidRequestError",
    "JobConstraints",
    "JobSpec",
    "JobState",
    "LogReporter",
    "NodeFillType",
    "OnAllTasksComplete",
    "OutputFile",
    "OutputFileUploadCondition",
    "PoolInfo",
    "PoolSpec",
    "PoolState",
    "Reporter",
    "ResourceError",
    "ResourceExistsError",
    "ResourceFile",
    "ResourceNotFoundError",
    "RunOptions",
    "RunResult",
    "Settings",
    "StagedFiles",
    "StartTask",
    "StartTaskFailedError",
    "StartTaskState",
    "StorageBackend",
    "TaskConstraints",
    "TaskCounts",
    "TaskExecutionResult",
    "TaskFailedError",
    "TaskInfo",
    "TaskSpec",
    "TaskState",
    "UploadItem",
    "WaitTimeoutError",
    "Workflow",
    "Workload",
    "load_settings",
    "open_backend",
    "validate_container_name",
    "validate_id",
]
