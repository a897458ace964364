"""Resource files and output files of the in-memory compute, by the same rules as the node agent.

``memory://`` URLs are resolved against the paired :class:`~batchbox.backends.memory.storage.MemoryStorage`
(the SAS checked as Azure Storage would); ``http(s)`` URLs go through the node agent's own stdlib blob client
(:mod:`batchbox.node._agent_files`), so a task may also read from and write to Azure Storage or Azurite.
Failures carry the Batch codes the agent reports (``BlobNotFound``, ``BlobAccessDenied``,
``ResourceFileCreateFailed``, ``FileUploadMiscError``, ...).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchbox.backends.memory._sas import SasRefused, is_memory_url
from batchbox.backends.memory.storage import MemoryStorage, SasAccess
from batchbox.core.models import FailureInfo, OutputFile, ResourceFile
from batchbox.core.rest_json import output_file_json, resource_file_json
from batchbox.node._agent_common import (
    BLOB_ACCESS_DENIED,
    BLOB_DOWNLOAD_MISC_ERROR,
    BLOB_NOT_FOUND,
    FILE_UPLOAD_MISC_ERROR,
    RESOURCE_FILE_WRITE_FAILED,
    SERVER_ERROR,
    USER_ERROR,
    TaskFailure,
    redact_url,
    utc_now,
)
from batchbox.node._agent_files import (
    DEFAULT_FILE_MODE,
    blob_name_for,
    download_resource_files,
    resolve_inside,
    should_upload,
    upload_output_files,
)

__all__ = ["fetch_resource_files", "store_output_files"]


def _failure(info: dict[str, Any]) -> FailureInfo | None:
    if not info:
        return None
    return FailureInfo(category=str(info["category"]), code=str(info["code"]), message=str(info["message"]))


def _refused(exc: SasRefused, file_path: str, url: str) -> TaskFailure:
    category, code = (USER_ERROR, BLOB_NOT_FOUND) if exc.status == 404 else (USER_ERROR, BLOB_ACCESS_DENIED)
    if exc.status not in (403, 404):
        category, code = SERVER_ERROR, BLOB_DOWNLOAD_MISC_ERROR
    return TaskFailure(
        category,
        code,
        f"Resource file '{file_path}' could not be downloaded: {exc}",
        {"FilePath": file_path, "Url": redact_url(url), "StorageErrorCode": exc.error_code},
    )


def _write(wd: str, file_path: str, data: bytes, mode: int) -> None:
    target = resolve_inside(wd, file_path)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as sink:
            sink.write(data)
        os.chmod(target, mode)
    except OSError as exc:
        raise TaskFailure(
            SERVER_ERROR,
            RESOURCE_FILE_WRITE_FAILED,
            f"Resource file '{file_path}' could not be written: {exc.strerror}",
            {"FilePath": file_path},
        ) from None


def _fetch_memory(storage: MemoryStorage, resource: ResourceFile, wd: str) -> None:
    mode = int(resource.file_mode, 8) if resource.file_mode else DEFAULT_FILE_MODE
    url = resource.http_url or resource.storage_container_url or ""
    file_path = resource.file_path or ""
    try:
        access = storage.sas_access(url)
        if resource.http_url is not None:
            _write(wd, file_path, _read_blob(access), mode)
            return
        for name in access.list(resource.blob_prefix or ""):
            if not name.endswith("/"):
                shown = os.path.join(file_path, name) if file_path else name
                _write(wd, shown, access.read(name), mode)
    except SasRefused as exc:
        raise _refused(exc, file_path, url) from None


def _read_blob(access: SasAccess) -> bytes:
    if access.blob is None:
        raise SasRefused(403, "AuthorizationResourceTypeMismatch", "an httpUrl must name a blob, not a container")
    return access.read(access.blob)


def fetch_resource_files(storage: MemoryStorage, resources: Sequence[ResourceFile], wd: str) -> FailureInfo | None:
    """Download every resource file into ``wd``; the failure of the first one that fails (nothing after it runs)."""
    try:
        for resource in resources:
            if is_memory_url(resource.http_url or resource.storage_container_url or ""):
                _fetch_memory(storage, resource, wd)
            else:
                download_resource_files([resource_file_json(resource)], wd)
    except TaskFailure as exc:
        return _failure(exc.info)
    return None


@dataclass
class _UploadLog:
    uploaded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def write(self, task_dir: str, mode: str) -> None:
        for name, lines in (("fileuploadout.txt", self.uploaded), ("fileuploaderr.txt", self.failed)):
            with open(os.path.join(task_dir, name), mode, encoding="utf-8") as sink:
                sink.writelines(f"{utc_now()} {line}\n" for line in lines)


def _store_memory(storage: MemoryStorage, output: OutputFile, wd: str, log: _UploadLog) -> FailureInfo | None:
    found = glob.glob(os.path.join(wd, output.file_pattern), recursive=True)
    matches = sorted({os.path.normpath(path) for path in found if os.path.isfile(path)})
    if not matches:
        log.uploaded.append(f"No files matched the pattern '{output.file_pattern}'")
        return None
    shown = redact_url(output.container_url)
    first: FailureInfo | None = None
    for match in matches:
        blob = blob_name_for(output.file_pattern, output.path or "", match, wd)
        try:
            with open(match, "rb") as source:
                data = source.read()
            storage.sas_access(output.container_url).write(blob, data)
        except (SasRefused, OSError) as exc:
            message = f"Uploading '{match}' to {shown} as '{blob}' failed: {exc}"
            log.failed.append(message)
            first = first or FailureInfo(USER_ERROR, FILE_UPLOAD_MISC_ERROR, message)
            continue
        log.uploaded.append(f"Uploaded '{match}' to {shown} as '{blob}' ({len(data)} bytes)")
    return first


def store_output_files(
    storage: MemoryStorage, outputs: Sequence[OutputFile], wd: str, task_dir: str, succeeded: bool
) -> FailureInfo | None:
    """Upload the output files whose condition matches; the failure of the first upload that failed.

    ``fileuploadout.txt`` and ``fileuploaderr.txt`` in ``task_dir`` log what was done, as on a node.
    """
    remote = [output_file_json(o) for o in outputs if not is_memory_url(o.container_url)]
    first = _failure(upload_output_files(remote, wd, task_dir, succeeded) or {}) if remote else None
    log = _UploadLog()
    for output in outputs:
        if is_memory_url(output.container_url) and should_upload(output_file_json(output), succeeded):
            failure = _store_memory(storage, output, wd, log)
            first = first or failure
    log.write(task_dir, "a" if remote else "w")
    return first
