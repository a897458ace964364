"""Job schedules in time: the runner that creates each schedule's jobs when they are due.

A schedule's next occurrence is its ``executionInfo.nextRunTime``: first ``doNotRunUntil`` (or its creation), then
every ``recurrenceInterval`` after that. At an occurrence an active schedule creates a job from its
``jobSpecification`` with the id ``{scheduleId}:job-{n}`` (n = 1, 2, ...), unless its previous job is still active
(never two at once): then it waits, until the occurrence's window closes (``startWindow`` after it, and never past the
next occurrence), for that job to end. A missed occurrence is skipped. Nothing is created at or after
``doNotRunAfter``; a schedule with no occurrence left and no active job is ``completed``. A disabled schedule creates
nothing but its occurrences still pass.

Terminating a schedule terminates its active job (reason ``TerminateJobSchedule``) and completes it once that job
has ended; deleting it deletes its jobs and removes it once they are gone. The runner is an asyncio task on the
event loop that sleeps until the earliest moment something is due, and wakes early when a job of a schedule ends or
a schedule changes. Real time only: tests use short intervals (``min_schedule_interval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from batchbox.emulator.clock import format_time, now_iso, parse_duration, parse_time
from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.errors import BatchError
from batchbox.emulator.resources.jobs import job_document
from batchbox.emulator.runtime.documents import set_state
from batchbox.emulator.runtime.operations.jobs import JobOperations, stored_body_context
from batchbox.emulator.runtime.transitions import Transitions
from batchbox.emulator.secret_owners import job_owner, owned, schedule_owner

__all__ = ["MAX_SLEEP", "TERMINATE_REASON", "ScheduleRunner", "schedule_job_prefix"]

log = logging.getLogger(__name__)

MAX_SLEEP = 5.0
"""Seconds the runner sleeps at most between two looks at the schedules."""
TERMINATE_REASON = "TerminateJobSchedule"
"""``terminateReason`` of the active job of a schedule that is terminated."""

Doc = dict[str, Any]


def schedule_job_prefix(schedule_id: str) -> str:
    """The lower-cased prefix of the ids of a schedule's jobs (job ids a client sends cannot contain ``:``)."""
    return f"{schedule_id.lower()}:job-"


def _duration(schedule: Doc, name: str) -> timedelta | None:
    value = schedule.get(name)
    return parse_duration(value) if isinstance(value, str) else None


def _window_end(schedule: Doc, occurrence: datetime) -> datetime | None:
    """When the chance to create the job of ``occurrence`` is lost (``None``: never)."""
    limits = (_duration(schedule, "startWindow"), _duration(schedule, "recurrenceInterval"))
    ends = [occurrence + limit for limit in limits if limit]
    return min(ends) if ends else None


def first_occurrence(schedule: Doc, created: datetime) -> datetime | None:
    """The first time a job is due, or ``None`` when ``doNotRunAfter`` comes first."""
    start = parse_time(schedule.get("doNotRunUntil")) or created
    after = parse_time(schedule.get("doNotRunAfter"))
    return None if after is not None and start >= after else start


def following(schedule: Doc, occurrence: datetime, now: datetime) -> datetime | None:
    """The first occurrence after ``occurrence`` whose window is still open at ``now`` (``None``: none left)."""
    interval = _duration(schedule, "recurrenceInterval")
    if interval is None or interval <= timedelta(0):
        return None
    nxt = occurrence + interval
    if nxt + interval <= now:  # windows never reach past the next occurrence: jump over whole missed intervals
        nxt += interval * ((now - nxt) // interval)
    after = parse_time(schedule.get("doNotRunAfter"))
    return None if after is not None and nxt >= after else nxt


class ScheduleRunner:
    """Creates the jobs of job schedules when they are due and keeps the schedules' states."""

    def __init__(self, config: EmulatorConfig, transitions: Transitions, jobs: JobOperations) -> None:
        self.config = config
        self.trans = transitions
        self.sched = transitions.sched
        self.store = transitions.store
        self.jobs = jobs
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.schedule_end_hooks: list[Callable[[Doc], None]] = []
        """Called with a schedule's document when it completes or is removed (its auto pool's lifetime ends)."""
        transitions.job_end_hooks.append(self._job_ended)

    # ----------------------------------------------------------------- the loop
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="job-schedules")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look at the schedules now (a schedule changed, or one of their jobs ended)."""
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                with self.sched.batch():
                    delay = self.run_due()
            except Exception:
                log.exception("job schedule pass failed")
                delay = MAX_SLEEP
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(delay, MAX_SLEEP)))

    def _job_ended(self, job_id: str, how: str) -> None:
        if ":job-" in job_id:
            self.wake()

    # ----------------------------------------------------------------- one pass
    def run_due(self) -> float:
        """Create what is due, move schedules on; returns the seconds until the next thing is due."""
        now = datetime.now(timezone.utc)
        delay = MAX_SLEEP
        for doc in self.store.schedules.list():
            until = self.advance(doc, now)
            if until is not None:
                delay = min(delay, (until - now).total_seconds())
        return delay

    def active_job(self, doc: Doc) -> Doc | None:
        """The schedule's most recent job while it is not completed."""
        recent = (doc.get("executionInfo") or {}).get("recentJob") or {}
        job = self.store.get_job(str(recent.get("id"))) if recent.get("id") else None
        return job if job is not None and job.get("state") != "completed" else None

    def schedule_jobs(self, schedule_id: str) -> list[Doc]:
        """Every job the schedule created that still exists, in creation order."""
        prefix = schedule_job_prefix(schedule_id)
        return [job for job in self.store.list_jobs() if str(job["id"]).lower().startswith(prefix)]

    def advance(self, doc: Doc, now: datetime) -> datetime | None:
        """Bring one schedule up to ``now``; returns when it next needs a look (``None``: only on an event)."""
        state = doc.get("state")
        if state == "deleting":
            if not self.schedule_jobs(doc["id"]):
                with self.store.transaction():
                    self.store.schedules.delete(doc["id"])
                    self.store.delete_secrets(owned(schedule_owner(doc["id"]), ""))
                    for hook in self.schedule_end_hooks:
                        hook(doc)
            return None
        if state == "completed":
            return None
        active = self.active_job(doc)
        if state == "terminating":
            if active is None:
                self._complete(doc)
            return None
        info = doc.setdefault("executionInfo", {})
        occurrence = parse_time(info.get("nextRunTime"))
        if occurrence is not None and now >= occurrence:
            window_end = _window_end(doc["schedule"], occurrence)
            if window_end is not None and now >= window_end:
                return self._move_on(doc, following(doc["schedule"], occurrence, now), active)
            after = parse_time(doc["schedule"].get("doNotRunAfter"))
            if after is not None and now >= after:
                return self._move_on(doc, None, active)
            if state != "active":
                return window_end
            if active is not None:
                return window_end  # the running job's end wakes the runner
            created = self._create_job(doc, now)
            nxt = following(doc["schedule"], occurrence, now)
            return self._move_on(doc, nxt, created)
        if occurrence is None:
            return self._finish(doc, now, active)
        return occurrence

    def _finish(self, doc: Doc, now: datetime, active: Doc | None) -> datetime | None:
        """No occurrence is left: the schedule completes once no job of it is active and its ``doNotRunAfter`` (if
        any) has passed; returns when to look again."""
        if active is not None:
            return None  # the job's end wakes the runner
        after = parse_time(doc["schedule"].get("doNotRunAfter"))
        if after is not None and now < after:
            return after
        self._complete(doc)
        return None

    def _move_on(self, doc: Doc, occurrence: datetime | None, active: Doc | None) -> datetime | None:
        info = doc.setdefault("executionInfo", {})
        if occurrence is None:
            info.pop("nextRunTime", None)
        else:
            info["nextRunTime"] = format_time(occurrence)
        self.store.schedules.update(doc)
        if occurrence is None:
            return self._finish(doc, datetime.now(timezone.utc), active)
        return occurrence

    def _create_job(self, doc: Doc, now: datetime) -> Doc | None:
        number = self.store.schedules.next_job_number(doc["id"])
        job_id = f"{doc['id']}:job-{number}"
        specification = dict(doc["jobSpecification"])
        try:
            context = stored_body_context(self.config)
            built = job_document(
                specification, job_id, base_url=self.config.base_url, context=context, on_schedule=True
            )
            job = self.jobs.add(built)
        except BatchError as error:
            log.warning("job schedule %s could not create job %s: %s", doc["id"], job_id, error)
            return None
        self.store.copy_secrets(schedule_owner(doc["id"]), job_owner(job_id))
        doc.setdefault("executionInfo", {})["recentJob"] = {"id": job["id"], "url": job["url"]}
        log.info("job schedule %s created job %s", doc["id"], job_id)
        return job

    def _complete(self, doc: Doc) -> None:
        now = now_iso()
        set_state(doc, "completed", now)
        info = doc.setdefault("executionInfo", {})
        info.pop("nextRunTime", None)
        info["endTime"] = now
        self.store.schedules.update(doc)
        for hook in self.schedule_end_hooks:
            hook(doc)

    # ----------------------------------------------------------------- requests
    def scheduled(self, doc: Doc) -> None:
        """Set a new (or newly timed) schedule's ``nextRunTime``: its first occurrence from now on."""
        info = doc.setdefault("executionInfo", {})
        created = parse_time(doc.get("creationTime")) or datetime.now(timezone.utc)
        recent = self.store.get_job(str((info.get("recentJob") or {}).get("id") or ""))
        interval = _duration(doc["schedule"], "recurrenceInterval")
        base = created
        if recent is not None and interval is not None and not doc["schedule"].get("doNotRunUntil"):
            base = (parse_time(recent.get("creationTime")) or created) + interval
        first = first_occurrence(doc["schedule"], base)
        if first is None:
            info.pop("nextRunTime", None)
        else:
            info["nextRunTime"] = format_time(first)

    def terminate(self, doc: Doc) -> Doc:
        """``terminating``; its active job is terminated; ``completed`` once that job has ended."""
        set_state(doc, "terminating", now_iso())
        stored = self.store.schedules.update(doc)
        active = self.active_job(doc)
        if active is not None and active.get("state") not in ("terminating", "deleting"):
            self.jobs.terminate(active["id"], TERMINATE_REASON)
        if self.active_job(doc) is None:  # it ended at once (no release tasks to wait for)
            self._complete(doc)
            return doc
        self.wake()
        return stored

    def delete(self, doc: Doc) -> Doc:
        """``deleting``; its jobs are deleted; the schedule goes once they are gone."""
        set_state(doc, "deleting", now_iso())
        stored = self.store.schedules.update(doc)
        for job in self.schedule_jobs(doc["id"]):
            if job.get("state") != "deleting":
                self.jobs.delete(job["id"])
        self.wake()
        return stored
