"""What moves in the emulator: task scheduling onto node slots, node lifecycle, task and job state changes.

Handlers call :class:`Runtime` for every lifecycle transition (``runtime.pools``, ``runtime.jobs``,
``runtime.tasks``) and for the node-agent protocol (``runtime.agents``). See docs/emulator-design.md.

The package imports none of its modules (:class:`batchbox.emulator.runtime.runtime.Runtime` is the entry point), so
that importing one of them, such as :mod:`~batchbox.emulator.runtime.ports`, does not load them all.
"""

__all__: list[str] = []
