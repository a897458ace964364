"""``containerRunOptions``: the ``docker create`` options a container task may give, parsed into :class:`RunOptions`.

The text is split like a shell would (``shlex``) and read against a table of ``docker run`` options: each known option
either maps to a field of :class:`RunOptions` or is refused with the reason (one that would break the node or escape
it: host namespaces, devices, privileges, networks other than the node's host network, detaching, renaming, other
log drivers). Options docker does not know, and anything that is not an option, are refused too. Bind-mount sources
are checked later, against the task's directories (:func:`check_bind_sources`).

``--privileged``, ``--cap-add`` and ``--security-opt`` are refused unless the emulator runs with
``--allow-privileged-containers``.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["BindMount", "RunOptionError", "RunOptions", "check_bind_sources", "parse_run_options"]

_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class RunOptionError(ValueError):
    """A run option that is malformed or refused; ``option`` names it, ``reason`` says why."""

    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


@dataclass(frozen=True)
class BindMount:
    """One ``-v`` / ``--mount``: ``source`` None is an anonymous volume (removed with the container)."""

    target: str
    source: str | None = None
    read_only: bool = False


@dataclass
class RunOptions:
    """What a container task's ``containerRunOptions`` asks for (docker-py ``create_container`` terms)."""

    environment: list[tuple[str, str | None]] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    shm_size: int | None = None
    pids_limit: int | None = None
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)
    mounts: list[BindMount] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    privileged: bool = False
    read_only: bool = False
    init: bool = False
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None


def _size(option: str, value: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)b?", value.strip().lower())
    if not match:
        raise RunOptionError(option, f"'{value}' is not a size such as 512m or 2g")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def _integer(option: str, value: str) -> int:
    if not re.fullmatch(r"-?\d+", value.strip()):
        raise RunOptionError(option, f"'{value}' is not a whole number")
    return int(value)


def _cpus(option: str, value: str) -> int:
    try:
        cpus = float(value)
    except ValueError:
        raise RunOptionError(option, f"'{value}' is not a number of CPUs") from None
    if not 0 < cpus <= 1024:
        raise RunOptionError(option, "the number of CPUs must be above 0")
    return int(cpus * 1_000_000_000)


def _env(options: RunOptions, option: str, value: str) -> None:
    name, sep, text = value.partition("=")
    if not name:
        raise RunOptionError(option, f"'{value}' has no variable name")
    options.environment.append((name, text if sep else None))


def _label(options: RunOptions, option: str, value: str) -> None:
    name, _, text = value.partition("=")
    if not name or name.startswith("batchbox."):
        raise RunOptionError(option, "labels must be named and may not start with 'batchbox.' (the emulator's own)")
    options.labels[name] = text


def _ulimit(options: RunOptions, option: str, value: str) -> None:
    match = re.fullmatch(r"([a-z]+)=(-?\d+)(?::(-?\d+))?", value.strip())
    if not match:
        raise RunOptionError(option, f"'{value}' is not NAME=SOFT[:HARD]")
    soft = int(match.group(2))
    options.ulimits.append((match.group(1), soft, int(match.group(3) or soft)))


def _absolute(option: str, path: str) -> str:
    if not path.startswith("/"):
        raise RunOptionError(option, f"'{path}' must be an absolute path in the container")
    return posixpath.normpath(path)


def _volume(options: RunOptions, option: str, value: str) -> None:
    parts = value.split(":")
    if len(parts) == 1:
        options.mounts.append(BindMount(_absolute(option, parts[0])))
        return
    if len(parts) > 3:
        raise RunOptionError(option, f"'{value}' is not SOURCE:TARGET[:OPTIONS]")
    source, target = parts[0], _absolute(option, parts[1])
    flags = set(parts[2].split(",")) if len(parts) == 3 else set()
    unknown = flags - {"ro", "rw", "z", "Z"}
    if unknown:
        raise RunOptionError(option, f"volume option(s) {', '.join(sorted(unknown))} are not supported locally")
    if not source.startswith("/"):
        raise RunOptionError(option, "named volumes would outlive the task on this machine; bind a task directory")
    options.mounts.append(BindMount(target, posixpath.normpath(source), "ro" in flags))


def _mount(options: RunOptions, option: str, value: str) -> None:
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, text = item.partition("=")
        fields[key.strip().lower()] = text.strip() if sep else "true"
    kind = fields.pop("type", "volume")
    target = fields.pop("target", None) or fields.pop("dst", None) or fields.pop("destination", None)
    source = fields.pop("source", None) or fields.pop("src", None)
    read_only = fields.pop("readonly", fields.pop("ro", "false")).lower() in ("true", "1")
    if target is None:
        raise RunOptionError(option, f"'{value}' names no target")
    if fields:
        raise RunOptionError(option, f"mount option(s) {', '.join(sorted(fields))} are not supported locally")
    if kind == "tmpfs":
        options.tmpfs[_absolute(option, target)] = ""
    elif kind == "bind" and source:
        if not source.startswith("/"):
            raise RunOptionError(option, f"bind source '{source}' must be an absolute path on the node")
        options.mounts.append(BindMount(_absolute(option, target), posixpath.normpath(source), read_only))
    elif kind == "volume" and not source:
        options.mounts.append(BindMount(_absolute(option, target), None, read_only))
    else:
        raise RunOptionError(option, "only binds of task directories, anonymous volumes and tmpfs can be mounted")


def _tmpfs(options: RunOptions, option: str, value: str) -> None:
    path, _, mount_options = value.partition(":")
    options.tmpfs[_absolute(option, path)] = mount_options


def _network(options: RunOptions, option: str, value: str) -> None:
    if value != "host":
        raise RunOptionError(option, "task containers share the node's host network; only 'host' is possible")


def _setter(name: str, convert: Callable[[str, str], object] | None = None) -> Callable[[RunOptions, str, str], None]:
    def apply(options: RunOptions, option: str, value: str) -> None:
        setattr(options, name, convert(option, value) if convert else value)

    return apply


def _appender(name: str) -> Callable[[RunOptions, str, str], None]:
    def apply(options: RunOptions, option: str, value: str) -> None:
        getattr(options, name).append(value)

    return apply


_WITH_VALUE: dict[str, Callable[[RunOptions, str, str], None]] = {
    "--env": _env,
    "--workdir": _setter("workdir", _absolute),
    "--user": _setter("user"),
    "--entrypoint": _setter("entrypoint"),
    "--label": _label,
    "--memory": _setter("memory", _size),
    "--memory-swap": _setter("memory_swap", _size),
    "--memory-reservation": _setter("memory_reservation", _size),
    "--cpus": _setter("nano_cpus", _cpus),
    "--cpu-shares": _setter("cpu_shares", _integer),
    "--cpuset-cpus": _setter("cpuset_cpus"),
    "--shm-size": _setter("shm_size", _size),
    "--pids-limit": _setter("pids_limit", _integer),
    "--ulimit": _ulimit,
    "--tmpfs": _tmpfs,
    "--volume": _volume,
    "--mount": _mount,
    "--group-add": _appender("group_add"),
    "--cap-drop": _appender("cap_drop"),
    "--cap-add": _appender("cap_add"),
    "--security-opt": _appender("security_opt"),
    "--network": _network,
    "--stop-signal": _setter("stop_signal"),
    "--stop-timeout": _setter("stop_timeout", _integer),
}
_FLAGS = {
    "--privileged": "privileged",
    "--read-only": "read_only",
    "--init": "init",
    "--tty": "tty",
    "--interactive": "stdin_open",
    "--rm": None,  # task containers are always removed once their exit code is read
}
_ALIASES = {
    "-e": "--env", "-w": "--workdir", "-u": "--user", "-l": "--label", "-m": "--memory", "-c": "--cpu-shares",
    "-v": "--volume", "-t": "--tty", "-i": "--interactive", "--net": "--network",
}  # fmt: skip
_HOST_NETWORK = "task containers use the node's host network"
_REFUSED = {
    "--detach": "the task's container always runs attached, so its exit code is the task's",
    "--name": "the emulator names task containers (and finds them by name and labels)",
    "--restart": "a task runs once; Batch retries it by its maxTaskRetryCount",
    "--pid": "host and shared process namespaces would let the task reach the node's processes",
    "--ipc": "host and shared IPC namespaces would let the task reach the node's memory",
    "--uts": "the host UTS namespace would let the task rename the machine",
    "--userns": "user namespace settings are not supported locally",
    "--cgroupns": "cgroup namespace settings are not supported locally",
    "--cgroup-parent": "the node's cgroup is managed by the emulator",
    "--device": "host devices would give the task the machine's hardware",
    "--device-cgroup-rule": "host devices would give the task the machine's hardware",
    "--gpus": "the local emulator has no GPUs to give",
    "--sysctl": "with the host network, sysctls would change the machine's own settings",
    "--oom-score-adj": "the OOM score of the machine's processes is not the task's to change",
    "--oom-kill-disable": "the OOM killer keeps the machine alive",
    "--runtime": "task containers run with the engine's default runtime",
    "--isolation": "task containers run with the engine's default isolation",
    "--log-driver": "the task's stdout.txt and stderr.txt are written from the engine's default log driver",
    "--log-opt": "the task's stdout.txt and stderr.txt are written from the engine's default log driver",
    "--env-file": "files of the machine are not read; give each variable with --env",
    "--platform": "images run on this machine's own platform",
    "--pull": "images missing locally are pulled before the task starts",
    "--publish": _HOST_NETWORK,
    "--publish-all": _HOST_NETWORK,
    "--expose": _HOST_NETWORK,
    "--hostname": _HOST_NETWORK,
    "--domainname": _HOST_NETWORK,
    "--dns": _HOST_NETWORK,
    "--dns-search": _HOST_NETWORK,
    "--dns-option": _HOST_NETWORK,
    "--add-host": _HOST_NETWORK,
    "--mac-address": _HOST_NETWORK,
    "--ip": _HOST_NETWORK,
    "--ip6": _HOST_NETWORK,
    "--link": _HOST_NETWORK,
    "--network-alias": _HOST_NETWORK,
    "--volumes-from": "volumes of other containers are not the task's",
    "--volume-driver": "named volumes would outlive the task on this machine",
}
_REFUSED_SHORT = {"-d": "--detach", "-p": "--publish", "-P": "--publish-all", "-h": "--hostname"}
_PRIVILEGED = "privileged task containers could take over this machine; start the emulator with "
_PRIVILEGED += "--allow-privileged-containers to permit them"


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise RunOptionError("containerRunOptions", f"cannot be split into arguments: {exc}") from None


def _canonical(name: str) -> str:
    return _ALIASES.get(name, _REFUSED_SHORT.get(name, name))


def _expand_short(token: str) -> list[str]:
    """``-it`` -> ``-i -t``; ``-eNAME=1`` -> ``-e NAME=1``."""
    if len(token) <= 2 or token.startswith("--"):
        return [token]
    first = token[:2]
    if _canonical(first) in _WITH_VALUE:
        return [first, token[2:]]
    return [f"-{letter}" for letter in token[1:]]


def parse_run_options(text: str | None, *, allow_privileged: bool = False) -> RunOptions:
    """Parse ``containerRunOptions``.

    Raises:
        RunOptionError: the first option that is malformed, unknown or refused (with why).
    """
    options = RunOptions()
    tokens: list[str] = []
    for token in _tokens(text or ""):
        tokens += _expand_short(token) if token.startswith("-") else [token]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-") or token in ("-", "--"):
            raise RunOptionError(token, "is not an option; the task's command line is its commandLine")
        name, has_inline, inline = token.partition("=")
        name = _canonical(name)
        if name in _REFUSED:
            raise RunOptionError(name, _REFUSED[name])
        if name in _FLAGS:
            if has_inline and inline.lower() not in ("true", "false"):
                raise RunOptionError(name, f"'{inline}' is not true or false")
            attribute = _FLAGS[name]
            if attribute is not None:
                setattr(options, attribute, not has_inline or inline.lower() == "true")
            continue
        if name not in _WITH_VALUE:
            raise RunOptionError(name, "is not a docker run option the local emulator supports")
        if not has_inline:
            if index >= len(tokens):
                raise RunOptionError(name, "needs a value")
            inline, index = tokens[index], index + 1
        _WITH_VALUE[name](options, name, inline)
    if not allow_privileged:
        if options.privileged:
            raise RunOptionError("--privileged", _PRIVILEGED)
        if options.cap_add:
            raise RunOptionError("--cap-add", _PRIVILEGED)
        if options.security_opt:
            raise RunOptionError("--security-opt", _PRIVILEGED)
    return options


def check_bind_sources(options: RunOptions, allowed: Iterable[str]) -> None:
    """Refuse a bind mount whose source is not one of ``allowed`` (node paths) or below one of them.

    Raises:
        RunOptionError: naming the source and the directories it may come from.
    """
    roots = [posixpath.normpath(path) for path in allowed]
    for mount in options.mounts:
        if mount.source is None:
            continue
        if not any(mount.source == root or mount.source.startswith(root + "/") for root in roots):
            raise RunOptionError(
                "--volume",
                f"'{mount.source}' is outside the task's directories; bind one of: {', '.join(roots)}",
            )
