"""Running the emulator: uvicorn in the foreground until Ctrl-C or SIGTERM (both stop it cleanly, exit status 0).

``run(config)`` builds the app with ``batchbox.emulator.app.create_app(config)`` (or an injected factory), writes
``<state_dir>/emulator.pid`` while it serves, and logs to stderr. The configuration itself is never logged: it holds
the account key.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from batchbox.core.pidfiles import claim_pid_file, release_pid_file

from .config import LOG_LEVELS, EmulatorConfig, is_loopback
from .runtime.runtime import Runtime

__all__ = ["LOG_LEVELS", "PID_FILE_NAME", "AppFactory", "is_loopback", "pid_file", "run"]

_log = logging.getLogger("batchbox.emulator")

PID_FILE_NAME = "emulator.pid"
GRACEFUL_SHUTDOWN_SECONDS = 5
"""How long open requests (agents' long polls) may run on after a stop signal before they are cut."""

AppFactory = Callable[[EmulatorConfig], ASGIApp]

_HANDLER_MARK = "_batchbox_stderr_handler"


def pid_file(config: EmulatorConfig) -> Path:
    """``<state_dir>/emulator.pid``."""
    return config.state_dir / PID_FILE_NAME


def _default_factory(config: EmulatorConfig) -> ASGIApp:
    from .app import create_app

    return create_app(config)


def _configure_logging(log_level: str) -> None:
    level = logging.DEBUG if log_level == "trace" else getattr(logging, log_level.upper(), logging.INFO)
    logger = logging.getLogger("batchbox")
    logger.setLevel(level)
    if not any(getattr(handler, _HANDLER_MARK, False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-8s %(name)s: %(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
        logger.propagate = False


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, emulator_config: EmulatorConfig) -> None:
        super().__init__(config)
        self._emulator_config = emulator_config

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Held agent long polls would otherwise keep the graceful shutdown waiting until its timeout.
        runtime = getattr(getattr(self.config.app, "state", None), "runtime", None)  # any ASGI app may be served
        if isinstance(runtime, Runtime):
            runtime.release_polls()
        await super().shutdown(sockets=sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            cfg = self._emulator_config
            _log.info("batchbox emulator listening on %s (account %s)", cfg.base_url, cfg.account_name)
            _announce_portal(cfg)


def _announce_portal(config: EmulatorConfig) -> None:
    """Say where the portal is and where its token lives; the whole URL (with the token) goes only to a terminal,
    never to the log, which may be a file others can read."""
    from batchbox.emulator.portal.token import ensure_token, portal_url, token_path

    token = ensure_token(config.state_dir)
    _log.info(
        "portal: %s (sign in once with ?token=<the token in %s>)",
        portal_url(config.base_url),
        token_path(config.state_dir),
    )
    if sys.stdout.isatty():
        print(f"Portal: {portal_url(config.base_url, token)}", flush=True)


@contextmanager
def _quiet_stop_signals() -> Iterator[None]:
    """Make SIGINT / SIGTERM harmless once uvicorn hands them back.

    uvicorn catches both signals for a graceful shutdown and, when done, raises them again for the handlers that were
    installed before it; with these no-op handlers in place that re-raise ends nothing, so the process exits 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ignore(signum: int, frame: FrameType | None) -> None:
        _log.debug("signal %d after shutdown ignored", signum)

    previous = {sig: signal.signal(sig, ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(
    config: EmulatorConfig,
    *,
    app_factory: AppFactory | None = None,
    log_level: str = "info",
    allow_non_loopback: bool = False,
) -> None:
    """Serve the emulator in the foreground until Ctrl-C or SIGTERM.

    Args:
        config: the emulator's settings.
        app_factory: builds the ASGI app (default: ``batchbox.emulator.app.create_app``).
        log_level: one of ``LOG_LEVELS``.
        allow_non_loopback: bind a non-loopback ``config.host`` (the CLI sets it when ``--host`` was given).

    Raises:
        ValueError: a non-loopback host without ``allow_non_loopback``, or an unknown log level.
        RuntimeError: another live emulator holds the state directory's pid file.
        SystemExit: uvicorn could not start (port in use, failed app startup).
    """
    if log_level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    if not is_loopback(config.host) and not allow_non_loopback:
        raise ValueError(f"refusing to listen on the non-loopback address {config.host!r} unless it is asked for")
    _configure_logging(log_level)
    if not is_loopback(config.host):
        _log.warning("listening on %s: the emulator is reachable from other machines", config.host)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path = pid_file(config)
    holder = claim_pid_file(pid_path)
    if holder is not None:
        raise RuntimeError(f"another emulator (pid {holder}) is using the state directory {pid_path.parent}")
    try:
        app = (app_factory or _default_factory)(config)
        uvicorn_config = uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            ssl_certfile=str(config.tls_certfile) if config.tls_certfile else None,
            ssl_keyfile=str(config.tls_keyfile) if config.tls_keyfile else None,
        )
        server = _Server(uvicorn_config, config)
        with _quiet_stop_signals(), suppress(KeyboardInterrupt):
            server.run()
        _log.info("batchbox emulator stopped")
    finally:
        release_pid_file(pid_path)
