"""Task and node files: list, get (with ``ocp-range``), properties (HEAD) and delete.

A node's root directory lives on the host at ``config.node_root(node_id)`` (bind-mounted into its container), so
files are served straight from disk. A task's directory is ``nodeInfo.taskRootDirectory`` under its node's root
(``workitems/<job>/job-1/<task>``). Paths are resolved (symlinks included) and must stay inside the directory they
are relative to; anything else is ``FileNotFound``. Once a task's ``retentionTime`` is over its file list answers
``409 TaskFilesCleanedup`` and its files ``404 FileNotFound``.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from batchbox.emulator.clock import format_time
from batchbox.emulator.confined_paths import resolve_inside
from batchbox.emulator.errors import BatchError, conflict, not_found
from batchbox.emulator.handlers.common import (
    get_config,
    get_pool_or_404,
    get_store,
    get_task_or_404,
    header_time,
    list_page,
    query_flag,
)
from batchbox.emulator.protocol.responses import http_date
from batchbox.emulator.runtime.retention import files_cleaned_up

__all__ = ["routes"]

_CHUNK = 256 * 1024
_OCTET_STREAM = "application/octet-stream"


def _file_not_found(path: str) -> BatchError:
    return BatchError(404, "FileNotFound", "The specified file does not exist.", {"FilePath": path[:512]})


def _task_files_unavailable(task_id: str) -> BatchError:
    return conflict(
        "TaskFilesUnavailable",
        "The files of the specified task are not available: it has not been scheduled on a node.",
        {"TaskId": task_id},
    )


def _task_root(request: Request) -> tuple[Path, str]:
    """The host directory of a task and the URL prefix of its files."""
    job_id = request.path_params["job_id"]
    doc = get_task_or_404(request, job_id, request.path_params["task_id"])
    if files_cleaned_up(doc, datetime.now(timezone.utc)):
        if "file_path" in request.path_params:
            raise _file_not_found(str(request.path_params["file_path"]))
        raise conflict(
            "TaskFilesCleanedup",
            "The files of the specified task are cleaned up: its retention time is over.",
            {"TaskId": str(doc["id"])},
        )
    info = doc.get("nodeInfo")
    node_id = info.get("nodeId") if isinstance(info, dict) else None
    if not isinstance(node_id, str) or not node_id:
        raise _task_files_unavailable(doc["id"])
    job = get_store(request).get_job(job_id) or {"id": job_id}
    relative = info.get("taskRootDirectory") if isinstance(info, dict) else None
    if not isinstance(relative, str) or not relative:
        relative = f"workitems/{job['id']}/job-1/{doc['id']}"
    node_root = get_config(request).node_root(node_id)
    root = resolve_inside(node_root, relative)
    if root is None or not root.is_dir():
        raise _task_files_unavailable(doc["id"])
    return root, f"{doc['url']}/files"


def _node_root(request: Request) -> tuple[Path, str]:
    pool = get_pool_or_404(request, request.path_params["pool_id"])
    node_id = request.path_params["node_id"]
    node = next(
        (n for n in get_store(request).list_nodes(pool["id"]) if str(n.get("id", "")).lower() == node_id.lower()),
        None,
    )
    if node is None:
        raise not_found("node", node_id)
    root = get_config(request).node_root(node["id"])
    if not root.is_dir():
        raise _file_not_found("")
    return root, f"{node['url']}/files"


def _entry(name: str, path: Path, url_prefix: str) -> dict[str, Any] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    document: dict[str, Any] = {"name": name, "url": f"{url_prefix}/{quote(name)}"}
    if stat.S_ISDIR(info.st_mode):
        document["isDirectory"] = True
        return document
    document["isDirectory"] = False
    document["properties"] = {
        "creationTime": format_time(datetime.fromtimestamp(info.st_ctime, timezone.utc)),
        "lastModified": format_time(datetime.fromtimestamp(info.st_mtime, timezone.utc)),
        "contentLength": info.st_size,
        "contentType": _OCTET_STREAM,
        "fileMode": f"{info.st_mode:o}",
    }
    return document


def _walk(root: Path, url_prefix: str, recursive: bool) -> list[dict[str, Any]]:
    real_root = os.path.realpath(root)
    entries: list[dict[str, Any]] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            children = sorted(os.scandir(os.path.join(real_root, relative)), key=lambda e: e.name)
        except OSError:
            continue
        for child in children:
            name = f"{relative}/{child.name}" if relative else child.name
            path = resolve_inside(root, name)
            if path is None:
                continue
            entry = _entry(name, path, url_prefix)
            if entry is None:
                continue
            entries.append(entry)
            if recursive and entry["isDirectory"] and not child.is_symlink():
                pending.append(name)
    entries.sort(key=lambda e: str(e["name"]))
    return entries


def _list(request: Request, root: Path, url_prefix: str) -> Response:
    recursive = query_flag(request, "recursive")
    entries = _walk(root, url_prefix, recursive)
    return list_page(request, "files", entries, key=lambda doc: str(doc["name"]))


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """``bytes=start-end`` (inclusive), ``bytes=start-`` or ``bytes=-suffix`` -> (start, end exclusive)."""
    spec = header.strip()
    if not spec.lower().startswith("bytes="):
        raise _invalid_range(header)
    first, _, last = spec[6:].strip().partition("-")
    try:
        if first == "":
            length = int(last)
            start, end = max(0, size - length), size
        else:
            start = int(first)
            end = size if last == "" else min(size, int(last) + 1)
    except ValueError:
        raise _invalid_range(header) from None
    if start < 0 or start >= max(size, 1) or end <= start:
        raise _invalid_range(header)
    return start, end


def _invalid_range(header: str) -> BatchError:
    return BatchError(
        416, "InvalidRange", "The specified byte range is invalid for the given resource.", {"Range": header[:128]}
    )


def _file_headers(path: Path, url: str, info: os.stat_result) -> dict[str, str]:
    is_dir = stat.S_ISDIR(info.st_mode)
    return {
        "Content-Type": _OCTET_STREAM,
        "Content-Length": "0" if is_dir else str(info.st_size),
        "Last-Modified": http_date(datetime.fromtimestamp(info.st_mtime, timezone.utc)),
        "ocp-creation-time": http_date(datetime.fromtimestamp(info.st_ctime, timezone.utc)),
        "ocp-batch-file-isdirectory": "true" if is_dir else "false",
        "ocp-batch-file-url": url,
        "ocp-batch-file-mode": f"{info.st_mode:o}",
    }


def _stat_file(request: Request, root: Path, url_prefix: str) -> tuple[Path, str, os.stat_result, dict[str, str]]:
    relative = request.path_params["file_path"]
    path = resolve_inside(root, relative)
    try:
        if path is None or path == Path(os.path.realpath(root)):
            raise FileNotFoundError(relative)
        info = path.stat()
    except OSError:
        raise _file_not_found(relative) from None
    url = f"{url_prefix}/{quote(relative.replace(chr(92), '/').strip('/'))}"
    headers = _file_headers(path, url, info)
    modified = datetime.fromtimestamp(int(info.st_mtime), timezone.utc)
    since = header_time(request, "if-modified-since")
    if since is not None and modified <= since:
        raise _NotModified(headers)
    unmodified = header_time(request, "if-unmodified-since")
    if unmodified is not None and modified > unmodified:
        raise BatchError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")
    return path, relative, info, headers


class _NotModified(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


def _read(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = handle.read(min(_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _download(request: Request, root: Path, url_prefix: str) -> Response:
    try:
        path, relative, info, headers = _stat_file(request, root, url_prefix)
    except _NotModified as not_modified:
        return Response(b"", status_code=304, headers={"Last-Modified": not_modified.headers["Last-Modified"]})
    if stat.S_ISDIR(info.st_mode):
        raise BatchError(404, "FileNotFound", "The specified path is a directory, not a file.", {"FilePath": relative})
    start, end = 0, info.st_size
    ranged = request.headers.get("ocp-range") or request.headers.get("range")
    if ranged:
        start, end = _parse_range(ranged, info.st_size)
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(_read(path, start, end), status_code=200, headers=headers, media_type=_OCTET_STREAM)


def _properties(request: Request, root: Path, url_prefix: str) -> Response:
    try:
        _, _, _, headers = _stat_file(request, root, url_prefix)
    except _NotModified as not_modified:
        return Response(b"", status_code=304, headers={"Last-Modified": not_modified.headers["Last-Modified"]})
    return Response(b"", status_code=200, headers=headers)


def _delete(request: Request, root: Path, _url_prefix: str) -> Response:
    relative = request.path_params["file_path"]
    path = resolve_inside(root, relative)
    if path is None or path == Path(os.path.realpath(root)) or not os.path.lexists(path):
        raise _file_not_found(relative)
    if path.is_dir():
        if query_flag(request, "recursive"):
            shutil.rmtree(path, ignore_errors=False)
        else:
            try:
                path.rmdir()
            except OSError:
                raise conflict(
                    "DirectoryNotEmpty",
                    "The directory is not empty: pass recursive=true to delete it with its contents.",
                    {"FilePath": relative},
                ) from None
    else:
        path.unlink()
    return Response(b"", status_code=200)


Locate = Callable[[Request], tuple[Path, str]]
"""Finds the host directory a request's files live in, and the URL prefix of its file URLs."""


def _endpoint(
    locate: Locate, operation: Callable[[Request, Path, str], Response]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        root, prefix = locate(request)
        return operation(request, root, prefix)

    return endpoint


def _file_routes(listing: str, file_path: str, locate: Locate) -> list[Route]:
    """List, properties (HEAD), download (GET) and delete of the files under one kind of root."""
    return [
        Route(listing, _endpoint(locate, _list), methods=["GET"]),
        Route(file_path, _endpoint(locate, _properties), methods=["HEAD"]),
        Route(file_path, _endpoint(locate, _download), methods=["GET"]),
        Route(file_path, _endpoint(locate, _delete), methods=["DELETE"]),
    ]


routes: list[Route] = [
    *_file_routes(
        "/jobs/{job_id}/tasks/{task_id}/files", "/jobs/{job_id}/tasks/{task_id}/files/{file_path:path}", _task_root
    ),
    *_file_routes(
        "/pools/{pool_id}/nodes/{node_id}/files", "/pools/{pool_id}/nodes/{node_id}/files/{file_path:path}", _node_root
    ),
]
"""The file routes (HEAD routes come first: Starlette answers HEAD with a GET route otherwise)."""
