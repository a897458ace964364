"""``batchbox local up|status|down|token|preempt``: the offline stack (Azurite + the Batch emulator), in the
background."""

from __future__ import annotations

import json
from pathlib import Path

import click

from batchbox.cli.errors import handle_errors

__all__ = ["local"]

_HOME_HELP = "State directory (default $BATCHBOX_HOME or ~/.local/share/batchbox)."


@click.group()
def local() -> None:
    """Start, inspect and stop the local stack (Azurite + the batchbox Batch emulator)."""


@local.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the endpoints and keys.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@click.option("--node-image", help="Docker image of the nodes (default: the batchbox node image, built if missing).")
@click.option(
    "--storage-connection-string",
    envvar="BATCHBOX_STORAGE_CONNECTION_STRING",
    show_envvar=True,
    help="Use this blob storage (e.g. an Azurite you run) instead of starting Azurite.",
)
@click.option(
    "--azurite",
    type=click.Choice(["auto", "npm", "image"]),
    envvar="BATCHBOX_AZURITE",
    show_envvar=True,
    default="auto",
    show_default=True,
    help="Where Azurite comes from: auto (npm, else an image already present), npm, or image (pulled if missing).",
)
@click.option(
    "--faults",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML file whose [faults] table the emulator injects (Azure's failures, rehearsed; see README).",
)
@click.option(
    "--tls",
    is_flag=True,
    help="HTTPS for both services (a local CA, made once) and Microsoft Entra ID tokens of a local issuer.",
)
@click.option(
    "--disable-shared-key",
    is_flag=True,
    help="With --tls: the emulator refuses SharedKey, like a Batch account that allows only Entra ID.",
)
@handle_errors
def up(
    as_json: bool,
    home: Path | None,
    node_image: str | None,
    storage_connection_string: str | None,
    azurite: str,
    faults: Path | None,
    tls: bool,
    disable_shared_key: bool,
) -> None:
    """Start Azurite and the emulator unless they run already, and wait until both answer.

    The first run installs what is missing (Azurite with npm into the state directory, the node image, and as
    root on Debian/Ubuntu a Docker engine), one progress line per step on stderr. Without --tls a running stack is
    used in whatever mode it runs; a stack running in another mode than asked for is an error (local down first).
    """
    from batchbox.backends.local.stack import LocalStack, StackMode

    if disable_shared_key and not tls:
        raise click.UsageError("--disable-shared-key needs --tls (Entra ID tokens need HTTPS)")
    mode = StackMode(tls=True, shared_key=False if disable_shared_key else None) if tls else None
    stack = LocalStack(
        home, storage_connection_string=storage_connection_string, azurite=azurite, faults=faults, mode=mode
    )
    endpoints = stack.up(node_image=node_image, progress=lambda line: click.echo(f"batchbox: {line}", err=True))
    if as_json:
        click.echo(json.dumps(endpoints.as_dict()))
        return
    click.echo(f"Batch emulator:  {endpoints.batch_url}  (account {endpoints.batch_account}; {stack.mode.describe()})")
    click.echo(f"Portal:          {endpoints.portal_url or 'no token yet: batchbox local down, then up'}")
    storage = "the given connection string" if storage_connection_string else "Azurite, account devstoreaccount1"
    click.echo(f"Blob storage:    {storage}")
    click.echo(f"State:           {endpoints.state_dir}")
    click.echo(f"Faults:          {stack.active_faults() or 'off'}")
    if endpoints.ca_bundle:
        click.echo(f"CA bundle:       {endpoints.ca_bundle}  (export REQUESTS_CA_BUNDLE and SSL_CERT_FILE)")
        click.echo("Tokens:          batchbox local token [--audience https://storage.azure.com]")
    click.echo("Keys (local-only, public): batchbox local up --json")


@local.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def local_status(as_json: bool, home: Path | None) -> None:
    """Say whether Azurite and the emulator are running, and which faults the emulator injects."""
    from batchbox.backends.local.stack import LocalStack

    stack = LocalStack(home)
    services = stack.status()
    faults = stack.active_faults()
    if as_json:
        shown = {s.name: {"running": s.running, "pid": s.pid, "url": s.url, "log": s.log} for s in services}
        shown["emulator"]["faults"] = faults
        click.echo(json.dumps(shown))
        return
    for service in services:
        state = f"running (pid {service.pid})" if service.running else "stopped"
        click.echo(f"{service.name:9} {state:22} {service.url}  log: {service.log}")
    if faults is not None:
        click.echo(f"faults    ON: {faults}")


@local.command()
@click.option("--remove-nodes", is_flag=True, help="Also remove the node containers (else they are re-adopted).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def down(remove_nodes: bool, home: Path | None) -> None:
    """Stop what `local up` started (by PID)."""
    from batchbox.backends.local.stack import LocalStack

    for line in LocalStack(home).down(remove_nodes=remove_nodes) or ["nothing was running"]:
        click.echo(line)


@local.command()
@click.option(
    "--audience",
    default="https://batch.core.windows.net/",
    show_default=True,
    help="The token's audience (https://storage.azure.com for blob storage).",
)
@click.option(
    "--lifetime",
    type=click.IntRange(min=60, max=24 * 3600),
    default=3600,
    show_default=True,
    help="Seconds the token is valid.",
)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def token(audience: str, lifetime: int, home: Path | None) -> None:
    """Print an access token of the local Entra ID issuer (made by `local up --tls`), for scripts.

    This is the one command that prints a secret: use it as `Authorization: Bearer $(batchbox local token)`.
    """
    from batchbox.backends.local.entra import LocalIssuer
    from batchbox.backends.local.stack import LocalStack

    issuer = LocalIssuer.load(LocalStack(home).entra_dir)
    click.echo(issuer.issue(audience, lifetime=lifetime).token)


@local.command()
@click.argument("pool_id")
@click.argument("node_ids", nargs=-1)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def preempt(pool_id: str, node_ids: tuple[str, ...], home: Path | None) -> None:
    """Preempt spot/low-priority nodes of POOL_ID (all of them unless NODE_IDS are given), as Azure reclaims spot
    capacity: the nodes go `preempted`, their running tasks are requeued and the pool replaces them."""
    from batchbox.backends.local.admin import preempt_nodes
    from batchbox.backends.local.stack import LocalStack

    endpoints = LocalStack(home).endpoints()
    for node_id in preempt_nodes(endpoints.batch_url, endpoints.batch_account, endpoints.batch_key, pool_id, node_ids):
        click.echo(f"preempted {node_id}")
