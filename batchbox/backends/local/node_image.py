"""The Docker image every local Batch node runs: its recipe, its tag and its build.

The image holds what a Batch node's tasks and the node agent need and nothing of batchbox itself (the agent
is bind-mounted at run time): ``python3`` on ``PATH``, ``/bin/sh``, ``/bin/bash``, CA certificates, the
unprivileged user ``batchuser`` (uid/gid 1000) and the label ``batchbox.node-image=1``.

Two recipes give that image, both from the files in ``batchbox/node/image/``:

* ``dockerfile``: ``FROM python:3.12-slim``; needs a reachable container registry (or the base image
  already present).
* ``debootstrap`` (offline, root only): ``debootstrap --variant=minbase`` of Debian bookworm with the packages
  of ``packages.txt`` from apt's default mirror (or ``BATCHBOX_DEBIAN_MIRROR``), ``setup-node.sh`` run in a
  chroot, then ``docker import``. When the ``debootstrap`` program is missing it is installed with apt-get.
  The rootfs tarball is cached in ``~/.cache/batchbox/`` (``$XDG_CACHE_HOME``) by recipe hash, so a rebuild
  after ``docker rmi`` takes seconds.

``BATCHBOX_NODE_IMAGE_RECIPE`` picks one; by default ``dockerfile`` is used when ``python:3.12-slim`` is
already present, else ``debootstrap`` when running as root, else ``dockerfile``.

The tag is ``batchbox-node:<first 12 hex digits of the sha256 of the recipe>`` (also tagged ``latest``), so
the build is skipped while an image for the current recipe exists. Command line::

    python -m batchbox.backends.local.node_image build [--force]   # prints the tag and the time it took
    python -m batchbox.backends.local.node_image tag               # prints the tag only
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors

from batchbox.core.errors import BatchboxError, ConfigurationError

__all__ = [
    "MIRROR_ENV",
    "NODE_IMAGE_LABEL",
    "NODE_IMAGE_REPO",
    "RECIPE_DIR",
    "RECIPE_ENV",
    "RECIPE_LABEL",
    "NodeImageBuildError",
    "Recipe",
    "cache_dir",
    "choose_recipe",
    "ensure_node_image",
    "main",
    "node_image_tag",
    "recipe_digest",
]

NODE_IMAGE_REPO = "batchbox-node"
NODE_IMAGE_LABEL = "batchbox.node-image"
RECIPE_LABEL = "batchbox.node-image.recipe"
RECIPE_DIR = Path(__file__).resolve().parents[2] / "node" / "image"
RECIPE_ENV = "BATCHBOX_NODE_IMAGE_RECIPE"
MIRROR_ENV = "BATCHBOX_DEBIAN_MIRROR"

Recipe = Literal["dockerfile", "debootstrap"]

_BASE_IMAGE = "python:3.12-slim"
_DEBIAN_SUITE = "bookworm"
_DEBOOTSTRAP_VARIANT = "minbase"
_IMPORT_CHANGES = ("ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]')
_SETUP_SCRIPT = "setup-node.sh"
_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": "/root"}
_BUILD_TIMEOUT = 1800


class NodeImageBuildError(BatchboxError):
    """The node image could not be built; the message says which step failed and what to do."""


def _recipe_files() -> list[Path]:
    return sorted(p for p in RECIPE_DIR.iterdir() if p.is_file() and not p.name.startswith("."))


def recipe_digest() -> str:
    """Return the first 12 hex digits of the sha256 of the recipe (files of ``RECIPE_DIR`` + build settings)."""
    digest = hashlib.sha256()
    settings = [_BASE_IMAGE, _DEBIAN_SUITE, _DEBOOTSTRAP_VARIANT, *_IMPORT_CHANGES]
    digest.update("\0".join(settings).encode() + b"\0\0")
    for path in _recipe_files():
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def node_image_tag(repository: str = NODE_IMAGE_REPO) -> str:
    """Return ``<repository>:<recipe digest>``, the tag of the node image for the current recipe."""
    return f"{repository}:{recipe_digest()}"


def cache_dir() -> Path:
    """Return (and create) batchbox's cache directory: ``$XDG_CACHE_HOME/batchbox`` or ``~/.cache/batchbox``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "batchbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _image_or_none(client: docker.DockerClient, name: str) -> Any:
    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def choose_recipe(client: docker.DockerClient) -> Recipe:
    """Pick the recipe from ``BATCHBOX_NODE_IMAGE_RECIPE`` (``dockerfile``, ``debootstrap`` or ``auto``).

    ``auto`` (the default) never touches the network to decide: ``dockerfile`` when the base image is
    already present, else ``debootstrap`` when running as root, else ``dockerfile``.

    Raises:
        ConfigurationError: The variable holds another value.
    """
    wanted = os.environ.get(RECIPE_ENV, "auto").strip().lower() or "auto"
    if wanted in ("dockerfile", "debootstrap"):
        return "dockerfile" if wanted == "dockerfile" else "debootstrap"
    if wanted != "auto":
        raise ConfigurationError(RECIPE_ENV, f"must be dockerfile, debootstrap or auto, not {wanted!r}")
    if _image_or_none(client, _BASE_IMAGE) is not None:
        return "dockerfile"
    return "debootstrap" if os.geteuid() == 0 else "dockerfile"


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """Serialise builds between processes (parallel test workers, two `make` runs)."""
    with open(cache_dir() / "node-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_node_image(
    client: docker.DockerClient,
    *,
    force: bool = False,
    repository: str = NODE_IMAGE_REPO,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Make sure the node image for the current recipe exists and return its tag.

    When ``<repository>:<digest>`` exists this only (re)points ``<repository>:latest`` at it.

    Args:
        client: A connected Docker client (see :func:`~batchbox.emulator.nodes.docker_engine.connect_docker`).
        force: Build even when the tag exists.
        repository: Image repository; tests build into their own so they can remove it.
        labels: Extra image labels (e.g. ``{"batchbox.test": "1"}``).

    Returns:
        The tag ``<repository>:<digest>``.

    Raises:
        NodeImageBuildError: The build failed (registry unreachable, debootstrap failed, not root, ...).
        ConfigurationError: ``BATCHBOX_NODE_IMAGE_RECIPE`` is malformed.
    """
    digest = recipe_digest()
    tag = f"{repository}:{digest}"
    if not force and _image_or_none(client, tag) is not None:
        _tag_latest(client, tag, repository)
        return tag
    with _build_lock():
        if force or _image_or_none(client, tag) is None:
            all_labels = {NODE_IMAGE_LABEL: "1", RECIPE_LABEL: digest, **(labels or {})}
            if choose_recipe(client) == "dockerfile":
                _build_from_dockerfile(client, tag, all_labels)
            else:
                _build_offline(client, repository, digest, all_labels)
        _tag_latest(client, tag, repository)
    return tag


def _tag_latest(client: docker.DockerClient, tag: str, repository: str) -> None:
    image = client.images.get(tag)
    latest = _image_or_none(client, f"{repository}:latest")
    if latest is None or latest.id != image.id:
        image.tag(repository, "latest")


def _build_from_dockerfile(client: docker.DockerClient, tag: str, labels: Mapping[str, str]) -> None:
    try:
        client.images.build(
            path=str(RECIPE_DIR),
            tag=tag,
            labels=dict(labels),
            rm=True,
            forcerm=True,
            network_mode="host",
            timeout=_BUILD_TIMEOUT,
        )
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        raise NodeImageBuildError(
            f"building {tag} FROM {_BASE_IMAGE} failed ({exc}); without a container registry, build offline "
            f"as root with {RECIPE_ENV}=debootstrap"
        ) from exc


def _build_offline(client: docker.DockerClient, repository: str, digest: str, labels: Mapping[str, str]) -> None:
    tarball = _rootfs_tarball(digest)
    changes = [*_IMPORT_CHANGES, *(f'LABEL {key}="{value}"' for key, value in sorted(labels.items()))]
    try:
        client.api.import_image(src=str(tarball), repository=repository, tag=digest, changes=changes)
    except docker.errors.APIError as exc:
        raise NodeImageBuildError(f"docker import of {tarball} failed: {exc}") from exc
    if _image_or_none(client, f"{repository}:{digest}") is None:
        raise NodeImageBuildError(f"docker import of {tarball} did not create {repository}:{digest}")


def _rootfs_tarball(digest: str) -> Path:
    """Return the cached rootfs tarball of this recipe, running debootstrap first when it is missing."""
    cache = cache_dir()
    tarball = cache / f"node-rootfs-{digest}.tar"
    if tarball.is_file():
        return tarball
    if os.geteuid() != 0:
        raise NodeImageBuildError(
            "the offline node image recipe (debootstrap) needs root: run `sudo batchbox local up` (in a checkout: "
            f"`sudo make node-image`), or set "
            f"{RECIPE_ENV}=dockerfile where a container registry is reachable"
        )
    debootstrap = _ensure_debootstrap()
    for stale in [*cache.glob("node-rootfs-*.tar"), *cache.glob(".node-rootfs-*"), *cache.glob("debootstrap-*.log")]:
        stale.unlink()
    packages = _packages()
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    log_path = cache / f"debootstrap-{digest}.log"
    print(
        f"building the node image offline: debootstrap {_DEBIAN_SUITE} + {','.join(packages)} "
        f"(about a minute; log: {log_path})",
        file=sys.stderr,
        flush=True,
    )
    try:
        command = [
            debootstrap,
            f"--variant={_DEBOOTSTRAP_VARIANT}",
            f"--include={','.join(packages)}",
            _DEBIAN_SUITE,
            str(rootfs),
        ]
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            command.append(mirror)
        _run_logged(command, log_path, "debootstrap")
        shutil.copy2(RECIPE_DIR / _SETUP_SCRIPT, rootfs / "tmp" / _SETUP_SCRIPT)
        _run_logged(["chroot", str(rootfs), "/bin/sh", f"/tmp/{_SETUP_SCRIPT}"], log_path, _SETUP_SCRIPT, _CHROOT_ENV)
        (rootfs / "tmp" / _SETUP_SCRIPT).unlink()
        partial = cache / f".node-rootfs-{digest}.tar.partial"
        _run_logged(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], log_path, "tar")
        partial.rename(tarball)
    finally:
        _unmount_below(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def _packages() -> list[str]:
    lines = (RECIPE_DIR / "packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _ensure_debootstrap() -> str:
    """Return the debootstrap program, installing the Debian package (apt-get, as root) when it is missing."""
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise NodeImageBuildError(
            "debootstrap is not installed and apt-get is missing: install debootstrap, or set "
            f"{RECIPE_ENV}=dockerfile where a container registry is reachable"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"]
    print("installing debootstrap with apt-get", file=sys.stderr, flush=True)
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(install, env=env, check=False).returncode != 0:
            raise NodeImageBuildError("`apt-get install -y debootstrap` failed; install it and retry")
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if not found:
        raise NodeImageBuildError("debootstrap was installed but is not on PATH or in /usr/sbin")
    return found


def _run_logged(command: list[str], log_path: Path, step: str, env: Mapping[str, str] | None = None) -> None:
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        result = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=dict(env) if env else None, check=False
        )
    if result.returncode != 0:
        raise NodeImageBuildError(f"{step} failed with exit code {result.returncode}; see {log_path}")


def _unmount_below(root: Path) -> None:
    """Lazily unmount anything a failed debootstrap left mounted in the rootfs (proc, sys) before deleting it."""
    prefix = str(root.resolve()) + "/"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    points = [fields[1] for fields in (line.split() for line in mounts) if len(fields) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build [--force]`` prints the tag and the time taken; ``tag`` prints the tag."""
    parser = argparse.ArgumentParser(
        prog="python -m batchbox.backends.local.node_image", description="Build or name the batchbox node image."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the node image unless the tag for this recipe exists")
    build.add_argument("--force", action="store_true", help="build even when the tag exists")
    commands.add_parser("tag", help="print the tag of the node image for the current recipe")
    args = parser.parse_args(argv)
    if args.command == "tag":
        print(node_image_tag())
        return 0

    from batchbox.emulator.nodes.docker_engine import connect_docker

    started = time.monotonic()
    try:
        client = connect_docker()
        try:
            existed = not args.force and _image_or_none(client, node_image_tag()) is not None
            tag = ensure_node_image(client, force=args.force)
            size_mb = client.images.get(tag).attrs.get("Size", 0) / 1e6
        finally:
            client.close()
    except BatchboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    what = "already present" if existed else "built"
    print(f"{tag} ({what}, {size_mb:.0f} MB, {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
