"""The portal's page and its static files (plain HTML, CSS and JavaScript modules shipped in the package)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def index(request: Request) -> Response:
    """The single page; the sections are JavaScript modules it loads from ``static/``."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


routes: list[BaseRoute] = [
    Route("/", index, methods=["GET"]),
    Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="portal-static"),
]
"""Paths relative to ``/portal``."""
