"""The local portal: pools, nodes, jobs, tasks and a timeline of every task run, in the browser, live.

Served by the emulator at ``/portal/`` on the Batch API's port (``site.routes``). The page (``static/``: plain
HTML, CSS and JavaScript modules, no build step, works offline) reads JSON endpoints under ``/portal/api/`` that use
the same store and runtime as the Batch API; the SharedKey-protected Batch API itself is not opened up. Every
request passes :class:`~batchbox.emulator.portal.guard.PortalGuard` (loopback only, the portal token as a cookie).

This package's top level stays light (the token helpers only): the local stack imports it without the web stack.
"""

from __future__ import annotations

from batchbox.emulator.portal.token import PORTAL_PATH, ensure_token, new_token, portal_url, read_token, token_path

__all__ = ["PORTAL_PATH", "ensure_token", "new_token", "portal_url", "read_token", "token_path"]
