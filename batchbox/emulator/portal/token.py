"""The portal's access token: random, kept in ``<state_dir>/portal.token`` (mode 0600), given once in the URL.

``batchbox local up`` makes a fresh token each time it starts the emulator (:func:`new_token`) and prints the
portal URL with it; an emulator started by hand makes one when there is none (:func:`ensure_token`). The emulator
reads it when it serves its first portal request.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["PORTAL_PATH", "TOKEN_FILE_NAME", "ensure_token", "new_token", "portal_url", "read_token", "token_path"]

TOKEN_FILE_NAME = "portal.token"
PORTAL_PATH = "/portal"
"""Where the emulator serves the portal (on the port of the Batch API)."""

_TOKEN_BYTES = 32


def token_path(state_dir: Path) -> Path:
    """``<state_dir>/portal.token``: the emulator's state directory, not the local stack's home."""
    return Path(state_dir) / TOKEN_FILE_NAME


def read_token(state_dir: Path) -> str | None:
    """The stored token, or None when there is none (or it is empty)."""
    try:
        text = token_path(state_dir).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def new_token(state_dir: Path) -> str:
    """Make a fresh random token and store it (mode 0600, replacing any previous one atomically)."""
    path = token_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # the umask cannot widen it, an existing file keeps no other mode
        os.write(descriptor, f"{token}\n".encode("ascii"))
    finally:
        os.close(descriptor)
    os.replace(partial, path)
    return token


def ensure_token(state_dir: Path) -> str:
    """The stored token, made first when there is none."""
    return read_token(state_dir) or new_token(state_dir)


def portal_url(base_url: str, token: str | None = None) -> str:
    """``<base>/portal/``, with ``?token=...`` to sign a browser in (the token then moves to a cookie)."""
    url = f"{base_url.rstrip('/')}{PORTAL_PATH}/"
    return f"{url}?token={token}" if token else url
