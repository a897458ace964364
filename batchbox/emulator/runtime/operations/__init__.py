"""The runtime's surface for handlers: one class per resource, one method per transition.

Each method checks the transition is allowed (a ``BatchError`` when not), writes the store, makes things move and
returns the stored document the handler renders. Two kinds of arguments, one rule:

* a method that applies the client's edit (``add``, ``update``, ``resize``) takes the document a handler built with
  ``batchbox.emulator.resources`` (validated, pure) and stores it;
* a method that is a transition (``delete``, ``terminate``, ``reactivate``, ``stop_resize``) takes ids: the runtime
  reads the current document, checks its state and edits it itself.

Module per resource: ``pools``, ``nodes``, ``jobs``, ``schedules``, ``tasks``, ``agents`` (the private node-agent
API). A new resource's transitions get a module of their own here and an attribute on ``Runtime``.
"""

from __future__ import annotations

from batchbox.emulator.runtime.operations.agents import AgentOperations
from batchbox.emulator.runtime.operations.jobs import JobOperations
from batchbox.emulator.runtime.operations.nodes import NodeOperations
from batchbox.emulator.runtime.operations.pools import PoolOperations
from batchbox.emulator.runtime.operations.schedules import ScheduleOperations
from batchbox.emulator.runtime.operations.tasks import TaskOperations

__all__ = [
    "AgentOperations",
    "JobOperations",
    "NodeOperations",
    "PoolOperations",
    "ScheduleOperations",
    "TaskOperations",
]
