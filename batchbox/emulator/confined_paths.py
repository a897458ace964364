"""Host paths below a node's directory, resolved so that no name and no link leads out of it.

The file APIs of the Batch protocol and the portal both serve files of a node's directory on this host. Both resolve
what a client names through :func:`resolve_inside`, so a ``..``, an absolute name or a symbolic link a task made
cannot reach anything outside the directory they serve.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_inside"]


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` with every link resolved, or None when it would leave ``root``.

    Args:
        root: the directory served (it may itself be reached through links).
        relative: the name the client gave, ``/`` or ``\\`` separated; leading separators are dropped.

    Returns:
        The resolved path (``root`` itself for an empty name), or None for a ``..`` part, a NUL character (the OS
        refuses it: not a file) or a resolved path outside ``root``.
    """
    cleaned = relative.replace("\\", "/").strip("/")
    if "\0" in cleaned or any(part == ".." for part in cleaned.split("/")):
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, cleaned)) if cleaned else real_root
    if real != real_root and not real.startswith(real_root + os.sep):
        return None
    return Path(real)
