"""The local portal: pools, nodes, jobs, tasks and a timeline of every task run, in the browser, live.

Served by the emulator at ``/portal/`` on the Batch API's port. The page (``static/``: plain HTML, CSS and
JavaScript modules, no build step, works offline) reads JSON endpoints under ``/portal/api/`` that use the same
store and runtime as the Batch API; the SharedKey-protected Batch API itself is not opened up. Every request passes
:class:`~batchbox.emulator.portal.guard.PortalGuard` (loopback only, the portal token as a cookie).

Each section of the portal is one API module here (its ``routes``) and one page module in ``static/sections/``;
adding a section is adding both and naming them in :data:`SECTIONS` and ``static/sections/index.js``.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from batchbox.emulator.portal import jobs, pages, pools, tasks, timeline
from batchbox.emulator.portal.guard import PortalGuard
from batchbox.emulator.portal.token import PORTAL_PATH, ensure_token, new_token, portal_url, read_token, token_path

__all__ = [
    "PORTAL_PATH",
    "SECTIONS",
    "ensure_token",
    "new_token",
    "portal_url",
    "read_token",
    "routes",
    "token_path",
]

SECTIONS = (pools, jobs, tasks, timeline)
"""The API modules of the portal's sections, each with its ``routes`` (paths relative to ``/portal``)."""

routes: list[BaseRoute] = [
    Mount(
        PORTAL_PATH,
        routes=[*pages.routes, *(route for section in SECTIONS for route in section.routes)],
        middleware=[Middleware(PortalGuard)],
    )
]
"""The one route the emulator's app mounts: everything under ``/portal``, behind the guard."""
