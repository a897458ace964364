"""``batchbox app add|list|remove``: application packages of the local stack.

Batch keeps an account's application packages in its linked storage account; locally that is the stack's Azurite,
which the emulator reads for ``GET /applications``, for pools' package references and for the packages it hands to
nodes. These commands start the local stack when it is not running (like every local command).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from batchbox.cli.errors import handle_errors

if TYPE_CHECKING:
    from batchbox.emulator.applications import PackageCatalog

__all__ = ["app"]

_HOME_HELP = "State directory of the local stack (default $BATCHBOX_HOME or ~/.local/share/batchbox)."


def _catalog(home: Path | None) -> PackageCatalog:
    from batchbox.backends.local.stack import LocalStack
    from batchbox.emulator.applications import PackageCatalog
    from batchbox.emulator.storage_link import LinkedStorage

    endpoints = LocalStack(home).up()
    return PackageCatalog(LinkedStorage(endpoints.storage_connection_string, ca_bundle=endpoints.ca_bundle or None))


@click.group()
def app() -> None:
    """Application packages (zip files) of the local stack, as `batch application package` manages them on Azure."""


@app.command("add")
@click.argument("app_id")
@click.argument("version")
@click.argument("package", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="FILE.zip")
@click.option("--display-name", help="The application's display name (default: its id).")
@click.option("--default", "make_default", is_flag=True, help="Make this the default version (the first one is).")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def add(
    app_id: str, version: str, package: Path, display_name: str | None, make_default: bool, home: Path | None
) -> None:
    """Register FILE.zip as VERSION of the application APP_ID."""
    from batchbox.emulator.applications.catalog import check_upload

    check_upload(app_id, version, package)
    catalog = _catalog(home)
    added = catalog.add(app_id, version, package, display_name=display_name, make_default=make_default)
    default = " (default)" if (added.default_version or "").lower() == version.lower() else ""
    click.echo(f"added {added.id} {version}{default}")


@app.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def list_applications(as_json: bool, home: Path | None) -> None:
    """List the applications with their versions and default version."""
    catalog = _catalog(home)
    apps = catalog.applications()
    if as_json:
        rows = [{**a.rest(), "defaultVersion": a.default_version} for a in apps]
        click.echo(json.dumps(rows))
        return
    if not apps:
        click.echo("no application packages")
        return
    for application in apps:
        versions = ", ".join(sorted(application.versions))
        click.echo(f"{application.id:24} default {application.default_version or '-':10} versions {versions}")


@app.command("remove")
@click.argument("app_id")
@click.argument("version", required=False)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help=_HOME_HELP)
@handle_errors
def remove(app_id: str, version: str | None, home: Path | None) -> None:
    """Remove VERSION of APP_ID, or the whole application when no VERSION is given."""
    from batchbox.emulator.applications.catalog import check_application_id, check_version

    check_application_id(app_id)
    if version is not None:
        check_version(version)
    catalog = _catalog(home)
    removed = catalog.remove(app_id, version)
    click.echo(f"removed {app_id} {', '.join(removed)}")
