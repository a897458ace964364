"""``multiInstanceSettings`` of an add-task body: validated and stored as the service returns them.

A multi-instance task needs ``numberOfInstances`` nodes at once (default 1) of a pool with inter-node communication
and one task slot per node; a pool without them never runs it (it stays ``active``, as Batch documents), so the pool
is not checked here. The emulator refuses two combinations it does not run: a multi-instance task in a container
(``containerSettings``) and one in a job with a job preparation task.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.resources.common import (
    Body,
    opt_int,
    opt_list,
    opt_object,
    req_str,
    unsupported_property,
    validate_resource_files,
)

__all__ = ["NAME", "instance_count", "validate_multi_instance"]

NAME = "multiInstanceSettings"


def validate_multi_instance(body: Body, job: Body) -> Body | None:
    """The task's ``multiInstanceSettings`` as stored (``numberOfInstances`` always set), or None without them.

    Raises:
        BatchError: MissingRequiredProperty (``coordinationCommandLine``), InvalidPropertyValue (a count below 1,
            ``requiredSlots`` other than 1), UnsupportedProperty (with ``containerSettings`` or in a job with a
            job preparation task).
    """
    value = opt_object(body, NAME)
    if value is None:
        return None
    count = opt_int(value, "numberOfInstances", NAME, minimum=1)
    if value.get("coordinationCommandLine") is None:
        raise missing_property(f"{NAME}.coordinationCommandLine")
    command = req_str(value, "coordinationCommandLine", NAME)
    common = validate_resource_files(opt_list(value, "commonResourceFiles", NAME), f"{NAME}.commonResourceFiles")
    slots = opt_int(body, "requiredSlots", minimum=1)
    if slots is not None and slots != 1:
        raise invalid_property("requiredSlots", slots, "A multi-instance task must take 1 slot (requiredSlots 1).")
    _refuse_unsupported(body, job)
    settings: Body = {"numberOfInstances": 1 if count is None else count, "coordinationCommandLine": command}
    if common:
        settings["commonResourceFiles"] = common
    return settings


def _refuse_unsupported(body: Body, job: Body) -> None:
    if body.get("containerSettings") is not None:
        raise unsupported_property(
            NAME, "The local batchbox emulator does not run multi-instance tasks in containers (containerSettings)."
        )
    if isinstance(job.get("jobPreparationTask"), dict):
        raise unsupported_property(
            NAME, "The local batchbox emulator does not run multi-instance tasks in a job with a job preparation task."
        )


def instance_count(doc: Any) -> int | None:
    """The ``numberOfInstances`` of a stored task document; None for a task that is not multi-instance."""
    settings = doc.get(NAME) if isinstance(doc, dict) else None
    if not isinstance(settings, dict):
        return None
    count = settings.get("numberOfInstances")
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else 1
