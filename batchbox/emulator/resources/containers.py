"""Container properties: a pool's ``containerConfiguration`` and a task's ``containerSettings``, validated.

Registry passwords never enter a stored document: each is handed back as a :class:`Secret` (the handler seals it
into the store) and the document keeps ``registryServer`` and ``username`` only, so GET never returns a password.

Choices of the local emulator:

* ``type`` ``criCompatible`` is treated like ``dockerCompatible``: both run task containers with the local Docker
  engine (the Batch API and a task's view of its container are the same).
* ``identityReference`` on a registry is refused (there are no managed identities locally): give a username and
  password, or use images present in the local engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchbox.emulator.errors import invalid_property, missing_property
from batchbox.emulator.node_layout import BIND_MOUNT_SOURCES
from batchbox.emulator.resources.common import (
    Body,
    objects_in,
    opt_bool,
    opt_list,
    opt_object,
    opt_str,
    req_str,
    unsupported_property,
)
from batchbox.emulator.resources.run_options import RunOptionError, check_bind_sources, parse_run_options

__all__ = [
    "CONTAINER_TYPES",
    "DEFAULT_REGISTRY",
    "WORKING_DIRECTORIES",
    "Secret",
    "ValidationContext",
    "check_start_task_container",
    "command_line",
    "has_container_configuration",
    "image_registry",
    "registry_key",
    "registry_secret_name",
    "validate_container_configuration",
    "validate_container_settings",
]

CONTAINER_TYPES = ("dockerCompatible", "criCompatible")
WORKING_DIRECTORIES = ("taskWorkingDirectory", "containerImageDefault")
DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class Secret:
    """A secret taken out of a request body: ``name`` is where the store keeps it (see the store's secrets)."""

    name: str
    value: str


@dataclass
class ValidationContext:
    """What validating a body needs beyond the body, and what it takes out of it.

    Attributes:
        secrets: receives the secrets found (registry passwords, mount keys) for the handler to seal.
        allow_privileged: whether container run options may ask for privileges (the emulator's setting).
        storage_account: the emulator's linked storage account name (``None`` when it has none).
        stored: the body is one the emulator validated and stored before (a job manager becoming its job's task, a
            schedule's job specification becoming a job): a registry's password was kept as a secret then, so a
            username may come without it.
    """

    secrets: list[Secret] = field(default_factory=list)
    allow_privileged: bool = False
    storage_account: str | None = None
    stored: bool = False


def registry_key(server: str) -> str:
    """A registry server as the emulator compares them: lower case, no scheme, Docker Hub's names as docker.io."""
    server = server.strip().lower()
    for prefix in ("https://", "http://"):
        if server.startswith(prefix):
            server = server[len(prefix) :]
    server = server.rstrip("/")
    return DEFAULT_REGISTRY if server in ("", "index.docker.io", "registry-1.docker.io") else server


def registry_secret_name(server: str | None, username: str) -> str:
    """The store name of the password of ``username`` on a registry server (one per server and user)."""
    return f"registry-password:{registry_key(server or '')}:{username}"


def image_registry(image: str) -> str:
    """The registry server an image name refers to (``docker.io`` when it names none)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return registry_key(first)
    return DEFAULT_REGISTRY


def command_line(body: Body, in_container: bool, prefix: str = "") -> str:
    """A task's ``commandLine``: required; it may be empty only for a container (which then runs its entrypoint)."""
    if not in_container:
        return req_str(body, "commandLine", prefix)
    value = opt_str(body, "commandLine", prefix)
    if value is None:
        raise missing_property(f"{prefix}.commandLine" if prefix else "commandLine")
    return value


def _canonical_enum(body: Body, name: str, allowed: tuple[str, ...], prefix: str) -> str | None:
    value = opt_str(body, name, prefix)
    if value is None:
        return None
    for choice in allowed:
        if choice.lower() == value.lower():
            return choice
    raise invalid_property(f"{prefix}.{name}", value, f"The value must be one of: {', '.join(allowed)}.")


def _registry(item: Body, prefix: str, secrets: list[Secret], *, stored: bool = False) -> Body:
    if item.get("identityReference") is not None:
        raise unsupported_property(
            f"{prefix}.identityReference",
            "The local emulator has no managed identities: give username and password, or use a local image.",
        )
    server = opt_str(item, "registryServer", prefix)
    username = opt_str(item, "username", prefix)
    password = opt_str(item, "password", prefix)
    if password and not username:
        raise missing_property(f"{prefix}.username")
    if username and not password and not stored:
        raise missing_property(f"{prefix}.password")
    registry: Body = {}
    if server:
        registry["registryServer"] = server
    if username:
        registry["username"] = username
    if username and password:
        secrets.append(Secret(registry_secret_name(server, username), password))
    return registry


def _image_names(value: list[Any] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    names: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise invalid_property(f"{name}[{index}]", item, "An image name must be a non-empty string.")
        names.append(item.strip())
    return names


def validate_container_configuration(value: Body, name: str, secrets: list[Secret]) -> Body:
    """A pool's ``virtualMachineConfiguration.containerConfiguration`` (passwords go to ``secrets``)."""
    kind = _canonical_enum(value, "type", CONTAINER_TYPES, name)
    if kind is None:
        raise missing_property(f"{name}.type")
    config: Body = {"type": kind}
    images = _image_names(opt_list(value, "containerImageNames", name), f"{name}.containerImageNames")
    if images:
        config["containerImageNames"] = images
    registries = opt_list(value, "containerRegistries", name)
    if registries:
        config["containerRegistries"] = [
            _registry(item, prefix, secrets) for prefix, item in objects_in(registries, f"{name}.containerRegistries")
        ]
    return config


def has_container_configuration(pool_doc: Body | None) -> bool:
    """Whether a pool document runs container tasks (``virtualMachineConfiguration.containerConfiguration``)."""
    vm = (pool_doc or {}).get("virtualMachineConfiguration")
    return isinstance(vm, dict) and isinstance(vm.get("containerConfiguration"), dict)


def check_start_task_container(pool_doc: Body) -> None:
    """Refuse a start task with ``containerSettings`` on a pool without ``containerConfiguration``."""
    start = pool_doc.get("startTask")
    settings = start.get("containerSettings") if isinstance(start, dict) else None
    if isinstance(settings, dict) and not has_container_configuration(pool_doc):
        raise invalid_property(
            "startTask.containerSettings",
            settings.get("imageName"),
            "A start task runs in a container only on a pool with virtualMachineConfiguration.containerConfiguration.",
        )


def _bind_mounts(items: list[Any], name: str) -> list[Body]:
    mounts: list[Body] = []
    for prefix, item in objects_in(items, name):
        source = _canonical_enum(item, "source", BIND_MOUNT_SOURCES, prefix)
        if source is None:
            raise missing_property(f"{prefix}.source")
        mounts.append({"source": source, "isReadOnly": bool(opt_bool(item, "isReadOnly", prefix))})
    return mounts


def validate_container_settings(value: Body, name: str, *, context: ValidationContext, bind_roots: list[str]) -> Body:
    """A task's (or start task's) ``containerSettings``: the image, the parsed and checked run options, the
    registry (its password goes to ``secrets``), the working directory and the host bind mounts.

    Args:
        value: the ``containerSettings`` object.
        name: its property path, for errors.
        context: receives the registry password; says whether privileges may be asked for.
        bind_roots: the node paths ``--volume`` sources may come from (the task's directories).

    Raises:
        BatchError: MissingRequiredProperty, InvalidPropertyValue (a refused run option, with the reason),
            UnsupportedProperty (registry identityReference).
    """
    settings: Body = {"imageName": req_str(value, "imageName", name)}
    run_options = opt_str(value, "containerRunOptions", name)
    if run_options:
        try:
            check_bind_sources(parse_run_options(run_options, allow_privileged=context.allow_privileged), bind_roots)
        except RunOptionError as exc:
            raise invalid_property(f"{name}.containerRunOptions", run_options, str(exc)) from None
        settings["containerRunOptions"] = run_options
    registry = opt_object(value, "registry", name)
    if registry is not None:
        settings["registry"] = _registry(registry, f"{name}.registry", context.secrets, stored=context.stored)
    directory = _canonical_enum(value, "workingDirectory", WORKING_DIRECTORIES, name)
    if directory is not None:
        settings["workingDirectory"] = directory
    mounts = opt_list(value, "containerHostBatchBindMounts", name)
    if mounts is not None:
        settings["containerHostBatchBindMounts"] = _bind_mounts(mounts, f"{name}.containerHostBatchBindMounts")
    return settings
