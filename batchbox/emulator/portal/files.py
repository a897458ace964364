"""Task and node files for the portal: directory listings, the tail of a file as text, the whole file.

A node's root directory is on the host (``config.node_root``), so files are read straight from disk. Every path is
resolved (symlinks included) and must stay inside the task's or node's directory; anything else is 404
``FileNotFound``. A whole file is answered as ``text/plain`` when it starts as UTF-8 text, else as a download:
never as HTML.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from batchbox.emulator.confined_paths import resolve_inside
from batchbox.emulator.errors import BatchError
from batchbox.emulator.portal.common import Doc, get_config, json_answer, query_int

__all__ = ["TAIL_BYTES", "file_response", "listing_response", "tail_response", "task_root"]

TAIL_BYTES = 64 * 1024
"""How much of the end of stdout/stderr the task page shows by default."""
_MAX_TAIL_BYTES = 4 * 1024 * 1024
_SNIFF_BYTES = 4096


def _file_not_found(path: str) -> BatchError:
    return BatchError(404, "FileNotFound", "The specified file does not exist.", {"FilePath": path[:512]})


def task_root(request: Request, job: Mapping[str, Any], task: Mapping[str, Any]) -> Path | None:
    """The host directory of a task's current (or last) run; None when it never ran."""
    info = task.get("nodeInfo")
    node_id = info.get("nodeId") if isinstance(info, Mapping) else None
    if not isinstance(node_id, str) or not node_id:
        return None
    relative = info.get("taskRootDirectory") if isinstance(info, Mapping) else None
    if not isinstance(relative, str) or not relative:
        relative = f"workitems/{job['id']}/job-1/{task['id']}"
    return resolve_inside(get_config(request).node_root(node_id), relative)


def _requested(request: Request, root: Path | None) -> tuple[Path, str]:
    relative = request.query_params.get("path", "")
    path = resolve_inside(root, relative) if root is not None else None
    if path is None or not path.exists():
        raise _file_not_found(relative)
    return path, relative.replace("\\", "/").strip("/")


def listing_response(request: Request, root: Path | None) -> Response:
    """``?path=DIR``: the entries of one directory (directories first, then by name)."""
    directory, relative = _requested(request, root)
    if not directory.is_dir():
        raise _file_not_found(relative)
    entries: list[Doc] = []
    for child in os.scandir(directory):
        try:
            info = child.stat()
        except OSError:
            continue
        name = f"{relative}/{child.name}" if relative else child.name
        is_dir = stat.S_ISDIR(info.st_mode)
        entries.append(
            {
                "name": child.name,
                "path": name,
                "isDirectory": is_dir,
                "size": 0 if is_dir else info.st_size,
                "modified": info.st_mtime,
            }
        )
    entries.sort(key=lambda entry: (not entry["isDirectory"], entry["name"]))
    return json_answer({"path": relative, "entries": entries})


def tail_response(request: Request, root: Path | None) -> Response:
    """``?path=FILE&bytes=N``: the last N bytes of a file as text (``exists: false`` when there is no such file)."""
    relative = request.query_params.get("path", "")
    limit = query_int(request, "bytes", TAIL_BYTES, low=1, high=_MAX_TAIL_BYTES)
    path = resolve_inside(root, relative) if root is not None else None
    if path is None or not path.is_file():
        return json_answer({"path": relative, "exists": False, "size": 0, "text": "", "truncated": False})
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        start = max(0, size - limit)
        handle.seek(start)
        data = handle.read(limit)
    return json_answer(
        {
            "path": relative,
            "exists": True,
            "size": size,
            "text": data.decode("utf-8", errors="replace"),
            "truncated": start > 0,
        }
    )


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a character cut at the end of the sample
    return True


def file_response(request: Request, root: Path | None) -> Response:
    """``?path=FILE``: the whole file, as plain text when it looks like UTF-8 text, else as a download."""
    path, relative = _requested(request, root)
    if not path.is_file():
        raise _file_not_found(relative)
    name = os.path.basename(relative) or "file"
    if _looks_like_text(path):
        return FileResponse(
            path, media_type="text/plain; charset=utf-8", content_disposition_type="inline", filename=name
        )
    return FileResponse(path, media_type="application/octet-stream", filename=name)
