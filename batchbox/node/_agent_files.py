"""Resource files (downloaded into the working directory before a task runs) and output files (uploaded after).

Follows the Batch rules: a resource file has exactly one of ``httpUrl`` (``filePath`` is the file),
``storageContainerUrl`` (``filePath`` is a directory; ``blobPrefix`` filters; the SAS must allow read and list)
or ``autoStorageContainerName`` (not available locally); ``filePath`` may not escape the working directory;
``fileMode`` is octal, 0770 by default. Output files are matched by ``filePattern`` relative to the working
directory and uploaded by ``uploadOptions.uploadCondition``; the upload log goes to ``fileuploadout.txt`` and
``fileuploaderr.txt`` in the task directory. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from batchbox.node._agent_blob import (
    BlobError,
    LocalFileError,
    blob_url,
    download_to_file,
    list_blob_names,
    upload_file,
)
from batchbox.node._agent_common import (
    BLOB_ACCESS_DENIED,
    BLOB_DOWNLOAD_MISC_ERROR,
    BLOB_DOWNLOAD_TIMED_OUT,
    BLOB_NOT_FOUND,
    DISK_FULL,
    FILE_UPLOAD_MISC_ERROR,
    RESOURCE_DIRECTORY_CREATE_FAILED,
    RESOURCE_FILE_CREATE_FAILED,
    RESOURCE_FILE_WRITE_FAILED,
    SERVER_ERROR,
    USER_ERROR,
    FailureInfo,
    TaskFailure,
    failure_info,
    redact_url,
    utc_now,
)

__all__ = [
    "DEFAULT_FILE_MODE",
    "blob_name_for",
    "download_resource_files",
    "resolve_inside",
    "should_upload",
    "upload_output_files",
]

DEFAULT_FILE_MODE = 0o770
"""Mode of downloaded resource files when ``fileMode`` is not given (Batch's Linux default)."""

_WILDCARDS = "*?["


def resolve_inside(wd: str, file_path: str) -> str:
    """Return the absolute path of ``file_path`` below ``wd``.

    Raises:
        TaskFailure: the path is absolute or leaves ``wd`` (``..``), also through a symlink already in ``wd``.
    """
    if os.path.isabs(file_path):
        raise TaskFailure(
            USER_ERROR,
            RESOURCE_FILE_CREATE_FAILED,
            f"The resource file path '{file_path}' is absolute; it must be relative to the task working directory",
            {"FilePath": file_path},
        )
    root = os.path.realpath(wd)
    target = os.path.normpath(os.path.join(root, file_path))
    parent = os.path.realpath(os.path.dirname(target)) if target != root else root
    inside = (target == root or target.startswith(root + os.sep)) and (
        parent == root or parent.startswith(root + os.sep)
    )
    if not inside:
        raise TaskFailure(
            USER_ERROR,
            RESOURCE_FILE_CREATE_FAILED,
            f"The resource file path '{file_path}' leaves the task working directory",
            {"FilePath": file_path},
        )
    return target


def _parse_mode(resource: Mapping[str, Any], file_path: str) -> int:
    text = resource.get("fileMode")
    if text in (None, ""):
        return DEFAULT_FILE_MODE
    try:
        mode = int(str(text), 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise TaskFailure(
            USER_ERROR,
            RESOURCE_FILE_CREATE_FAILED,
            f"The fileMode '{text}' of resource file '{file_path}' is not an octal file mode",
            {"FilePath": file_path},
        )
    return mode


def _download_failure(exc: BlobError | LocalFileError, file_path: str, url: str) -> TaskFailure:
    shown = redact_url(url)
    details = {"FilePath": file_path, "Url": shown}
    if isinstance(exc, LocalFileError):
        code = DISK_FULL if exc.cause.errno == errno.ENOSPC else RESOURCE_FILE_WRITE_FAILED
        return TaskFailure(SERVER_ERROR, code, f"Resource file '{file_path}' could not be written: {exc}", details)
    if exc.status is not None:
        details["HttpStatusCode"] = str(exc.status)
    if exc.error_code:
        details["StorageErrorCode"] = exc.error_code
    if exc.status == 404:
        category, code = USER_ERROR, BLOB_NOT_FOUND
    elif exc.status in (401, 403):
        category, code = USER_ERROR, BLOB_ACCESS_DENIED
    elif exc.timed_out:
        category, code = SERVER_ERROR, BLOB_DOWNLOAD_TIMED_OUT
    else:
        category, code = SERVER_ERROR, BLOB_DOWNLOAD_MISC_ERROR
    return TaskFailure(category, code, f"Resource file '{file_path}' could not be downloaded: {exc}", details)


def _make_dirs(path: str, file_path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise TaskFailure(
            SERVER_ERROR,
            RESOURCE_DIRECTORY_CREATE_FAILED,
            f"The directory for resource file '{file_path}' could not be created: {exc.strerror}",
            {"FilePath": file_path},
        ) from None


def _fetch(url: str, dest: str, file_path: str, mode: int) -> None:
    try:
        download_to_file(url, dest)
        os.chmod(dest, mode)
    except (BlobError, LocalFileError) as exc:
        raise _download_failure(exc, file_path, url) from None
    except OSError as exc:
        raise _download_failure(
            LocalFileError(f"cannot set the mode of {dest}: {exc.strerror}", exc), file_path, url
        ) from None


def download_resource_files(resource_files: Sequence[Mapping[str, Any]], wd: str) -> int:
    """Download every resource file into ``wd``; return how many files were written.

    Raises:
        TaskFailure: the first failure (nothing further is downloaded).
    """
    count = 0
    for resource in resource_files:
        file_path = str(resource.get("filePath") or "")
        mode = _parse_mode(resource, file_path)
        if resource.get("httpUrl"):
            if not file_path:
                raise TaskFailure(
                    USER_ERROR,
                    RESOURCE_FILE_CREATE_FAILED,
                    "A resource file with an httpUrl needs a filePath",
                    {"FilePath": ""},
                )
            dest = resolve_inside(wd, file_path)
            _make_dirs(os.path.dirname(dest), file_path)
            _fetch(str(resource["httpUrl"]), dest, file_path, mode)
            count += 1
        elif resource.get("storageContainerUrl"):
            container_url = str(resource["storageContainerUrl"])
            target = resolve_inside(wd, file_path) if file_path else os.path.realpath(wd)
            _make_dirs(target, file_path)
            try:
                names = list_blob_names(container_url, str(resource.get("blobPrefix") or ""))
            except BlobError as exc:
                raise _download_failure(exc, file_path, container_url) from None
            for name in names:
                if name.endswith("/"):
                    continue
                shown_path = os.path.join(file_path, name) if file_path else name
                dest = resolve_inside(wd, shown_path)
                _make_dirs(os.path.dirname(dest), shown_path)
                _fetch(blob_url(container_url, name), dest, shown_path, mode)
                count += 1
        elif resource.get("autoStorageContainerName"):
            raise TaskFailure(
                USER_ERROR,
                BLOB_DOWNLOAD_MISC_ERROR,
                f"Resource file '{file_path}': autoStorageContainerName is not supported by the local "
                "emulator (it has no linked storage account); use storageContainerUrl with a SAS",
                {"FilePath": file_path},
            )
        else:
            raise TaskFailure(
                USER_ERROR,
                RESOURCE_FILE_CREATE_FAILED,
                f"Resource file '{file_path}' names no source (httpUrl, storageContainerUrl or "
                "autoStorageContainerName)",
                {"FilePath": file_path},
            )
    return count


def should_upload(output_file: Mapping[str, Any], succeeded: bool) -> bool:
    """Whether ``output_file`` is uploaded for a task that ``succeeded`` (exit code 0, no failure) or not."""
    options = output_file.get("uploadOptions") or {}
    condition = str(options.get("uploadCondition") or "taskcompletion").lower()
    if condition == "tasksuccess":
        return succeeded
    if condition == "taskfailure":
        return not succeeded
    return True


def blob_name_for(pattern: str, path: str, match: str, wd: str) -> str:
    """The blob name of the matched file ``match`` (absolute) for ``filePattern`` ``pattern`` and ``path``.

    Without wildcards ``path`` is the blob name (the file name when empty); with wildcards ``path`` is a virtual
    directory and the file's path relative to the pattern's wildcard-free leading directories is appended.
    """
    if not any(ch in pattern for ch in _WILDCARDS):
        return path or os.path.basename(match)
    parts = pattern.split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if any(ch in part for ch in _WILDCARDS):
            break
        fixed.append(part)
    base = os.path.normpath(os.path.join(wd, "/".join(fixed) or "."))
    relative = os.path.relpath(os.path.normpath(match), base).replace(os.sep, "/")
    prefix = path.rstrip("/")
    return f"{prefix}/{relative}" if prefix else relative


def _matches(pattern: str, wd: str) -> list[str]:
    found = glob.glob(os.path.join(wd, pattern), recursive=True)
    return sorted({os.path.normpath(p) for p in found if os.path.isfile(p)})


def _upload_one(output_file: Mapping[str, Any], wd: str, out: TextIO, err: TextIO) -> FailureInfo | None:
    pattern = str(output_file.get("filePattern") or "")
    container = (output_file.get("destination") or {}).get("container") or {}
    container_url = str(container.get("containerUrl") or "")
    path = str(container.get("path") or "")
    headers = {
        str(h.get("name")): str(h.get("value", "")) for h in container.get("uploadHeaders") or [] if h.get("name")
    }
    if not pattern or not container_url:
        message = f"Output file '{pattern}' has no filePattern or no destination container URL"
        err.write(f"{utc_now()} {message}\n")
        return failure_info(USER_ERROR, FILE_UPLOAD_MISC_ERROR, message, {"FilePattern": pattern})
    matches = _matches(pattern, wd)
    if not matches:
        out.write(f"{utc_now()} No files matched the pattern '{pattern}'\n")
        return None
    first_failure: FailureInfo | None = None
    shown_container = redact_url(container_url)
    for match in matches:
        blob = blob_name_for(pattern, path, match, wd)
        try:
            size = upload_file(container_url, blob, match, headers)
        except (BlobError, OSError) as exc:
            message = f"Uploading '{match}' to {shown_container} as '{blob}' failed: {exc}"
            err.write(f"{utc_now()} {message}\n")
            if first_failure is None:
                first_failure = failure_info(
                    USER_ERROR,
                    FILE_UPLOAD_MISC_ERROR,
                    message,
                    {"FilePattern": pattern, "FilePath": match, "BlobName": blob},
                )
            continue
        out.write(f"{utc_now()} Uploaded '{match}' to {shown_container} as '{blob}' ({size} bytes)\n")
    return first_failure


def upload_output_files(
    output_files: Sequence[Mapping[str, Any]], wd: str, task_dir: str, succeeded: bool
) -> FailureInfo | None:
    """Upload the output files whose condition matches; return the failureInfo of the first failed upload.

    Every file is tried even after a failure. ``fileuploadout.txt`` (what was uploaded or matched nothing) and
    ``fileuploaderr.txt`` (failures) are written in ``task_dir``.
    """
    selected = [o for o in output_files if should_upload(o, succeeded)]
    out_path = os.path.join(task_dir, "fileuploadout.txt")
    err_path = os.path.join(task_dir, "fileuploaderr.txt")
    first_failure: FailureInfo | None = None
    with open(out_path, "w", encoding="utf-8") as out, open(err_path, "w", encoding="utf-8") as err:
        skipped = len(output_files) - len(selected)
        if skipped:
            out.write(f"{utc_now()} {skipped} output file specification(s) skipped by their upload condition\n")
        for output_file in selected:
            failure = _upload_one(output_file, wd, out, err)
            if first_failure is None:
                first_failure = failure
    return first_failure
