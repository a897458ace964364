"""Application operations: ``GET /applications`` and ``GET /applications/{applicationId}``.

The packages live in the linked storage account (``batchbox app add`` puts them there); without one the list is
empty. Reading the catalog blocks on storage, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import BatchError
from batchbox.emulator.handlers.common import entity_response, get_runtime, list_page

__all__ = ["routes"]


def _not_found(app_id: str) -> BatchError:
    return BatchError(
        404, "ApplicationNotFound", "The specified application does not exist.", {"ApplicationId": app_id}
    )


async def list_applications(request: Request) -> Response:
    catalog = get_runtime(request).applications
    apps = await asyncio.to_thread(catalog.applications) if catalog is not None else []
    return list_page(request, "applications", [app.rest() for app in apps], filter_properties=frozenset())


async def get_application(request: Request) -> Response:
    app_id = str(request.path_params["application_id"])
    catalog = get_runtime(request).applications
    app = await asyncio.to_thread(catalog.get, app_id) if catalog is not None else None
    if app is None:
        raise _not_found(app_id)
    return entity_response(request, app.rest(), "applications")


routes: list[Route] = [
    Route("/applications", list_applications, methods=["GET"]),
    Route("/applications/{application_id}", get_application, methods=["GET"]),
]
"""The application routes (read-only: packages are managed with ``batchbox app``)."""
