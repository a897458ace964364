"""The ``batchbox`` command line: run a workload, watch it, read its logs, clean up, manage the local stack."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.console import Console

from batchbox.cli.app_cmd import app
from batchbox.cli.errors import handle_errors
from batchbox.cli.jobs_cmd import cleanup, logs, status
from batchbox.cli.local_cmd import local
from batchbox.cli.options import auth_option, backend_option, open_backend_for
from batchbox.core.redact import RedactingFilter
from batchbox.core.reporting import LogReporter, Reporter
from batchbox.core.results import RunResult
from batchbox.core.workflow import RunOptions, Workflow

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs (secrets stay redacted).")
@click.version_option(package_name="batchbox")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """batchbox: write an Azure Batch workload once, run it on Azure or offline on this machine.

    The local backend (the default) runs on Azurite and the batchbox Batch emulator, started on demand.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    ours = logging.getLogger("batchbox")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.DEBUG if debug else logging.INFO)
    ours.propagate = False
    if debug:  # the SDKs' request logs too (signatures and keys are redacted by the filter)
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.DEBUG)


@cli.command()
@click.argument("workload")
@backend_option
@auth_option
@click.option("--nodes", type=click.IntRange(min=0), help="Number of dedicated nodes (default: the workload's).")
@click.option("--vm-size", help="VM size of the pool's nodes (default: the workload's).")
@click.option("--keep-pool", is_flag=True, help="Keep the pool for the next run (warm nodes).")
@click.option("--keep-job", is_flag=True, help="Keep the job and its tasks (to read their files later).")
@click.option("--keep-containers", is_flag=True, help="Keep the blob containers.")
@click.option("--yes", "-y", is_flag=True, help="Delete the job and pool without asking.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where outputs are downloaded (default ./outputs/<job id>).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Longest wait between two task-count polls (the first ones are 0.1 s apart, then the wait doubles).",
)
@click.option("--timeout", type=click.FloatRange(min=1), help="Give up when the job runs longer (seconds).")
@click.pass_context
@handle_errors
def run(
    ctx: click.Context,
    workload: str,
    backend: str | None,
    auth: str | None,
    nodes: int | None,
    vm_size: str | None,
    keep_pool: bool,
    keep_job: bool,
    keep_containers: bool,
    yes: bool,
    output_dir: Path | None,
    poll_interval: float,
    timeout: float | None,
) -> None:
    """Run WORKLOAD (a .py file or module[:name]) end to end: stage, pool, job, tasks, monitor, collect, clean up.

    Exits 1 when any task failed. A rerun after a crash or Ctrl-C resumes the same pool and job.
    """
    from batchbox.cli.loader import load_workload

    chosen = load_workload(workload)
    console = Console(stderr=False)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    reporter: Reporter
    if console.is_terminal:
        from batchbox.cli.progress import RichReporter

        reporter = RichReporter(console)
    else:
        reporter = LogReporter()
    with open_backend_for(backend, auth) as opened:
        click.echo(f"running {chosen.job_id} on {opened.describe()}", err=True)
        options = RunOptions(
            node_count=nodes,
            vm_size=vm_size,
            output_dir=output_dir,
            keep_pool=keep_pool,
            keep_job=keep_job,
            keep_containers=keep_containers,
            poll_interval=poll_interval,
            job_timeout=timeout,
        )
        confirm = (lambda question: click.confirm(question, default=True)) if interactive and not yes else None
        result = Workflow(opened, chosen, options, reporter, confirm).run()
    _print_summary(result)
    if not result.ok:
        ctx.exit(1)


def _print_summary(result: RunResult) -> None:
    counts = result.counts
    click.echo(
        f"job {result.job_id}: {counts.succeeded} succeeded, {counts.failed} failed of {result.total_tasks} "
        f"in {result.elapsed:.1f} s"
    )
    for failed in result.failed:
        info = failed.failure
        why = f"{info.code}: {info.message}" if info else "non-zero exit code"
        click.echo(f"  FAILED {failed.task_id}: exit code {failed.exit_code}; {why}")
        for line in failed.stderr_tail.splitlines()[-5:]:
            click.echo(f"    | {line}")
    if result.output_dir is not None:
        click.echo(f"outputs ({len(result.outputs)} file(s)) in {result.output_dir}")


cli.add_command(status)
cli.add_command(logs)
cli.add_command(cleanup)
cli.add_command(local)
cli.add_command(app)


def _add_emulator_command() -> None:
    from batchbox.emulator.command import emulator

    cli.add_command(emulator)


_add_emulator_command()


def main() -> None:
    """Console-script entry point."""
    cli(obj={})


if __name__ == "__main__":
    main()
