"""The ``batchbox`` command with its HTTP requests and workflow steps recorded, for benchmarks that count them.

Same CLI, same code paths: before the command runs, the ``send`` of azure-core's two transports (requests, used
by the SDK clients, and aiohttp, used by blob transfers) and ``Workflow._step`` are wrapped to note the time, the
method and the URL path of every request sent and the start and end of every step. At exit the record goes, as
JSON, to the file named by ``$BATCHBOX_BENCH_RECORD``:
``{"requests": [[seconds, method, path], ...], "steps": [[name, start, end], ...]}`` (monotonic seconds).

Run: ``BATCHBOX_BENCH_RECORD=rec.json python -m bench.counted_cli run WORKLOAD ...``.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["RECORD_ENV", "main"]

RECORD_ENV = "BATCHBOX_BENCH_RECORD"

_lock = threading.Lock()
_requests: list[tuple[float, str, str]] = []
_steps: list[tuple[str, float, float]] = []


def _note(request: Any) -> None:
    path = urlsplit(str(request.url)).path
    with _lock:
        _requests.append((time.monotonic(), str(request.method), path))


def _wrap_sync(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    def counted(self: Any, request: Any, **kwargs: Any) -> Any:
        _note(request)
        return send(self, request, **kwargs)

    return counted


def _wrap_async(send: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(send)
    async def counted(self: Any, request: Any, **kwargs: Any) -> Any:
        _note(request)
        return await send(self, request, **kwargs)

    return counted


def _install() -> None:
    from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport

    from batchbox.core.workflow import Workflow

    RequestsTransport.send = _wrap_sync(RequestsTransport.send)  # type: ignore[method-assign]
    AioHttpTransport.send = _wrap_async(AioHttpTransport.send)  # type: ignore[method-assign]
    step = Workflow._step

    def timed_step(self: Workflow, name: str, action: Callable[[], Any]) -> Any:
        began = time.monotonic()
        try:
            return step(self, name, action)
        finally:
            with _lock:
                _steps.append((name, began, time.monotonic()))

    Workflow._step = timed_step  # type: ignore[method-assign]


def _write(path: str) -> None:
    with _lock, open(path, "w", encoding="utf-8") as out:
        json.dump({"requests": _requests, "steps": _steps}, out)


def main() -> None:
    record = os.environ.get(RECORD_ENV)
    if record:
        _install()
        atexit.register(_write, record)
    from batchbox.cli.main import main as batchbox_main

    sys.argv[0] = "batchbox"
    batchbox_main()


if __name__ == "__main__":
    main()
