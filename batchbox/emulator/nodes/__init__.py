"""The emulator's compute nodes as Docker containers (see :mod:`batchbox.emulator.nodes.docker_driver`)."""

from batchbox.emulator.nodes.docker_driver import (
    NodeContainer,
    NodeDriver,
    NodeDriverError,
    NodeImageMissingError,
)

__all__ = ["NodeContainer", "NodeDriver", "NodeDriverError", "NodeImageMissingError"]
