"""The pinned Azurite from npm: which version, where it is installed, and installing it once.

The pin is the ``package.json`` / ``package-lock.json`` pair of the repository root. Wheels carry a copy of both
in ``batchbox/backends/local/azurite-npm/`` (package data); a source checkout uses the root files. An installed
batchbox runs ``npm ci`` with that pair in ``$BATCHBOX_HOME/azurite/`` the first time it needs Azurite, so every
machine gets the same Azurite and the same dependency tree; later runs reuse it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from batchbox.core.errors import BackendUnavailableError

__all__ = [
    "NPM_MANIFEST_FILES",
    "Progress",
    "install_azurite",
    "installed_main_js",
    "npm_manifest_dir",
    "pinned_azurite_version",
]

NPM_MANIFEST_FILES = ("package.json", "package-lock.json")
"""The files that pin Azurite and its dependency tree."""

Progress = Callable[[str], None]
"""Receives one human-readable line per provisioning step."""

_PACKAGED_DIR = Path(__file__).resolve().parent / "azurite-npm"
_SOURCE_ROOT = Path(__file__).resolve().parents[3]
_MAIN_JS = Path("node_modules") / "azurite" / "dist" / "src" / "blob" / "main.js"
_NPM_TIMEOUT = 600
_STAMP = ".batchbox-azurite-installed"
_NO_NPM_HINT = (
    "install Node.js (>= 18) with npm, or run an Azurite yourself and pass --storage-connection-string "
    "(BATCHBOX_STORAGE_CONNECTION_STRING), or use the Azurite image where a container registry is reachable "
    "(--azurite image)"
)


def npm_manifest_dir() -> Path:
    """The directory holding the Azurite pin: the wheel's package data, else the source checkout's root.

    Raises:
        BackendUnavailableError: neither exists (a broken installation).
    """
    for candidate in (_PACKAGED_DIR, _SOURCE_ROOT):
        if all((candidate / name).is_file() for name in NPM_MANIFEST_FILES):
            return candidate
    raise BackendUnavailableError("Azurite", f"the Azurite pin (package.json) is missing from {_PACKAGED_DIR}")


def pinned_azurite_version() -> str:
    """The Azurite version batchbox installs (from the shipped ``package.json``)."""
    manifest = json.loads((npm_manifest_dir() / "package.json").read_text())
    version: str = manifest["dependencies"]["azurite"]
    return version


def installed_main_js(install_dir: Path) -> Path | None:
    """Azurite's blob ``main.js`` under ``install_dir`` when the pinned version was installed there; else None."""
    main_js = install_dir / _MAIN_JS
    try:
        stamp = (install_dir / _STAMP).read_text().strip()
    except OSError:
        return None
    return main_js if main_js.is_file() and stamp == _pin_digest() else None


def _pin_digest() -> str:
    """The sha256 of the shipped lock file: a finished install records it, a new pin invalidates it."""
    return hashlib.sha256((npm_manifest_dir() / "package-lock.json").read_bytes()).hexdigest()


@contextlib.contextmanager
def _install_lock(install_dir: Path) -> Iterator[None]:
    """One installer at a time per directory (parallel test workers, two shells)."""
    with open(install_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_azurite(install_dir: Path, progress: Progress | None = None) -> Path:
    """Install the pinned Azurite into ``install_dir`` with ``npm ci`` unless it is there; return its ``main.js``.

    npm's output goes to ``install_dir/npm.log``.

    Raises:
        BackendUnavailableError: npm is missing or ``npm ci`` failed (one line, naming the log).
    """
    install_dir.mkdir(parents=True, exist_ok=True)
    with _install_lock(install_dir):
        found = installed_main_js(install_dir)
        if found is not None:
            return found
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            raise BackendUnavailableError("Azurite", f"npm is not installed: {_NO_NPM_HINT}")
        version = pinned_azurite_version()
        log_path = install_dir / "npm.log"
        if progress is not None:
            progress(f"installing Azurite {version} with npm into {install_dir} (once; log: {log_path})")
        (install_dir / _STAMP).unlink(missing_ok=True)
        for name in NPM_MANIFEST_FILES:
            shutil.copyfile(npm_manifest_dir() / name, install_dir / name)
        command = [npm, "ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"]
        with open(log_path, "ab") as log:
            try:
                result = subprocess.run(
                    command, cwd=install_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=_NPM_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                result = None
        main_js = install_dir / _MAIN_JS
        if result is None or result.returncode != 0 or not main_js.is_file():
            why = "timed out" if result is None else f"failed (exit code {result.returncode})"
            raise BackendUnavailableError("Azurite", f"`npm ci` of Azurite {version} {why}; see {log_path}")
        (install_dir / _STAMP).write_text(_pin_digest() + "\n")
        return main_js
