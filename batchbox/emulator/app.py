"""The emulator's ASGI app: the ROUTES TABLE (where every request enters), the protocol middleware, the lifespan.

Reading order for a request: ``BatchProtocolMiddleware`` (request id, api-version, SharedKey, errors) ->
``FaultMiddleware`` (injected faults, when any are on) -> the route below -> ``handlers/<resource>.py`` ->
``resources`` (validation, documents) -> ``Store`` (plain property changes) or one ``Runtime`` transition
(``runtime.pools`` / ``.jobs`` / ``.tasks``).

The lifespan opens the ``Store`` (``<state_dir>/state.db``, sealed under the account key), builds the ``Runtime``
(with a ``NodeDriver`` on the Docker engine unless a ``runtime_factory`` is given), awaits ``runtime.start()`` and,
at shutdown, ``runtime.stop()``; node containers keep running and are re-adopted by the next start. With storage
faults and a storage upstream configured it also runs the storage fault proxy.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from batchbox.emulator.config import EmulatorConfig
from batchbox.emulator.disk_space import StateDisk
from batchbox.emulator.faults import Faults
from batchbox.emulator.faults import admin as fault_admin
from batchbox.emulator.faults.middleware import CutAnswerLogFilter, FaultMiddleware
from batchbox.emulator.handlers import (
    account,
    admin,
    agent,
    applications,
    autoscale,
    files,
    jobs,
    nodes,
    pools,
    schedules,
    tasks,
)
from batchbox.emulator.nodes.docker_driver import NodeDriver
from batchbox.emulator.nodes.docker_engine import connect_docker
from batchbox.emulator.portal import site as portal
from batchbox.emulator.protocol.middleware import AGENT_PATH_PREFIX, BatchProtocolMiddleware
from batchbox.emulator.resources import DEFAULT_MAX_NODES
from batchbox.emulator.runtime.runtime import Runtime
from batchbox.emulator.sealing import Sealer
from batchbox.emulator.store import Store

__all__ = ["NODE_LABELS_ENV", "ROUTES", "RuntimeFactory", "create_app", "open_store", "parse_labels"]

_log = logging.getLogger(__name__)

NODE_LABELS_ENV = "BATCHBOX_NODE_LABELS"
"""Extra labels for every node container, ``key=value[,key=value...]`` (tests set ``batchbox.test=1``)."""


RuntimeFactory = Callable[[EmulatorConfig, Store], Runtime]
"""Builds the runtime from the config and the opened store (called inside the lifespan), e.g. to give it another
node driver: ``lambda config, store: Runtime(config, store, driver)``."""


ROUTES: list[BaseRoute] = [
    *pools.routes,  # /pools, /pools/{id}, resize, stopresize, updateproperties, /nodecounts
    *autoscale.routes,  # /pools/{id}/enableautoscale, disableautoscale, evaluateautoscale, removenodes
    *nodes.routes,  # /pools/{id}/nodes[/{nodeId}[/reboot|reimage|deallocate|start|...|users|extensions]]
    *account.routes,  # /supportedimages, /poolusagemetrics
    *jobs.routes,  # /jobs, /jobs/{id}, disable, enable, terminate, taskcounts, jobpreparationandreleasetaskstatus
    *schedules.routes,  # /jobschedules, /jobschedules/{id}, disable, enable, terminate, jobs
    *tasks.routes,  # /jobs/{id}/tasks, addtaskcollection, /jobs/{id}/tasks/{taskId}, subtasksinfo, terminate, ...
    *files.routes,  # task files and node files
    *applications.routes,  # /applications, /applications/{id}
    *agent.routes,  # /_agent/v1/...: the private node-agent API
    *fault_admin.routes,  # /_admin/v1/faults: the fault settings (SharedKey), not part of the Batch API
    *admin.routes,  # /_admin/v1/pools/{id}/preempt: preempt spot nodes (SharedKey), not part of the Batch API
    *portal.routes,  # /portal/...: the local portal in the browser (its own token, no SharedKey)
]
"""Every route of the emulator, Batch REST API first, then the node-agent API."""


def parse_labels(text: str | None) -> dict[str, str]:
    """``key=value,key2=value2`` -> dict (blank items are skipped).

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    labels: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{NODE_LABELS_ENV}: expected key=value, got {item!r}")
        labels[key.strip()] = value.strip()
    return labels


async def _default_runtime(app: Starlette, config: EmulatorConfig, store: Store) -> Runtime:
    """``Runtime(config, store, NodeDriver(connect_docker(), config))`` with the app's fault layer deciding node
    allocations and the auto pools' pool quota; the Docker ping runs in a worker thread."""
    client = await asyncio.to_thread(connect_docker)
    app.state.docker_client = client
    driver = NodeDriver(client, config, extra_labels=parse_labels(os.environ.get(NODE_LABELS_ENV)))
    faults = app.state.faults
    return Runtime(
        config, store, driver, allocation_gate=faults.allocation, pool_quota=lambda: faults.config.pool_quota
    )


@asynccontextmanager
async def _storage_proxy(config: EmulatorConfig, faults: Faults) -> AsyncIterator[None]:
    """The storage fault proxy, while the app runs, when the config gives it an upstream and a port."""
    if config.storage_upstream is None or config.storage_proxy_port is None:
        yield
        return
    from batchbox.emulator.faults.storage_proxy import StorageFaultProxy

    proxy = StorageFaultProxy(faults, config.storage_upstream, port=config.storage_proxy_port)
    await proxy.start()
    try:
        yield
    finally:
        await proxy.stop()


def open_store(config: EmulatorConfig, disk: StateDisk | None = None) -> Store:
    """Open (or create) the state database of ``config``, sealed under its account key.

    Args:
        config: the emulator's settings.
        disk: checks the state directory's free space before each transaction (see ``disk_space``).

    Raises:
        StoreError: the state was written by a newer schema version or under another account key.
    """
    return Store(config.database_path, Sealer(config.account_key, config.account_name), disk=disk)


def create_app(config: EmulatorConfig, *, runtime_factory: RuntimeFactory | None = None) -> Starlette:
    """Build the emulator app.

    Args:
        config: the emulator's settings (also kept in ``app.state.config``).
        runtime_factory: builds the runtime from ``(config, store)``; the default connects to the Docker engine
            (``connect_docker``) and builds ``Runtime(config, store, NodeDriver(client, config))``.

    Returns:
        The Starlette app; ``app.state`` holds ``config``, ``faults`` (the live fault settings), ``state_disk``
        (free space checks of the state directory), ``store`` and ``runtime`` while it runs.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        config.nodes_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(config, app.state.state_disk)
        app.state.store = store
        try:
            if runtime_factory is None:
                runtime = await _default_runtime(app, config, store)
            else:
                runtime = runtime_factory(config, store)
            app.state.runtime = runtime
            await runtime.start()
            try:
                async with _storage_proxy(config, app.state.faults):
                    yield
            finally:
                await runtime.stop()
        finally:
            store.close()
            client = getattr(app.state, "docker_client", None)
            if client is not None:
                client.close()

    faults = Faults(config.faults, config.state_dir)
    app = Starlette(
        routes=list(ROUTES),
        middleware=[
            Middleware(BatchProtocolMiddleware, config=config, exempt_prefixes=(AGENT_PATH_PREFIX, portal.PORTAL_PATH)),
            Middleware(FaultMiddleware, faults=faults),
        ],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.faults = faults
    app.state.state_disk = StateDisk(config.state_dir)
    server_log = logging.getLogger("uvicorn.error")
    server_log.filters = [f for f in server_log.filters if not isinstance(f, CutAnswerLogFilter)]
    server_log.addFilter(CutAnswerLogFilter(faults))
    if faults.enabled:
        _log.warning("faults on: %s", faults.config.describe())
    app.state.max_nodes_per_pool = DEFAULT_MAX_NODES
    return app
