"""How a user describes a Batch workload once, for every backend.

A workload names its pool and job, lists the files to stage, and turns the staged files (SAS URLs) into a
start task and tasks. The workflow (:mod:`batchbox.core.workflow`) does the rest.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from batchbox.core.models import (
    JobConstraints,
    JobSpec,
    OutputFile,
    PoolSpec,
    ResourceFile,
    StartTask,
    TaskSpec,
)
from batchbox.core.states import OutputFileUploadCondition
from batchbox.core.storage import validate_container_name

__all__ = [
    "DEFAULT_JOB_TIME_LIMIT",
    "KEPT_POOL_SAS_LIFETIME",
    "SAS_MARGIN",
    "ContainerNames",
    "StagedFiles",
    "Workload",
    "container_names_for",
]

DEFAULT_JOB_TIME_LIMIT = timedelta(hours=2)
"""How long a job may run unless the workload says otherwise; Batch terminates it then (``maxWallClockTime``)."""

SAS_MARGIN = timedelta(hours=1)
"""SAS URLs given to nodes outlive the job's time limit by this much (uploads of tasks ended at the limit)."""

KEPT_POOL_SAS_LIFETIME = timedelta(days=6)
"""Lifetime of the application files' SAS when the pool is kept: a kept pool's nodes rerun their start task
when they restart or the pool grows, until the next run refreshes it (Azure AD-signed SAS may last 7 days)."""


@dataclass(frozen=True)
class ContainerNames:
    """The three blob containers of a run: application files, inputs, outputs."""

    application: str
    input: str
    output: str

    def __post_init__(self) -> None:
        for name in (self.application, self.input, self.output):
            validate_container_name(name)

    def all(self) -> tuple[str, str, str]:
        return (self.application, self.input, self.output)


def container_names_for(job_id: str) -> ContainerNames:
    """Default container names derived from a job id: ``<job>-app``, ``<job>-input``, ``<job>-output``."""
    base = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", job_id.lower())).strip("-")[:50] or "batchbox"
    if len(base) < 3:
        base = f"bb-{base}"
    return ContainerNames(application=f"{base}-app", input=f"{base}-input", output=f"{base}-output")


@dataclass(frozen=True)
class StagedFiles:
    """What staging produced: read-only SAS URLs of the uploaded files and the output container's write SAS.

    Attributes:
        application: blob name -> read SAS URL, for application files.
        inputs: blob name -> read SAS URL, for input files.
        output_container_url: container SAS URL allowing create and write (no read, list or delete).
        containers: the container names used.
    """

    application: dict[str, str]
    inputs: dict[str, str]
    output_container_url: str
    containers: ContainerNames
    expiry: timedelta = field(default=DEFAULT_JOB_TIME_LIMIT + SAS_MARGIN)

    def input_file(self, blob_name: str, file_path: str | None = None) -> ResourceFile:
        """A resource file downloading one staged input into the task's working dir."""
        return ResourceFile(http_url=self.inputs[blob_name], file_path=file_path or blob_name)

    def application_file(self, blob_name: str, file_path: str | None = None) -> ResourceFile:
        """A resource file downloading one staged application file."""
        return ResourceFile(http_url=self.application[blob_name], file_path=file_path or blob_name)

    def output_files(self, *patterns: str) -> tuple[OutputFile, ...]:
        """Upload the files matching ``patterns`` (relative to the task's working dir) to the output container.

        Each file keeps its name (its path below the working dir for ``**`` patterns); uploads happen when the
        task succeeds, and the workflow downloads the output container at the end. Use it as
        ``TaskSpec(..., output_files=staged.output_files("*.sha256"))``.
        """
        return tuple(
            OutputFile(
                file_pattern=pattern,
                container_url=self.output_container_url,
                upload_condition=OutputFileUploadCondition.TASK_SUCCESS,
            )
            for pattern in patterns
        )


class Workload(ABC):
    """A Batch workload: subclass it and implement :meth:`tasks` (and usually :meth:`start_task`).

    Class attributes give the defaults; the CLI's ``--nodes`` and ``--vm-size`` override ``node_count`` and
    ``vm_size``.
    """

    job_id: str = "batchbox-job"
    pool_id: str = "batchbox-pool"
    vm_size: str = "standard_d2s_v3"
    node_count: int = 1
    task_slots_per_node: int = 1
    job_time_limit: timedelta = DEFAULT_JOB_TIME_LIMIT
    """How long the job may run (its ``maxWallClockTime``): Batch terminates it then. The SAS URLs nodes receive
    are valid for this plus :data:`SAS_MARGIN`, so a run, or a resumed run, may last this long."""

    def containers(self) -> ContainerNames:
        """The blob containers this workload uses (default: derived from the job id)."""
        return container_names_for(self.job_id)

    def application_files(self) -> Sequence[Path]:
        """Local files uploaded to the application container (scripts the nodes run)."""
        return ()

    def input_files(self) -> Sequence[Path]:
        """Local files uploaded to the input container."""
        return ()

    def start_task(self, staged: StagedFiles) -> StartTask | None:
        """The command each node runs when it joins the pool (None: no start task)."""
        return None

    def pool(self, staged: StagedFiles, *, node_count: int | None = None, vm_size: str | None = None) -> PoolSpec:
        """The pool specification."""
        return PoolSpec(
            id=self.pool_id,
            vm_size=vm_size or self.vm_size,
            dedicated_nodes=self.node_count if node_count is None else node_count,
            task_slots_per_node=self.task_slots_per_node,
            start_task=self.start_task(staged),
        )

    def job(self) -> JobSpec:
        """The job specification (its time limit is :attr:`job_time_limit`)."""
        return JobSpec(
            id=self.job_id, pool_id=self.pool_id, constraints=JobConstraints(max_wall_clock_time=self.job_time_limit)
        )

    @abstractmethod
    def tasks(self, staged: StagedFiles) -> Sequence[TaskSpec]:
        """The tasks of the job."""

    def sas_lifetime(self) -> timedelta:
        """How long the SAS URLs given to nodes stay valid: the job's time limit plus :data:`SAS_MARGIN`.

        The workflow uses the time limit of the job it creates (:meth:`job`), which may differ from
        :attr:`job_time_limit` when ``job()`` is overridden.
        """
        limit = self.job().constraints.max_wall_clock_time or self.job_time_limit
        return limit + SAS_MARGIN
