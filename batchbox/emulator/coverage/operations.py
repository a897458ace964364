"""Every operation of the Azure Batch data-plane API, as the service and the azure-batch 15.x SDK name them.

This table is the emulator's list of what a Batch client may ask for. Whether an operation is served is not written
here: ``batchbox.emulator.coverage.report`` reads it off the route table, so the two cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OPERATIONS", "RETIRED_OPERATIONS", "Operation", "match_operation"]


@dataclass(frozen=True)
class Operation:
    """One data-plane operation.

    Attributes:
        method: the HTTP method.
        path: the path template of api-version 2025-06-01 (``{poolId}``-style parameters).
        sdk_method: the ``azure.batch.BatchClient`` method that calls it (``begin_`` for long-running ones).
        area: the group it is listed under (``pools``, ``nodes``, ``jobs``, ...).
    """

    method: str
    path: str
    sdk_method: str
    area: str


def _ops(area: str, *rows: tuple[str, str, str]) -> tuple[Operation, ...]:
    return tuple(Operation(method, path, sdk, area) for method, path, sdk in rows)


OPERATIONS: tuple[Operation, ...] = (
    *_ops(
        "account",
        ("GET", "/applications", "list_applications"),
        ("GET", "/applications/{applicationId}", "get_application"),
        ("GET", "/poolusagemetrics", "list_pool_usage_metrics"),
        ("GET", "/supportedimages", "list_supported_images"),
        ("GET", "/nodecounts", "list_pool_node_counts"),
    ),
    *_ops(
        "pools",
        ("POST", "/pools", "create_pool"),
        ("GET", "/pools", "list_pools"),
        ("DELETE", "/pools/{poolId}", "begin_delete_pool"),
        ("HEAD", "/pools/{poolId}", "pool_exists"),
        ("GET", "/pools/{poolId}", "get_pool"),
        ("PATCH", "/pools/{poolId}", "update_pool"),
        ("POST", "/pools/{poolId}/disableautoscale", "disable_pool_auto_scale"),
        ("POST", "/pools/{poolId}/enableautoscale", "enable_pool_auto_scale"),
        ("POST", "/pools/{poolId}/evaluateautoscale", "evaluate_pool_auto_scale"),
        ("POST", "/pools/{poolId}/resize", "begin_resize_pool"),
        ("POST", "/pools/{poolId}/stopresize", "begin_stop_pool_resize"),
        ("POST", "/pools/{poolId}/updateproperties", "replace_pool_properties"),
        ("POST", "/pools/{poolId}/removenodes", "begin_remove_nodes"),
    ),
    *_ops(
        "nodes",
        ("GET", "/pools/{poolId}/nodes", "list_nodes"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}", "get_node"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/users", "create_node_user"),
        ("DELETE", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "delete_node_user"),
        ("PUT", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "replace_node_user"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/reboot", "begin_reboot_node"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/start", "begin_start_node"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/reimage", "begin_reimage_node"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/deallocate", "begin_deallocate_node"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/disablescheduling", "disable_node_scheduling"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/enablescheduling", "enable_node_scheduling"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}/remoteloginsettings", "get_node_remote_login_settings"),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/uploadbatchservicelogs", "upload_node_logs"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}/extensions/{extensionName}", "get_node_extension"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}/extensions", "list_node_extensions"),
        ("DELETE", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "delete_node_file"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "download_node_file"),
        ("HEAD", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "get_node_file_properties"),
        ("GET", "/pools/{poolId}/nodes/{nodeId}/files", "list_node_files"),
    ),
    *_ops(
        "jobs",
        ("POST", "/jobs", "create_job"),
        ("GET", "/jobs", "list_jobs"),
        ("DELETE", "/jobs/{jobId}", "begin_delete_job"),
        ("GET", "/jobs/{jobId}", "get_job"),
        ("PATCH", "/jobs/{jobId}", "update_job"),
        ("PUT", "/jobs/{jobId}", "replace_job"),
        ("POST", "/jobs/{jobId}/disable", "begin_disable_job"),
        ("POST", "/jobs/{jobId}/enable", "begin_enable_job"),
        ("POST", "/jobs/{jobId}/terminate", "begin_terminate_job"),
        ("GET", "/jobs/{jobId}/jobpreparationandreleasetaskstatus", "list_job_preparation_and_release_task_status"),
        ("GET", "/jobs/{jobId}/taskcounts", "get_job_task_counts"),
    ),
    *_ops(
        "job schedules",
        ("POST", "/jobschedules", "create_job_schedule"),
        ("GET", "/jobschedules", "list_job_schedules"),
        ("HEAD", "/jobschedules/{jobScheduleId}", "job_schedule_exists"),
        ("DELETE", "/jobschedules/{jobScheduleId}", "begin_delete_job_schedule"),
        ("GET", "/jobschedules/{jobScheduleId}", "get_job_schedule"),
        ("PATCH", "/jobschedules/{jobScheduleId}", "update_job_schedule"),
        ("PUT", "/jobschedules/{jobScheduleId}", "replace_job_schedule"),
        ("POST", "/jobschedules/{jobScheduleId}/disable", "disable_job_schedule"),
        ("POST", "/jobschedules/{jobScheduleId}/enable", "enable_job_schedule"),
        ("POST", "/jobschedules/{jobScheduleId}/terminate", "begin_terminate_job_schedule"),
        ("GET", "/jobschedules/{jobScheduleId}/jobs", "list_jobs_from_schedule"),
    ),
    *_ops(
        "tasks",
        ("POST", "/jobs/{jobId}/tasks", "create_task"),
        ("GET", "/jobs/{jobId}/tasks", "list_tasks"),
        ("POST", "/jobs/{jobId}/addtaskcollection", "create_task_collection"),
        ("DELETE", "/jobs/{jobId}/tasks/{taskId}", "delete_task"),
        ("GET", "/jobs/{jobId}/tasks/{taskId}", "get_task"),
        ("PUT", "/jobs/{jobId}/tasks/{taskId}", "replace_task"),
        ("GET", "/jobs/{jobId}/tasks/{taskId}/subtasksinfo", "list_subtasks"),
        ("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "terminate_task"),
        ("POST", "/jobs/{jobId}/tasks/{taskId}/reactivate", "reactivate_task"),
        ("DELETE", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "delete_task_file"),
        ("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "download_task_file"),
        ("HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "get_task_file_properties"),
        ("GET", "/jobs/{jobId}/tasks/{taskId}/files", "list_task_files"),
    ),
)
"""The data-plane operations of api-version 2025-06-01, grouped by area."""

RETIRED_OPERATIONS: tuple[Operation, ...] = _ops(
    "certificates (retired 2024)",
    ("POST", "/certificates", "add (14.x certificate.add)"),
    ("GET", "/certificates", "list (14.x certificate.list)"),
    ("GET", "/certificates(thumbprintAlgorithm={algorithm},thumbprint={thumbprint})", "get (14.x certificate.get)"),
    ("DELETE", "/certificates(thumbprintAlgorithm={algorithm},thumbprint={thumbprint})", "delete (14.x)"),
    (
        "POST",
        "/certificates(thumbprintAlgorithm={algorithm},thumbprint={thumbprint})/canceldelete",
        "cancel_deletion (14.x)",
    ),
)
"""Operations of older api-versions for features Batch has retired; the emulator answers them as refused."""


def _template_pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", path)
    regex = "".join(
        ("(.+)" if part == "{filePath}" else "([^/]+)") if part.startswith("{") else re.escape(part) for part in parts
    )
    return re.compile(f"^{regex}/?$", re.IGNORECASE)


_PATTERNS = tuple((op, _template_pattern(op.path)) for op in (*OPERATIONS, *RETIRED_OPERATIONS))


def match_operation(method: str, path: str) -> Operation | None:
    """The operation (current or retired) a request asks for, by method and path; ``None`` when it names none."""
    for op, pattern in _PATTERNS:
        if op.method == method and pattern.match(path):
            return op
    return None
