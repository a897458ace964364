"""Shared pieces of the node agent: times, URL redaction, Batch failure information, file ownership.

Stdlib only; runs on Python >= 3.9 inside node containers.

The failure codes are the Batch service's own (``TaskFailureInformationCodes`` of the Batch SDKs and the
"Batch status and error codes" reference): ``BlobNotFound``, ``BlobAccessDenied``, ``BlobDownloadTimedOut``,
``BlobDownloadMiscError``, ``ResourceDirectoryCreateFailed``, ``ResourceFileCreateFailed``,
``ResourceFileWriteFailed``, ``DiskFull``, ``CommandProgramNotFound``, ``CommandLaunchFailed``, ``TaskEnded``,
``FileUploadMiscError``, ``FailureExitCode`` (a non-zero exit code), ``ApplicationPackageError`` and ``Unknown``.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import sys
import urllib.parse
from typing import Any

__all__ = [
    "APPLICATION_PACKAGE_ERROR",
    "BLOB_ACCESS_DENIED",
    "BLOB_DOWNLOAD_MISC_ERROR",
    "BLOB_DOWNLOAD_TIMED_OUT",
    "BLOB_NOT_FOUND",
    "COMMAND_LAUNCH_FAILED",
    "COMMAND_PROGRAM_NOT_FOUND",
    "DISK_FULL",
    "FAILURE_EXIT_CODE",
    "FILE_UPLOAD_MISC_ERROR",
    "NONADMIN_GID",
    "NONADMIN_UID",
    "RESOURCE_DIRECTORY_CREATE_FAILED",
    "RESOURCE_FILE_CREATE_FAILED",
    "RESOURCE_FILE_WRITE_FAILED",
    "SERVER_ERROR",
    "TASK_ENDED",
    "UNKNOWN",
    "USER_ERROR",
    "FailureInfo",
    "TaskFailure",
    "chown_tree",
    "ended_failure",
    "failure_info",
    "redact_text",
    "redact_url",
    "setup_logging",
    "utc_now",
]

FailureInfo = dict[str, Any]
"""A REST ``failureInfo`` object: ``{"category", "code", "message", "details": [{"name", "value"}]}``."""

USER_ERROR = "usererror"
SERVER_ERROR = "servererror"

BLOB_NOT_FOUND = "BlobNotFound"
BLOB_ACCESS_DENIED = "BlobAccessDenied"
BLOB_DOWNLOAD_TIMED_OUT = "BlobDownloadTimedOut"
BLOB_DOWNLOAD_MISC_ERROR = "BlobDownloadMiscError"
RESOURCE_DIRECTORY_CREATE_FAILED = "ResourceDirectoryCreateFailed"
RESOURCE_FILE_CREATE_FAILED = "ResourceFileCreateFailed"
RESOURCE_FILE_WRITE_FAILED = "ResourceFileWriteFailed"
DISK_FULL = "DiskFull"
COMMAND_PROGRAM_NOT_FOUND = "CommandProgramNotFound"
COMMAND_LAUNCH_FAILED = "CommandLaunchFailed"
TASK_ENDED = "TaskEnded"
FILE_UPLOAD_MISC_ERROR = "FileUploadMiscError"
FAILURE_EXIT_CODE = "FailureExitCode"
APPLICATION_PACKAGE_ERROR = "ApplicationPackageError"
UNKNOWN = "Unknown"

NONADMIN_UID = 1000
"""uid of ``batchuser``, the image's unprivileged user that runs ``nonadmin`` tasks."""
NONADMIN_GID = 1000
"""gid of the group every task runs in (admin tasks too), so 0770 files are shared between them."""

_SIG_RE = re.compile(r"(?i)(sig=)[^&\s'\"<>]+")


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string with a ``Z`` suffix (microsecond precision)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def redact_url(url: str) -> str:
    """Return ``url`` without its query string and fragment (a SAS lives there); unparsable input is hidden."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    suffix = "?<redacted>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + suffix


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    """Replace SAS signatures (``sig=...``) and each of ``secrets`` found in ``text``."""
    text = _SIG_RE.sub(r"\1<redacted>", text)
    for secret in secrets or []:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def failure_info(category: str, code: str, message: str, details: dict[str, str] | None = None) -> FailureInfo:
    """Build a REST ``failureInfo`` object; ``details`` becomes the ``[{"name", "value"}]`` list."""
    info: FailureInfo = {"category": category, "code": code, "message": message}
    if details:
        info["details"] = [{"name": name, "value": value} for name, value in details.items()]
    return info


class TaskFailure(Exception):
    """A failure that completes an assignment before (or instead of) its process: carries the failureInfo."""

    def __init__(self, category: str, code: str, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.info = failure_info(category, code, message, details)

    @classmethod
    def from_info(cls, info: FailureInfo) -> TaskFailure:
        """A failure carrying a failureInfo decided elsewhere (e.g. by the emulator, in the Assignment)."""
        failure = cls(
            str(info.get("category") or USER_ERROR), str(info.get("code") or UNKNOWN), str(info.get("message") or "")
        )
        failure.info = dict(info)
        return failure


def ended_failure(exit_code: int, *, cancelled: bool, timed_out: bool, limit: object) -> FailureInfo | None:
    """The failureInfo of a task whose process (or container) ended with ``exit_code``: a cancel (TaskEnded,
    usererror), the wall clock limit (TaskEnded, servererror), a non-zero exit code (FailureExitCode), or None."""
    if cancelled:
        return failure_info(USER_ERROR, TASK_ENDED, "Task was ended by user request")
    if timed_out:
        return failure_info(
            SERVER_ERROR,
            TASK_ENDED,
            f"The task ran longer than its maximum wall clock time ({limit} s) and was killed",
            {"MaxWallClockSeconds": str(limit)},
        )
    if exit_code != 0:
        return failure_info(
            USER_ERROR,
            FAILURE_EXIT_CODE,
            "The task process exited with an unexpected exit code",
            {"Message": "The task exited with an exit code representing a failure"},
        )
    return None


def chown_tree(path: str, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it (symlinks themselves, not their targets) to ``uid:gid``."""
    os.chown(path, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


class _RedactFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self._secrets)
        record.msg, record.args = redact_text(message, self._secrets), None
        return True


def setup_logging(root: str, secret: str, level: int = logging.INFO) -> None:
    """Log ``batchbox.agent`` records to ``<root>/agent.log`` and stderr, redacting the secret and signatures."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(message)s")
    redact = _RedactFilter([secret])
    log = logging.getLogger("batchbox.agent")
    for handler in (
        logging.FileHandler(os.path.join(root, "agent.log"), encoding="utf-8"),
        logging.StreamHandler(sys.stderr),
    ):
        handler.setFormatter(formatter)
        handler.addFilter(redact)
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
