"""The emulator's API coverage: every data-plane operation, every accepted property and what the emulator does with
it. ``docs/api-coverage.md`` is generated from here (``python -m batchbox.emulator.coverage``)."""

from __future__ import annotations

from batchbox.emulator.coverage.operations import OPERATIONS, RETIRED_OPERATIONS, Operation
from batchbox.emulator.coverage.properties import PROPERTIES, Handling, PropertyUse, known_properties

__all__ = ["OPERATIONS", "PROPERTIES", "RETIRED_OPERATIONS", "Handling", "Operation", "PropertyUse", "known_properties"]
