"""Removing task directories the emulator no longer keeps (a task's retention time is over, or its job was deleted).

The emulator names them in a poll answer's ``remove`` list, relative to the node root. Only directories under
``<root>/workitems`` are removed; anything else (or a path leaving the root) is refused and logged. Stdlib only,
Python >= 3.9.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable

__all__ = ["remove_directories"]

log = logging.getLogger("batchbox.agent")


def remove_directories(node_root: str, paths: Iterable[object]) -> list[str]:
    """Remove each directory of ``paths`` (relative to ``node_root``) that lies under ``workitems``.

    Returns:
        The paths removed (absent ones count as removed).
    """
    base = os.path.realpath(os.path.join(node_root, "workitems"))
    removed: list[str] = []
    for path in paths:
        if not isinstance(path, str) or not path:
            continue
        target = os.path.realpath(os.path.join(node_root, path))
        if not target.startswith(base + os.sep):
            log.warning("refusing to remove %r: not a task directory", path)
            continue
        try:
            shutil.rmtree(target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("removing %s failed: %s", path, exc)
            continue
        removed.append(path)
    return removed
