"""What moves in the emulator: task scheduling onto node slots, node lifecycle, task and job state changes.

Handlers call :class:`Runtime` for every lifecycle transition (``runtime.pools``, ``runtime.jobs``,
``runtime.tasks``) and for the node-agent protocol (``runtime.agents``). See docs/emulator-design.md.
"""

from __future__ import annotations

from batchbox.emulator.runtime.runtime import Runtime

__all__ = ["Runtime"]
