"""The batchbox Batch emulator: the Azure Batch REST API on one machine, with Docker containers as compute nodes.

Run it with ``batchbox emulator`` / ``python -m batchbox.emulator``, or from Python::

    from batchbox.emulator import EmulatorConfig, run
    run(EmulatorConfig(port=8446))

``create_app(config)`` builds the ASGI app without serving it (tests, embedding). See ``docs/emulator-design.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import EmulatorConfig

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["EmulatorConfig", "create_app", "run"]


def create_app(config: EmulatorConfig, **kwargs: Any) -> Starlette:
    """Build the emulator's Starlette app (``batchbox.emulator.app.create_app``, imported on first use)."""
    from .app import create_app as build

    return build(config, **kwargs)


def run(config: EmulatorConfig, **kwargs: Any) -> None:
    """Serve the emulator in the foreground (``batchbox.emulator.server.run``)."""
    from .server import run as serve

    serve(config, **kwargs)
