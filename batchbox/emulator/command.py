"""``batchbox emulator`` / ``python -m batchbox.emulator``: run the local Batch emulator in the foreground.

The command lives with the emulator so that ``python -m batchbox.emulator`` does not import the CLI package; the
``batchbox`` CLI adds it to its group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from batchbox.emulator.config import (
    DEFAULT_ACCOUNT_KEY,
    DEFAULT_ACCOUNT_NAME,
    DEFAULT_PORT,
    LOG_LEVELS,
    EmulatorConfig,
)
from batchbox.emulator.faults.config import FaultConfig, FaultConfigError, load_fault_file

__all__ = ["STORAGE_ENV", "emulator"]

STORAGE_ENV = "BATCHBOX_STORAGE_CONNECTION_STRING"
"""Where ``batchbox emulator`` reads the linked storage's connection string (it holds a key: keep it off argv)."""

_NODE_IMAGE_DEFAULT = next(f.default for f in dataclasses.fields(EmulatorConfig) if f.name == "node_image")
_ON_OFF = click.Choice(["on", "off"])
_F = TypeVar("_F", bound=Callable[..., Any])


def _behaviour_options(command: _F) -> _F:
    """The options that change what the emulated service accepts or does (VM sizes, images, autoscale, spot)."""
    options = [
        click.option(
            "--vm-size-limits",
            type=_ON_OFF,
            default="on",
            show_default=True,
            help="Give node containers the vCPUs and memory of the pool's vmSize (capped to this machine). "
            "off: no limits, and sizes the emulator does not know are accepted.",
        ),
        click.option(
            "--image-checks",
            type=_ON_OFF,
            default="on",
            show_default=True,
            help="Refuse images Batch does not support and retired node agent SKUs at pool creation, as Batch "
            "does. off: any imageReference and nodeAgentSKUId is accepted (a local-only shortcut).",
        ),
        click.option(
            "--autoscale-min-interval",
            type=click.FloatRange(1.0),
            default=300.0,
            show_default=True,
            help="Shortest autoScaleEvaluationInterval accepted, in seconds (Batch's minimum is 5 minutes; "
            "lower it for tests).",
        ),
        click.option(
            "--resize-timeout-min",
            type=click.FloatRange(1.0),
            default=300.0,
            show_default=True,
            help="Shortest resizeTimeout accepted, in seconds (Batch's minimum is 5 minutes; lower it for tests).",
        ),
        click.option(
            "--preempt-rate",
            type=click.FloatRange(0.0, 1.0),
            default=0.0,
            show_default=True,
            help="Chance per minute that each spot/low-priority node is preempted (chaos runs; 0: only "
            "`batchbox local preempt`).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="TCP port.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=(
        "Where the database, node directories and pid file live "
        "[default: $BATCHBOX_HOME/emulator, else ~/.local/share/batchbox/emulator]."
    ),
)
@click.option("--node-image", default=_NODE_IMAGE_DEFAULT, show_default=True, help="Docker image of the nodes.")
@click.option("--account-name", default=DEFAULT_ACCOUNT_NAME, show_default=True, help="Batch account name.")
@click.option(
    "--account-key",
    envvar="BATCHBOX_EMULATOR_KEY",
    show_envvar=True,
    default=None,
    help="Base64 account key clients sign with [default: the public local development key].",
)
@click.option(
    "--entra-issuer",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help=(
        "Accept Microsoft Entra ID bearer tokens of this issuer (its OpenID-style metadata JSON, whose jwks_uri "
        "names its keys): signature, issuer, audience and lifetime are verified."
    ),
)
@click.option(
    "--disable-shared-key",
    is_flag=True,
    help="Refuse SharedKey requests, like a Batch account that allows only Microsoft Entra ID.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve HTTPS with this certificate (PEM; with --tls-key).",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The private key of --tls-cert (PEM).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CA certificate the nodes verify the emulator's and blob storage's certificates with (mounted read-only).",
)
@click.option(
    "--instance-label", default="default", show_default=True, help="Label value that marks this instance's nodes."
)
@click.option(
    "--storage-connection-string",
    envvar=STORAGE_ENV,
    show_envvar=True,
    default=None,
    help="The linked storage account (Azurite locally): application packages and blob mounts live there.",
)
@click.option(
    "--allow-privileged-containers",
    is_flag=True,
    help="Let container tasks use --privileged, --cap-add and --security-opt (they could take over this machine).",
)
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True, help="Log verbosity.")
@click.option(
    "--faults",
    "faults_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A TOML file whose [faults] table says which Azure failures to inject (see README); none by default.",
)
@click.option(
    "--storage-upstream",
    help="Azurite's blob endpoint (http://127.0.0.1:10000) for the storage fault proxy ([faults.storage]).",
)
@click.option(
    "--storage-proxy-port",
    type=click.IntRange(1, 65535),
    help="Port of the storage fault proxy (127.0.0.1); clients use it instead of Azurite's.",
)
@_behaviour_options
@click.option(
    "--min-schedule-interval",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Shortest job schedule recurrenceInterval / startWindow in seconds (Batch's is 60; lower it for tests only).",
)
@click.pass_context
def emulator(
    ctx: click.Context,
    host: str,
    port: int,
    state_dir: Path | None,
    node_image: str,
    account_name: str,
    account_key: str | None,
    entra_issuer: Path | None,
    disable_shared_key: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    ca_file: Path | None,
    instance_label: str,
    storage_connection_string: str | None,
    allow_privileged_containers: bool,
    log_level: str,
    faults_file: Path | None,
    storage_upstream: str | None,
    storage_proxy_port: int | None,
    vm_size_limits: str,
    image_checks: str,
    autoscale_min_interval: float,
    resize_timeout_min: float,
    preempt_rate: float,
    min_schedule_interval: float,
) -> None:
    """Run the local Azure Batch emulator in the foreground (Ctrl-C stops it).

    It also serves the local portal at /portal/ on the same port; in a terminal it prints the portal's URL with its
    token (kept in STATE_DIR/portal.token).
    """
    # The server stack (Starlette, uvicorn) is imported only by this command, not by every `batchbox` call.
    from batchbox.emulator.app import open_store
    from batchbox.emulator.server import run

    key = _checked_account(account_name, account_key)
    faults = _checked_faults(faults_file, storage_upstream, storage_proxy_port)
    _check_links(storage_connection_string, tls_cert, tls_key, disable_shared_key, entra_issuer)

    def absolute(path: Path | None) -> Path | None:
        return path.expanduser().resolve() if path is not None else None

    config = EmulatorConfig(
        faults=faults,
        storage_upstream=storage_upstream,
        storage_proxy_port=storage_proxy_port,
        host=host,
        port=port,
        node_image=node_image,
        account_name=account_name,
        account_key=key,
        entra_issuer=absolute(entra_issuer),
        shared_key_enabled=not disable_shared_key,
        tls_certfile=absolute(tls_cert),
        tls_keyfile=absolute(tls_key),
        ca_file=absolute(ca_file),
        instance_label=instance_label,
        storage_connection_string=storage_connection_string or None,
        allow_privileged_containers=allow_privileged_containers,
        vm_size_limits=vm_size_limits == "on",
        image_checks=image_checks == "on",
        autoscale_min_interval=autoscale_min_interval,
        resize_timeout_min=resize_timeout_min,
        preempt_rate=preempt_rate,
        min_schedule_interval=min_schedule_interval,
    )
    if state_dir is not None:
        config = dataclasses.replace(config, state_dir=state_dir.expanduser().resolve())
    host_given = ctx.get_parameter_source("host") == click.core.ParameterSource.COMMANDLINE
    try:
        open_store(config).close()  # an unreadable state dir is a one-line error, not a failed server startup
        run(config, log_level=log_level, allow_non_loopback=host_given)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


def _checked_account(account_name: str, account_key: str | None) -> str:
    """The account key to serve (the well-known one when none is given), once name and key are well formed."""
    from batchbox.emulator.protocol.auth import decode_account_key

    if not account_name or any(c in account_name for c in ":/ "):
        raise click.BadParameter("must be a plain account name", param_hint="--account-name")
    key = account_key if account_key is not None else DEFAULT_ACCOUNT_KEY
    try:
        decode_account_key(key)
    except ValueError:
        raise click.BadParameter("is not valid base64", param_hint="--account-key") from None
    return key


def _checked_faults(
    faults_file: Path | None, storage_upstream: str | None, storage_proxy_port: int | None
) -> FaultConfig:
    """The fault configuration of ``--faults``, with the storage proxy options it needs."""

    try:
        faults = load_fault_file(faults_file) if faults_file is not None else FaultConfig()
    except FaultConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    if (storage_upstream is None) != (storage_proxy_port is None):
        raise click.UsageError("--storage-upstream and --storage-proxy-port go together")
    if faults.storage.enabled and storage_upstream is None:
        raise click.UsageError(
            "[faults.storage] needs the storage proxy: give --storage-upstream and --storage-proxy-port"
        )
    return faults


def _check_links(
    storage_connection_string: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    disable_shared_key: bool,
    entra_issuer: Path | None,
) -> None:
    """The linked storage account, TLS and authentication options are usable together."""
    from batchbox.emulator.protocol.tokens import TokenVerifier

    if storage_connection_string:
        from batchbox.emulator.storage_link import LinkedStorage

        try:
            LinkedStorage(storage_connection_string).close()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--storage-connection-string") from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if disable_shared_key and entra_issuer is None:
        raise click.UsageError("--disable-shared-key needs --entra-issuer: no request could authenticate otherwise")
    if entra_issuer is not None:
        try:
            TokenVerifier.from_openid_configuration(entra_issuer)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--entra-issuer") from None
