"""What a node needs to run one task: its directory, its ``AZ_BATCH_*`` environment and the Assignment JSON.

Paths follow the Linux node layout of Batch (``/mnt/batch/tasks`` with ``shared``, ``startup``, ``fsmounts`` and
``workitems/<job>/job-1/<task>/wd``; a job's preparation and release tasks have theirs under their own ids, and
every task of a job with a preparation task gets ``AZ_BATCH_JOB_PREP_DIR`` / ``AZ_BATCH_JOB_PREP_WORKING_DIR``).
A task whose ``authenticationTokenSettings`` ask for ``job`` access gets ``AZ_BATCH_AUTHENTICATION_TOKEN``
(``job_tokens``). Precedence of variables: the Batch-defined ones, then the job's ``commonEnvironmentSettings``, then
the task's own ``environmentSettings`` (the task wins).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from batchbox.emulator.clock import duration_seconds
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.job_tokens import mint_job_token
from batchbox.emulator.node_layout import NODE_ROOT, START_TASK_DIR, task_dir
from batchbox.emulator.runtime.container_payload import container_fields
from batchbox.emulator.runtime.model import JobRuntime

__all__ = [
    "NODE_ROOT",
    "RESERVED_DISK_BYTES",
    "START_TASK_DIR",
    "job_environment",
    "job_environment_doc",
    "named_user",
    "node_environment",
    "package_references",
    "start_task_assignment",
    "start_task_assignment_id",
    "task_assignment",
    "task_dir",
    "user_identity",
]

RESERVED_DISK_BYTES = 1_000_000_000
_AGENT_USERS = {"admin": "root", "nonadmin": "batchuser"}


def start_task_assignment_id(node_id: str) -> str:
    """The assignment id of a node's start task (the agent applies the retries, so there is one id)."""
    return f"starttask:{node_id}"


def user_identity(spec: object, pool_doc: Mapping[str, Any] | None) -> tuple[str, str]:
    """The elevation level and the identity name (``AZ_BATCH_TASK_USER_IDENTITY``) of a REST ``userIdentity``.

    Args:
        spec: the ``userIdentity`` object (``autoUser{scope, elevationLevel}`` or ``username``), or ``None``.
        pool_doc: the pool document, whose ``userAccounts`` give a named user's elevation level.

    Returns:
        ``(elevation, identity)``, e.g. ``("nonadmin", "PoolNonAdmin")`` for the default auto user.
    """
    if isinstance(spec, Mapping):
        username = spec.get("username")
        if isinstance(username, str) and username:
            elevation = "nonadmin"
            for account in (pool_doc or {}).get("userAccounts") or []:
                if isinstance(account, Mapping) and account.get("name") == username:
                    elevation = str(account.get("elevationLevel") or "nonadmin").lower()
            return (elevation if elevation in _AGENT_USERS else "nonadmin"), username
        auto = spec.get("autoUser")
        if isinstance(auto, Mapping):
            elevation = str(auto.get("elevationLevel") or "nonadmin").lower()
            scope = str(auto.get("scope") or "pool").lower()
            elevation = elevation if elevation in _AGENT_USERS else "nonadmin"
            prefix = "Task" if scope == "task" else "Pool"
            return elevation, prefix + ("Admin" if elevation == "admin" else "NonAdmin")
    return "nonadmin", "PoolNonAdmin"


def named_user(spec: object) -> str | None:
    """The pool user account a ``userIdentity`` names (``username``), or ``None`` for an auto user."""
    if isinstance(spec, Mapping):
        username = spec.get("username")
        if isinstance(username, str) and username:
            return username
    return None


def node_environment(config: EmulatorConfig, pool_id: str, node_id: str, dedicated: bool) -> dict[str, str]:
    """The variables every task on a node gets (the start task gets exactly these plus its task dirs)."""
    return {
        "AZ_BATCH_ACCOUNT_NAME": config.account_name,
        "AZ_BATCH_ACCOUNT_URL": config.base_url,
        "AZ_BATCH_POOL_ID": pool_id,
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true" if dedicated else "false",
        "AZ_BATCH_NODE_ROOT_DIR": NODE_ROOT,
        "AZ_BATCH_NODE_SHARED_DIR": f"{NODE_ROOT}/shared",
        "AZ_BATCH_NODE_STARTUP_DIR": f"{NODE_ROOT}/{START_TASK_DIR}",
        "AZ_BATCH_NODE_MOUNTS_DIR": f"{NODE_ROOT}/fsmounts",
        "AZ_BATCH_TASK_RESERVED_EPHEMERAL_DISK_SPACE_BYTES": str(RESERVED_DISK_BYTES),
    }


def _apply_settings(env: dict[str, str], settings: object) -> None:
    if not isinstance(settings, Iterable) or isinstance(settings, (str, bytes, Mapping)):
        return
    for item in settings:
        if isinstance(item, Mapping):
            name = item.get("name")
            if isinstance(name, str) and name:
                value = item.get("value")
                env[name] = "" if value is None else str(value)


def job_environment(
    base: Mapping[str, str],
    *,
    directory: str,
    identity: str,
    elevation: str,
    job_id: str | None,
    task_id: str | None,
    common: object = None,
    own: object = None,
) -> dict[str, str]:
    """Batch-defined variables for one task run, then the job's common settings, then the task's own."""
    env = dict(base)
    env["AZ_BATCH_TASK_DIR"] = f"{NODE_ROOT}/{directory}"
    env["AZ_BATCH_TASK_WORKING_DIR"] = f"{NODE_ROOT}/{directory}/wd"
    env["AZ_BATCH_TASK_USER"] = _AGENT_USERS.get(elevation, "batchuser")
    env["AZ_BATCH_TASK_USER_IDENTITY"] = identity
    if job_id is not None:
        env["AZ_BATCH_JOB_ID"] = job_id
    if task_id is not None:
        env["AZ_BATCH_TASK_ID"] = task_id
    _apply_settings(env, common)
    _apply_settings(env, own)
    return env


def package_references(pool_doc: Mapping[str, Any] | None, task_doc: Mapping[str, Any] | None) -> list[Any]:
    """The application packages an assignment installs: the pool's, then the task's own."""
    return [
        *((pool_doc or {}).get("applicationPackageReferences") or []),
        *((task_doc or {}).get("applicationPackageReferences") or []),
    ]


def job_environment_doc(job: JobRuntime) -> dict[str, Any]:
    """What :func:`task_assignment` reads of a job: its id, common settings and preparation task."""
    doc: dict[str, Any] = {"id": job.job_id, "commonEnvironmentSettings": job.common_environment}
    if job.preparation is not None:
        doc["jobPreparationTask"] = job.preparation
    return doc


def _wants_job_token(task_doc: Mapping[str, Any]) -> bool:
    settings = task_doc.get("authenticationTokenSettings")
    access = settings.get("access") if isinstance(settings, Mapping) else None
    return isinstance(access, list) and "job" in access


def _retry_count(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def task_assignment(
    config: EmulatorConfig,
    *,
    assignment_id: str,
    attempt: int,
    job_doc: Mapping[str, Any],
    task_doc: Mapping[str, Any],
    pool_doc: Mapping[str, Any] | None,
    node_id: str,
    dedicated: bool,
    max_task_retry_count: int,
    container_required: bool = True,
    batch_variables: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Assignment JSON for one run of a task (see the node-agent protocol in the design doc).

    ``container_required`` is false for a job's preparation and release tasks: on a container pool they may run on
    the node itself, where a task (or a job manager) must name its container. ``batch_variables`` are more
    Batch-defined variables (those of a multi-instance task), set before the job's and the task's own settings.
    """
    job_id = str(job_doc["id"])
    task_id = str(task_doc["id"])
    pool_id = str((pool_doc or {}).get("id") or (job_doc.get("poolInfo") or {}).get("poolId") or "")
    elevation, identity = user_identity(task_doc.get("userIdentity"), pool_doc)
    directory = task_dir(job_id, task_id)
    base = node_environment(config, pool_id, node_id, dedicated)
    preparation = job_doc.get("jobPreparationTask")
    if isinstance(preparation, Mapping) and preparation.get("id"):
        prep_dir = f"{NODE_ROOT}/{task_dir(job_id, str(preparation['id']))}"
        base["AZ_BATCH_JOB_PREP_DIR"] = prep_dir
        base["AZ_BATCH_JOB_PREP_WORKING_DIR"] = f"{prep_dir}/wd"
    base.update(batch_variables or {})
    if _wants_job_token(task_doc):
        base["AZ_BATCH_AUTHENTICATION_TOKEN"] = mint_job_token(base64.b64decode(config.account_key), job_id)
    env = job_environment(
        base,
        directory=directory,
        identity=identity,
        elevation=elevation,
        job_id=job_id,
        task_id=task_id,
        common=job_doc.get("commonEnvironmentSettings"),
        own=task_doc.get("environmentSettings"),
    )
    constraints = task_doc.get("constraints") or {}
    return {
        "assignmentId": assignment_id,
        "kind": "task",
        "jobId": job_id,
        "taskId": task_id,
        "attempt": attempt,
        "commandLine": str(task_doc.get("commandLine") or ""),
        "environment": env,
        "taskDir": directory,
        "resourceFiles": list(task_doc.get("resourceFiles") or []),
        "outputFiles": list(task_doc.get("outputFiles") or []),
        "elevationLevel": elevation,
        "userName": named_user(task_doc.get("userIdentity")),
        "maxWallClockSeconds": duration_seconds(constraints.get("maxWallClockTime")),
        "maxTaskRetryCount": max_task_retry_count,
        "requiredSlots": max(1, _retry_count(task_doc.get("requiredSlots"), 1)),
        "applicationPackageReferences": package_references(pool_doc, task_doc),
        **container_fields(task_doc, pool_doc, required=container_required),
    }


def start_task_assignment(
    config: EmulatorConfig, pool_doc: Mapping[str, Any], node_id: str, dedicated: bool
) -> dict[str, Any] | None:
    """The Assignment JSON of the pool's start task for one node, or ``None`` when the pool has none."""
    start = pool_doc.get("startTask")
    if not isinstance(start, Mapping) or not (start.get("commandLine") or start.get("containerSettings")):
        return None
    elevation, identity = user_identity(start.get("userIdentity"), pool_doc)
    env = job_environment(
        node_environment(config, str(pool_doc["id"]), node_id, dedicated),
        directory=START_TASK_DIR,
        identity=identity,
        elevation=elevation,
        job_id=None,
        task_id=None,
        own=start.get("environmentSettings"),
    )
    return {
        "assignmentId": start_task_assignment_id(node_id),
        "kind": "starttask",
        "jobId": None,
        "taskId": None,
        "attempt": 0,
        "commandLine": str(start.get("commandLine") or ""),
        "environment": env,
        "taskDir": START_TASK_DIR,
        "resourceFiles": list(start.get("resourceFiles") or []),
        "outputFiles": [],
        "elevationLevel": elevation,
        "userName": named_user(start.get("userIdentity")),
        "maxWallClockSeconds": duration_seconds((start.get("constraints") or {}).get("maxWallClockTime")),
        "maxTaskRetryCount": _retry_count(start.get("maxTaskRetryCount"), 0),
        "requiredSlots": 1,
        "applicationPackageReferences": package_references(pool_doc, None),
        **container_fields(start, pool_doc, required=False),
    }
