"""Start, probe and stop the Azurite blob service: one ``node`` process per emulator, ended by its PID.

Used by the test fixtures and by ``batchbox local up``/``down``. Azurite's output goes to a log file in the
state directory, never to our stdout: its debug log may contain SAS signatures.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from batchbox.core.errors import BackendUnavailableError
from batchbox.core.pidfiles import command_line_mentions, is_alive, stop_process, write_pid_file
from batchbox.core.pidfiles import read_pid_file as read_record

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AZURITE_JS_ENV",
    "AzuriteProcess",
    "PidFileInfo",
    "blob_endpoint",
    "checkout_main_js",
    "connection_string",
    "find_azurite_command",
    "find_free_port",
    "port_is_free",
    "read_pid_file",
    "running_from_pid_file",
    "stop_from_pid_file",
    "stop_pid",
    "wait_until_answering",
]

AZURITE_ACCOUNT_NAME = "devstoreaccount1"
"""The emulator's well-known account name."""

AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The emulator's well-known, public development key (from Azurite's README). Never use it outside local use."""

AZURITE_JS_ENV = "BATCHBOX_AZURITE_JS"
"""Environment variable naming the Azurite blob ``main.js`` to run."""

_REPO_ROOT = Path(__file__).resolve().parents[3]
_REPO_MAIN_JS = _REPO_ROOT / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
_SETUP_HINT = "`batchbox local up` installs the pinned Azurite with npm (in a checkout: `make setup`)"
# Loopback only: a proxy from the environment must never see emulator traffic.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def blob_endpoint(host: str = "127.0.0.1", port: int = 10000, scheme: str = "http") -> str:
    """The emulator's blob endpoint URL (path-style, account in the first path segment)."""
    return f"{scheme}://{host}:{port}/{AZURITE_ACCOUNT_NAME}"


def connection_string(host: str = "127.0.0.1", port: int = 10000, scheme: str = "http") -> str:
    """A connection string for the emulator's blob service on ``host:port`` with the public dev key."""
    return (
        f"DefaultEndpointsProtocol={scheme};AccountName={AZURITE_ACCOUNT_NAME};AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint={blob_endpoint(host, port, scheme)};"
    )


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (bind port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (a port in TIME_WAIT counts as free, as it does for node)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def find_azurite_command(js_path: str | Path | None = None) -> list[str]:
    """The command prefix that runs Azurite's blob service.

    Looks, in order, at ``js_path``, the ``BATCHBOX_AZURITE_JS`` environment variable, the repository's
    ``node_modules/azurite/dist/src/blob/main.js``, then ``azurite-blob`` on PATH.

    Raises:
        BackendUnavailableError: neither Node.js with Azurite nor ``azurite-blob`` is installed (one line).
    """
    explicit = js_path if js_path is not None else os.environ.get(AZURITE_JS_ENV) or None
    if explicit is not None:
        main_js = Path(explicit)
        if not main_js.is_file():
            source = "given" if js_path is not None else AZURITE_JS_ENV
            raise BackendUnavailableError("Azurite", f"{main_js} ({source}) does not exist; {_SETUP_HINT}")
        return [_node_binary(), str(main_js)]
    if _REPO_MAIN_JS.is_file():
        return [_node_binary(), str(_REPO_MAIN_JS)]
    azurite_blob = shutil.which("azurite-blob")
    if azurite_blob:
        return [azurite_blob]
    raise BackendUnavailableError("Azurite", f"Azurite is not installed (no {_REPO_MAIN_JS}); {_SETUP_HINT}")


def checkout_main_js() -> Path | None:
    """Azurite's ``main.js`` in the ``node_modules`` of the source checkout batchbox runs from, if any."""
    return _REPO_MAIN_JS if _REPO_MAIN_JS.is_file() else None


def _node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise BackendUnavailableError("Azurite", f"Node.js (`node`) is not on PATH; {_SETUP_HINT}")
    return node


def wait_until_answering(
    host: str,
    port: int,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    *,
    path: str = f"/{AZURITE_ACCOUNT_NAME}?comp=list",
    cafile: str | Path | None = None,
) -> bool:
    """Poll ``http://host:port/path`` until any HTTP answer arrives; False on timeout or when ``process`` exits.

    With ``cafile`` the server is asked over HTTPS, its certificate verified against that CA.
    """
    url = f"{'https' if cafile else 'http'}://{host}:{port}{path}"
    opener = _NO_PROXY_OPENER
    if cafile:
        context = ssl.create_default_context(cafile=str(cafile))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with opener.open(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # any status (403 without credentials) means the server answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return False


@dataclass(frozen=True)
class PidFileInfo:
    """What a detached Azurite's pid file records."""

    pid: int
    host: str
    port: int
    program: str = ""
    """The script or executable Azurite was started from (checked before signalling the PID)."""
    scheme: str = "http"
    """``https`` when it serves TLS (``--cert``/``--key``)."""

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.port, self.scheme)


def read_pid_file(pid_file: Path) -> PidFileInfo | None:
    """Read a pid file written by :meth:`AzuriteProcess.start`; None when it is missing or unreadable."""
    record = read_record(pid_file)
    if record is None:
        return None
    try:
        port = int(record.fields["port"])
    except (KeyError, TypeError, ValueError):
        return None
    scheme = "https" if record.text("scheme") == "https" else "http"
    return PidFileInfo(
        pid=record.pid, host=record.text("host"), port=port, program=record.text("program"), scheme=scheme
    )


def running_from_pid_file(pid_file: Path) -> PidFileInfo | None:
    """The detached Azurite a pid file describes, when that process still runs; None otherwise."""
    info = read_pid_file(pid_file)
    if info is None or not is_alive(info.pid) or not command_line_mentions(info.pid, _markers(info.program)):
        return None
    return info


def stop_from_pid_file(pid_file: Path, timeout: float = 10.0) -> bool:
    """Stop the detached Azurite a pid file names (see :func:`stop_pid`) and remove the file.

    Returns:
        True when a running Azurite was stopped.
    """
    info = read_pid_file(pid_file)
    stopped = info is not None and stop_pid(info.pid, timeout, program=info.program)
    pid_file.unlink(missing_ok=True)
    return stopped


def _markers(program: str) -> tuple[str, ...]:
    """What the command line of an Azurite process contains: the word Azurite or the program it was started from."""
    return ("azurite", program)


def stop_pid(pid: int, timeout: float = 10.0, *, check_azurite: bool = True, program: str = "") -> bool:
    """End exactly ``pid`` (SIGTERM, then SIGKILL after ``timeout``); True when it was running.

    With ``check_azurite`` a process whose command line mentions neither Azurite nor ``program`` is left alone.
    """
    return stop_process(pid, timeout, markers=_markers(program) if check_azurite else ())


class AzuriteProcess:
    """One Azurite blob service process on ``host:port``, with its data and log under ``state_dir``.

    Args:
        state_dir: holds ``azurite.log``, the data directory ``data/`` and, when detached, ``azurite.pid``.
        port: the port to listen on; 0 picks a free one (retried if another process takes it first).
        host: the listening address (loopback).
        in_memory: keep blobs in memory instead of ``state_dir/data``.
        detached: start in a new session so the process outlives the caller, and write the pid file.
        js_path: Azurite's blob ``main.js`` (see :func:`find_azurite_command`).
        command: the whole command prefix that runs Azurite (instead of ``js_path``).
        startup_timeout: seconds to wait for the first HTTP answer.
        tls: serve HTTPS: ``(certificate, key, CA certificate)`` PEM files (the CA to verify the first answer).
        oauth: accept Microsoft Entra ID bearer tokens (``--oauth basic``; needs ``tls``).
    """

    LOG_NAME = "azurite.log"
    PID_FILE_NAME = "azurite.pid"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        in_memory: bool = False,
        detached: bool = False,
        js_path: str | Path | None = None,
        command: Sequence[str] | None = None,
        startup_timeout: float = 30.0,
        tls: tuple[Path, Path, Path] | None = None,
        oauth: bool = False,
    ) -> None:
        if oauth and tls is None:
            raise ValueError("Azurite accepts bearer tokens over HTTPS only: oauth needs tls")
        self.tls = tls
        self.oauth = oauth
        self.state_dir = Path(state_dir)
        self.host = host
        self.in_memory = in_memory
        self.detached = detached
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._js_path = js_path
        self._command = list(command) if command else None
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._program = ""

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("Azurite was not started")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.state_dir / self.LOG_NAME

    @property
    def pid_file(self) -> Path:
        return self.state_dir / self.PID_FILE_NAME

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def blob_endpoint(self) -> str:
        return blob_endpoint(self.host, self._port, self.scheme)

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self._port, self.scheme)

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> AzuriteProcess:
        """Start the process and wait until it answers HTTP.

        Returns:
            self, for chaining.

        Raises:
            BackendUnavailableError: Azurite is not installed, exits during startup or does not answer in time.
        """
        if self.is_running():
            return self
        command = self._command or find_azurite_command(self._js_path)
        self._program = command[-1]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        attempts = 3 if self._requested_port == 0 else 1
        for attempt in range(attempts):
            self._port = self._requested_port or find_free_port(self.host)
            if not port_is_free(self.host, self._port):  # else another server's answer would look like ours
                if attempt + 1 < attempts:
                    continue
                raise BackendUnavailableError("Azurite", f"port {self._port} on {self.host} is already in use")
            if self._launch(command):
                if self.detached:
                    self._write_pid_file()
                return self
            code = self._process.poll() if self._process is not None else None
            port_taken = code is not None and self._log_mentions_port_in_use()
            self.stop()
            if not (port_taken and attempt + 1 < attempts):
                why = f"exited with code {code}" if code is not None else f"did not answer in {self.startup_timeout:g}s"
                raise BackendUnavailableError("Azurite", f"{why} on port {self._port}; see {self.log_path}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, command: list[str]) -> bool:
        args = [*command, "--blobHost", self.host, "--blobPort", str(self._port), "--disableTelemetry"]
        args += ["--skipApiVersionCheck", "--loose", "--silent"]
        if self.tls is not None:
            args += ["--cert", str(self.tls[0]), "--key", str(self.tls[1])]
        if self.oauth:
            args += ["--oauth", "basic"]
        if self.in_memory:
            args.append("--inMemoryPersistence")
        else:
            data_dir = self.state_dir / "data"
            data_dir.mkdir(parents=True, exist_ok=True)
            args += ["--location", str(data_dir)]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=self.detached,
            )
        cafile = self.tls[2] if self.tls is not None else None
        answered = wait_until_answering(self.host, self._port, self.startup_timeout, self._process, cafile=cafile)
        return answered and self._process.poll() is None

    def _log_mentions_port_in_use(self) -> bool:
        try:
            tail = self.log_path.read_bytes()[-4096:]
        except OSError:
            return False
        return b"EADDRINUSE" in tail or os.strerror(errno.EADDRINUSE).encode() in tail

    def _write_pid_file(self) -> None:
        write_pid_file(
            self.pid_file, self.pid, host=self.host, port=self._port, program=self._program, scheme=self.scheme
        )

    def stop(self, timeout: float = 10.0) -> None:
        """End exactly this process (SIGTERM, then SIGKILL after ``timeout``) and remove its pid file."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        recorded = read_pid_file(self.pid_file)
        if recorded is not None and process is not None and recorded.pid == process.pid:
            self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> AzuriteProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
