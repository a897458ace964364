"""Options shared by several commands, and opening the chosen backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchbox.core.backend import Backend, open_backend
from batchbox.core.registry import known_backends
from batchbox.core.settings import AUTH_MODES, load_settings

__all__ = ["auth_option", "backend_option", "open_backend_for"]

_F = TypeVar("_F", bound=Callable[..., Any])


def backend_option(command: _F) -> _F:
    """``--backend NAME``, one of the registered backends (default: ``$BATCHBOX_BACKEND``, else local)."""
    backends = known_backends()
    described = "; ".join(f"{name}: {entry.description}" for name, entry in backends.items() if entry.description)
    option = click.option(
        "--backend",
        type=click.Choice(list(backends)),
        default=None,
        help=f"Where to run ({described}). Default: $BATCHBOX_BACKEND or local.",
    )
    return option(command)


def auth_option(command: _F) -> _F:
    """``--auth key|entra`` (default: ``$BATCHBOX_AUTH``, else keys where set and Entra ID elsewhere)."""
    option = click.option(
        "--auth",
        type=click.Choice(list(AUTH_MODES)),
        default=None,
        help=(
            "How to authenticate: key (shared keys) or entra (Microsoft Entra ID tokens only; locally: the stack "
            "with TLS and its token issuer). Default: $BATCHBOX_AUTH, else keys where they are set."
        ),
    )
    return option(command)


def open_backend_for(backend: str | None, auth: str | None = None) -> Backend:
    """Resolve settings (environment, batchbox.toml) and open the backend; fails before any work is done."""
    return open_backend(load_settings(backend=backend, auth=auth))
