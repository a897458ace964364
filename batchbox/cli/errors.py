"""Turning exceptions into one-line messages and exit codes (tracebacks only with ``--debug``)."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from batchbox.core.errors import BackendUnavailableError, BatchboxError, ConfigurationError
from batchbox.core.redact import redact

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_UNAVAILABLE", "handle_errors"]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130

_P = ParamSpec("_P")
_R = TypeVar("_R")


def handle_errors(command: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap a click command so errors print as ``batchbox: error: ...`` on one line with a fitting exit code."""

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        ctx = click.get_current_context()
        debug = bool((ctx.obj or {}).get("debug"))
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("batchbox: interrupted; run the same command again to resume", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException):
            raise
        except ConfigurationError as exc:
            _fail(ctx, exc, EXIT_CONFIG, debug)
        except BackendUnavailableError as exc:
            _fail(ctx, exc, EXIT_UNAVAILABLE, debug)
        except (BatchboxError, ValueError, TimeoutError, OSError) as exc:
            _fail(ctx, exc, EXIT_FAILED, debug)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def _fail(ctx: click.Context, exc: BaseException, code: int, debug: bool) -> None:
    if debug:
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    message = " ".join(str(exc).split()) or type(exc).__name__
    click.echo(f"batchbox: error: {redact(message)}", err=True)
    ctx.exit(code)
