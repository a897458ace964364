"""What the runtime needs from the store and from the node driver, as structural types (its two ports).

``batchbox.emulator.store.Store`` satisfies :class:`StoreLike`; ``batchbox.emulator.nodes.docker_driver.NodeDriver``
satisfies :class:`NodeDriverLike` and lists its containers as :class:`NodeContainer`. The runtime depends on nothing
else of either, so another driver (or a store double in a test) only has to provide these methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from batchbox.emulator.run_history import RunHistory

__all__ = ["AllocationGate", "NodeContainer", "NodeDriverLike", "StoreLike"]


AllocationGate = Callable[
    [dict[str, Any], list[bool], Iterable[tuple[str, int, int]]], tuple[list[bool], list[dict[str, Any]]]
]
"""Decides which nodes a resize may create (the fault layer's quotas and allocation failures): given the pool's
document, one entry per node wanted (True: dedicated) and ``(vm size, dedicated, low-priority)`` node counts of
every pool, it returns which nodes are granted and the pool's resize errors."""


@dataclass(frozen=True)
class NodeContainer:
    """One node container as a driver lists it.

    Attributes:
        container_id: the full container id.
        pool_id: the pool the node belongs to.
        status: the engine's state: ``created``, ``running``, ``exited``, ``restarting``, ``paused``, ``dead`` ...
        name: the container name.
    """

    container_id: str
    pool_id: str
    status: str
    name: str


class StoreLike(Protocol):
    """What the runtime calls on the store (``batchbox.emulator.store.Store`` documents each method)."""

    runs: RunHistory

    def transaction(self) -> AbstractContextManager[Any]: ...
    def insert_pool(self, doc: dict[str, Any]) -> bool: ...
    def get_pool(self, pool_id: str) -> dict[str, Any] | None: ...
    def list_pools(self) -> list[dict[str, Any]]: ...
    def update_pool(self, doc: dict[str, Any]) -> dict[str, Any]: ...
    def delete_pool(self, pool_id: str) -> None: ...
    def upsert_node(
        self, pool_id: str, doc: dict[str, Any], *, secret: str | None = None, container_id: str | None = None
    ) -> None: ...
    def get_node_secret(self, node_id: str) -> str | None: ...
    def get_node_container(self, node_id: str) -> str | None: ...
    def list_nodes(self, pool_id: str | None = None) -> list[dict[str, Any]]: ...
    def delete_node(self, node_id: str) -> None: ...
    def insert_job(self, doc: dict[str, Any]) -> bool: ...
    def get_job(self, job_id: str) -> dict[str, Any] | None: ...
    def list_jobs(self) -> list[dict[str, Any]]: ...
    def update_job(self, doc: dict[str, Any]) -> dict[str, Any]: ...
    def delete_job(self, job_id: str) -> None: ...
    def insert_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> list[bool]: ...
    def get_task(self, job_id: str, task_id: str) -> dict[str, Any] | None: ...
    def update_task(self, job_id: str, doc: dict[str, Any]) -> dict[str, Any]: ...
    def update_tasks(self, job_id: str, docs: list[dict[str, Any]]) -> None: ...
    def delete_task(self, job_id: str, task_id: str) -> None: ...
    def list_tasks(
        self,
        job_id: str,
        *,
        states: Sequence[str] | None = None,
        after_key: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...


class NodeDriverLike(Protocol):
    """The container side of the nodes (blocking calls; the runtime runs them in worker threads)."""

    def create_node(self, pool_id: str, node_id: str, secret: str) -> str: ...
    def remove_node(self, node_id: str) -> None: ...
    def list_nodes(self) -> Mapping[str, NodeContainer]: ...
