"""The portal's one route for the emulator's app: everything under ``/portal``, behind the guard.

Each section of the portal is one API module (its ``routes``, paths relative to ``/portal``) and one page module in
``static/sections/``; adding a section is adding both and naming them in :data:`SECTIONS` and
``static/sections/index.js``.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from batchbox.emulator.portal import jobs, pages, pools, tasks, timeline
from batchbox.emulator.portal.guard import PortalGuard
from batchbox.emulator.portal.token import PORTAL_PATH

__all__ = ["PORTAL_PATH", "SECTIONS", "routes"]

SECTIONS = (pools, jobs, tasks, timeline)
"""The API modules of the portal's sections."""

routes: list[BaseRoute] = [
    Mount(
        PORTAL_PATH,
        routes=[*pages.routes, *(route for section in SECTIONS for route in section.routes)],
        middleware=[Middleware(PortalGuard)],
    )
]
"""What the emulator's app mounts."""
