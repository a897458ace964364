"""``batchbox status``, ``logs`` and ``cleanup``: look at and remove what runs on a backend."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from batchbox.cli.errors import handle_errors
from batchbox.cli.options import auth_option, backend_option, open_backend_for
from batchbox.core.backend import Backend
from batchbox.core.errors import ResourceNotFoundError

__all__ = ["cleanup", "logs", "status"]


@click.command()
@click.argument("job", required=False)
@backend_option
@auth_option
@handle_errors
def status(job: str | None, backend: str | None, auth: str | None) -> None:
    """Show pools, nodes, jobs and task counts (of JOB only, when given)."""
    console = Console()
    with open_backend_for(backend, auth) as opened:
        compute = opened.compute
        if job is not None:
            _show_job(console, opened, job)
            return
        pools = compute.list_pools()
        table = Table("pool", "vm size", "state", "allocation", "nodes", "node states", title=opened.describe())
        for pool in pools:
            nodes = compute.list_nodes(pool.id)
            states = ", ".join(sorted({n.state.value for n in nodes})) or "-"
            table.add_row(
                pool.id,
                pool.vm_size,
                pool.state.value,
                pool.allocation_state.value,
                f"{pool.current_dedicated_nodes}/{pool.target_dedicated_nodes}",
                states,
            )
        console.print(table)
        jobs = Table("job", "state", "active", "running", "succeeded", "failed")
        for job_id, state in compute.list_jobs():
            counts = compute.task_counts(job_id)
            jobs.add_row(
                job_id, state.value, str(counts.active), str(counts.running), str(counts.succeeded), str(counts.failed)
            )
        console.print(jobs)


def _show_job(console: Console, opened: Backend, job: str) -> None:
    compute = opened.compute
    state = compute.job_state(job)
    counts = compute.task_counts(job)
    console.print(
        f"job {job}: {state.value}; {counts.active} active, {counts.running} running, "
        f"{counts.succeeded} succeeded, {counts.failed} failed"
    )
    for task in compute.list_tasks(job, failed_only=True):
        why = f"{task.failure.code}: {task.failure.message}" if task.failure else "non-zero exit code"
        console.print(f"  failed {task.id}: exit code {task.exit_code}; {why}", markup=False)


@click.command()
@click.argument("job")
@click.argument("task")
@click.option("--stderr", "which", flag_value="stderr.txt", help="Show stderr.txt instead of stdout.txt.")
@click.option("--file", "which", help="Another file of the task directory, e.g. wd/out.txt.")
@backend_option
@auth_option
@handle_errors
def logs(job: str, task: str, which: str | None, backend: str | None, auth: str | None) -> None:
    """Print a task's stdout.txt (or stderr.txt, or another file of its directory)."""
    with open_backend_for(backend, auth) as opened:
        data = opened.compute.read_task_file(job, task, which or "stdout.txt")
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@click.command()
@click.option("--workload", "workload_ref", help="Delete this workload's job, pool and blob containers.")
@click.option("--job", "jobs", multiple=True, help="A job to delete (repeatable).")
@click.option("--pool", "pools", multiple=True, help="A pool to delete (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Delete every job and pool of the account.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@backend_option
@auth_option
@handle_errors
def cleanup(
    workload_ref: str | None,
    jobs: tuple[str, ...],
    pools: tuple[str, ...],
    everything: bool,
    yes: bool,
    backend: str | None,
    auth: str | None,
) -> None:
    """Delete jobs, pools and containers left by earlier runs (leftover Azure pools cost money)."""
    if not (workload_ref or jobs or pools or everything):
        raise click.UsageError("name what to delete: --workload FILE, --job ID, --pool ID or --all")
    with open_backend_for(backend, auth) as opened:
        compute = opened.compute
        job_ids, pool_ids = list(jobs), list(pools)
        containers: list[str] = []
        if workload_ref:
            from batchbox.cli.loader import load_workload

            chosen = load_workload(workload_ref)
            job_ids.append(chosen.job_id)
            pool_ids.append(chosen.pool_id)
            containers.extend(chosen.containers().all())
        if everything:
            job_ids.extend(job_id for job_id, _ in compute.list_jobs())
            pool_ids.extend(pool.id for pool in compute.list_pools())
        what = (
            ", ".join(
                [
                    *(f"job {j}" for j in job_ids),
                    *(f"pool {p}" for p in pool_ids),
                    *(f"container {c}" for c in containers),
                ]
            )
            or "nothing"
        )
        if not yes and sys.stdin.isatty() and not click.confirm(f"Delete {what}?", default=False):
            raise click.Abort()
        for job_id in dict.fromkeys(job_ids):
            compute.delete_job(job_id)
            click.echo(f"deleted job {job_id}")
        for pool_id in dict.fromkeys(pool_ids):
            compute.delete_pool(pool_id)
            click.echo(f"deleted pool {pool_id}")
        for container in containers:
            try:
                opened.storage.delete_container(container)
            except ResourceNotFoundError:
                continue
            click.echo(f"deleted container {container}")
