"""What moves in the emulator: task scheduling onto node slots, node lifecycle, task and job state changes.

Handlers call :class:`Runtime` after they changed the store; ``handlers/agent.py`` calls its ``agent_*``
methods for the node-agent protocol. See docs/emulator-design.md.
"""

from __future__ import annotations

from batchbox.emulator.runtime.runtime import Runtime

__all__ = ["Runtime"]
