"""Auto pools: the pools Batch creates for jobs that give ``poolInfo.autoPoolSpecification``.

* A new job with an auto pool specification gets its pool just after it is stored: the add-pool body is the pool
  specification as given (kept as a store secret) with a generated id, ``{autoPoolIdPrefix}_{GUID}``, and it goes
  through the same validation and creation as ``POST /pools``. The job's ``executionInfo.poolId`` then names the
  pool and its tasks run there.
* A pool that cannot be created (a refused specification, a missing application package) ends the job: it completes
  with ``executionInfo.schedulingError`` (category ``UserError``; the auto-pool codes of Batch where one fits, else the
  code the pool creation answered with, its values as details).
* Lifetime ``job``: the pool is deleted when its job completes or is deleted. Lifetime ``jobschedule``: the first job
  of the schedule creates the pool, later jobs run on it, and it is deleted when the schedule completes or is deleted.
  With ``keepAlive`` the pool stays. Which pool belongs to which job or schedule is kept in the store's ``meta``
  table, so it survives a restart; jobs still waiting for their pool at a restart get it at the next start.
* At every start the owners are reconciled: the pool of a job or schedule that has completed or is gone (and is not
  kept alive) is deleted, so no crash between an owner's end and its pool's deletion leaves an orphan pool.
* With a pool quota (the fault layer's ``pool_quota``), an auto pool past it is not created: the job completes with
  the scheduling error ``AutoPoolCreationFailedWithQuotaReached``, as on Batch. Core quotas do not stop the creation:
  the pool is created and its resize reports them, as for any pool.
* A user may delete a job's auto pool while the job is active (Batch does not refuse it): the job stays active, its
  tasks wait as for a job whose pool does not exist, and no pool is created in its place (Batch does not document
  one). A schedule's later job gets a new shared pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from batchbox.emulator.applications import PackageCatalog
from batchbox.emulator.applications.references import check_pool_references
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.crash_points import crash_point
from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources.auto_pools import AUTO_POOL_SECRET, auto_pool_body
from batchbox.emulator.resources.containers import ValidationContext
from batchbox.emulator.resources.pool_checks import pool_rules_of
from batchbox.emulator.resources.pool_fields import DEFAULT_MAX_NODES
from batchbox.emulator.resources.pools import build_pool
from batchbox.emulator.runtime.operations.jobs import JobOperations
from batchbox.emulator.runtime.operations.pools import PoolOperations
from batchbox.emulator.runtime.ports import PoolQuota
from batchbox.emulator.runtime.schedules import ScheduleRunner
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.secret_owners import job_owner, owned, pool_owner

__all__ = ["AUTO_POOL_FAILED", "AUTO_POOL_QUOTA_REACHED", "AutoPools", "scheduling_error"]

log = logging.getLogger(__name__)

Doc = dict[str, Any]

AUTO_POOL_FAILED = "AutoPoolCreationFailed"
"""Internal reason the runtime ends a job whose pool could not be created (not shown: Batch shows none)."""

_AUTO_POOL_CODES = {
    "invalidapplicationpackagereferences": "InvalidApplicationPackageReferencesInAutoPool",
    "certificateretired": "InvalidCertificatesInAutoPool",
    "invalidautoscaleformula": "InvalidAutoScaleFormulaInAutoPool",
}
_LIVE_POOL_STATES = ("active",)
_ENDED_OWNER_STATES = ("completed",)
_KEY_PREFIX = "auto-pool:"

AUTO_POOL_QUOTA_REACHED = "AutoPoolCreationFailedWithQuotaReached"
"""The scheduling error code of a job whose auto pool would pass the account's pool quota."""


def _job_key(job_id: str) -> str:
    return f"auto-pool:job:{job_id.lower()}"


def _schedule_key(schedule_id: str) -> str:
    return f"auto-pool:jobschedule:{schedule_id.lower()}"


def _keep_alive_key(schedule_id: str) -> str:
    """Set while a schedule's shared pool is to outlive the schedule: read when the schedule is gone at a start."""
    return f"auto-pool:keepalive:{schedule_id.lower()}"


def scheduling_error(error: BatchError) -> Doc:
    """The job's ``executionInfo.schedulingError`` for an auto pool that could not be created."""
    code = _AUTO_POOL_CODES.get(error.code.lower(), error.code)
    details = [{"name": str(name), "value": str(value)} for name, value in error.values.items()]
    return {"category": "UserError", "code": code, "message": error.message, "details": details}


def _specification(doc: Doc) -> Doc | None:
    spec = (doc.get("poolInfo") or {}).get("autoPoolSpecification")
    return spec if isinstance(spec, dict) else None


def _waiting_for_pool(doc: Doc) -> bool:
    info = doc.get("executionInfo") or {}
    return (
        _specification(doc) is not None
        and doc.get("state") in ("active", "disabling", "disabled")
        and not info.get("poolId")
        and not info.get("schedulingError")
    )


class AutoPools:
    """Creates the auto pools of jobs and deletes them when their lifetime ends."""

    def __init__(
        self,
        config: EmulatorConfig,
        transitions: Transitions,
        pools: PoolOperations,
        jobs: JobOperations,
        runner: ScheduleRunner,
        applications: PackageCatalog | None,
        pool_quota: PoolQuota | None = None,
    ) -> None:
        self.config = config
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        self.pools = pools
        self.applications = applications
        self.pool_quota = pool_quota
        self._tasks: set[asyncio.Task[None]] = set()
        jobs.added_hooks.append(self._job_added)
        transitions.job_end_hooks.append(self._job_ended)
        runner.schedule_end_hooks.append(self._schedule_ended)

    # ----------------------------------------------------------------- creation
    async def stop(self) -> None:
        """Cancel pool creations in flight (the jobs get their pools at the next start)."""
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def resume(self) -> None:
        """At start: the pools of owners that ended before a restart go (:meth:`reconcile`); jobs that still wait
        for their auto pool get it now."""
        self.reconcile()
        for doc in self.store.list_jobs():
            if _waiting_for_pool(doc):
                self._start(str(doc["id"]))

    def _job_added(self, doc: Doc) -> None:
        if _waiting_for_pool(doc):
            self._start(str(doc["id"]))

    def _start(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self.provide(job_id), name=f"auto-pool-{job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def provide(self, job_id: str) -> None:
        """Give the job its pool: the schedule's shared one, or a new one; a pool that cannot be created ends it."""
        doc = self.store.get_job(job_id)
        if doc is None or not _waiting_for_pool(doc):
            return
        spec = _specification(doc) or {}
        schedule_id = job_id.split(":", 1)[0] if ":" in job_id else None
        shared = spec.get("poolLifetimeOption") == "jobschedule" and schedule_id is not None
        if shared and schedule_id is not None:
            existing = self.store.meta_get(_schedule_key(schedule_id))
            pool = self.store.get_pool(existing) if existing else None
            if pool is not None and pool.get("state") in _LIVE_POOL_STATES:
                self._bind(job_id, str(pool["id"]))
                return
        prefix = spec.get("autoPoolIdPrefix")
        suffix = str(uuid.uuid4()).upper()
        pool_id = f"{prefix}_{suffix}" if prefix else suffix
        keep_alive = bool(spec.get("keepAlive"))
        owner_key = _schedule_key(schedule_id) if shared and schedule_id is not None else _job_key(job_id)
        try:
            pool, context = await self._build(job_id, spec, pool_id)
            keep_key = _keep_alive_key(schedule_id) if shared and keep_alive and schedule_id is not None else None
            self._install(job_id, pool, context, None if keep_alive and not shared else owner_key, keep_key)
        except BatchError as error:
            log.info("job %s: its auto pool could not be created: %s", job_id, error.code)
            self._fail(job_id, pool_id, error)

    async def _build(self, job_id: str, spec: Doc, pool_id: str) -> tuple[Doc, ValidationContext]:
        """Validate the pool ``pool_id`` exactly as ``POST /pools`` does: its document, and the context holding its
        secrets."""
        given = self.store.get_secret(owned(job_owner(job_id), AUTO_POOL_SECRET))
        body = auto_pool_body(spec, json.loads(given) if given else None, pool_id)
        context = ValidationContext(
            allow_privileged=self.config.allow_privileged_containers,
            storage_account=self.config.storage_account_name,
        )
        doc = build_pool(
            body,
            base_url=self.config.base_url,
            max_nodes=DEFAULT_MAX_NODES,
            context=context,
            rules=pool_rules_of(self.config),
        )
        await check_pool_references(self.applications, doc.get("applicationPackageReferences"))
        return doc, context

    def _install(
        self, job_id: str, pool: Doc, context: ValidationContext, owner_key: str | None, keep_key: str | None
    ) -> None:
        """In one transaction: add the pool, seal its secrets, record whose lifetime it follows (``owner_key``; None
        with keepAlive; ``keep_key`` marks a schedule's pool kept alive) and bind the job to it. Nothing is created
        when the job no longer waits for a pool.

        Raises:
            BatchError: ``AutoPoolCreationFailedWithQuotaReached``: the account's pool quota is reached.
        """
        pool_id = str(pool["id"])
        with self.sched.batch():
            job = self.store.get_job(job_id)
            if job is None or not _waiting_for_pool(job):
                return
            self._check_pool_quota()
            self.pools.add(pool)
            for secret in context.secrets:
                self.store.put_secret(owned(pool_owner(pool_id), secret.name), secret.value)
            if owner_key is not None:
                self.store.meta_set(owner_key, pool_id)
            if keep_key is not None:
                self.store.meta_set(keep_key, "true")
            self._bind(job_id, pool_id)
        log.info("job %s: auto pool %s created", job_id, pool_id)

    def _check_pool_quota(self) -> None:
        """Refuse a pool past the account's pool quota (deleting pools count, as for ``POST /pools``)."""
        quota = self.pool_quota() if self.pool_quota is not None else None
        if quota is not None and len(self.store.list_pools()) >= quota:
            raise BatchError(
                409,
                AUTO_POOL_QUOTA_REACHED,
                "The auto pool could not be created: the account has reached its pool quota.",
                {"PoolQuota": str(quota)},
            )

    def _bind(self, job_id: str, pool_id: str) -> bool:
        """The job runs on ``pool_id`` from now on; False when the job no longer waits for a pool."""
        with self.sched.batch():
            doc = self.store.get_job(job_id)
            if doc is None or not _waiting_for_pool(doc):
                return False
            doc.setdefault("executionInfo", {})["poolId"] = pool_id
            stored = self.store.update_job(doc)
            job = self.sched.job_from_doc(stored)
            self.sched.dispatch(job.pool_key)
        return True

    def _fail(self, job_id: str, pool_id: str, error: BatchError) -> None:
        """The job completes with the pool creation's error as its ``schedulingError``; its ``poolId`` names the pool
        it was to get, as on Batch."""
        with self.sched.batch():
            doc = self.store.get_job(job_id)
            if doc is None or not _waiting_for_pool(doc):
                return
            info = doc.setdefault("executionInfo", {})
            info["poolId"] = pool_id
            info["schedulingError"] = scheduling_error(error)
            self.store.update_job(doc)
            job = self.sched.job_of(job_id)
            if job is not None:
                self.trans.end_job(job, AUTO_POOL_FAILED)
            ended = self.store.get_job(job_id)
            if ended is not None and (ended.get("executionInfo") or {}).pop("terminateReason", None) is not None:
                self.store.update_job(ended)

    # ----------------------------------------------------------------- lifetime
    def _job_ended(self, job_id: str, how: str) -> None:
        key = _job_key(job_id)
        pool_id = self.store.meta_get(key)
        if pool_id:
            crash_point("auto_pools.owner_ended", "job")
            with self.store.transaction():
                self.store.meta_set(key, "")
            self._delete_pool(pool_id)

    def _schedule_ended(self, schedule: Doc) -> None:
        schedule_id = str(schedule["id"])
        key = _schedule_key(schedule_id)
        pool_id = self.store.meta_get(key)
        if not pool_id:
            return
        crash_point("auto_pools.owner_ended", "jobschedule")
        with self.store.transaction():
            self.store.meta_set(key, "")
            if self.store.meta_get(_keep_alive_key(schedule_id)):
                self.store.meta_set(_keep_alive_key(schedule_id), "")
        spec = ((schedule.get("jobSpecification") or {}).get("poolInfo") or {}).get("autoPoolSpecification") or {}
        if not spec.get("keepAlive"):
            self._delete_pool(pool_id)

    def reconcile(self) -> None:
        """Delete the auto pools whose owner (the job; the schedule for the ``jobschedule`` lifetime) has completed
        or is gone, unless kept alive: what a crash between an owner's end and its pool's deletion left behind.
        Owners still ``terminating`` or ``deleting`` are left to the recovery, which ends them with their hooks."""
        with self.sched.batch():
            for key, pool_id in self.store.meta_items(_KEY_PREFIX):
                kind, _, owner = key[len(_KEY_PREFIX) :].partition(":")
                if not pool_id or kind not in ("job", "jobschedule"):
                    continue
                if kind == "job":
                    job = self.store.get_job(owner)
                    if job is not None and job.get("state") not in _ENDED_OWNER_STATES:
                        continue
                    self.store.meta_set(key, "")
                    log.info("auto pool %s: its job %s ended before the last stop", pool_id, owner)
                    self._delete_pool(pool_id)
                    continue
                schedule = self.store.schedules.get(owner)
                if schedule is not None and schedule.get("state") not in _ENDED_OWNER_STATES:
                    continue
                if schedule is not None:
                    self._schedule_ended(schedule)
                    continue
                kept = bool(self.store.meta_get(_keep_alive_key(owner)))
                self.store.meta_set(key, "")
                self.store.meta_set(_keep_alive_key(owner), "")
                if not kept:
                    log.info("auto pool %s: its job schedule %s ended before the last stop", pool_id, owner)
                    self._delete_pool(pool_id)

    def _delete_pool(self, pool_id: str) -> None:
        pool = self.store.get_pool(pool_id)
        if pool is None or pool.get("state") == "deleting":
            return
        log.info("auto pool %s: its lifetime ended, deleting it", pool_id)
        self.pools.delete(pool_id)
