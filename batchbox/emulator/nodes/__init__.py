"""The emulator's compute nodes as Docker containers (see :mod:`batchbox.emulator.nodes.docker_driver`).

The package imports none of its modules: the local backend uses :mod:`~batchbox.emulator.nodes.docker_engine`
without loading the emulator's runtime.
"""

__all__: list[str] = []
