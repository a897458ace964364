"""Keeping secrets out of tracebacks: an SDK error stays chained to the batchbox error raised for it only when
nothing in its chain shows a secret.

The SDKs quote request URLs (SAS included) and sometimes headers in their messages, and a traceback prints every
chained exception; so when one of them shows a SAS signature or a known secret, the batchbox error is raised
``from None`` instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import NoReturn

from batchbox.core.redact import SAS_SIGNATURE

__all__ = ["chain_mentions_secret", "raise_translated"]


def chain_mentions_secret(exc: BaseException, secrets: Collection[str] = ()) -> bool:
    """True when ``exc`` or an exception it chains shows a ``sig=`` value or one of ``secrets`` in str or repr."""
    for item in _chain(exc):
        text = _text(item)
        if SAS_SIGNATURE.search(text) or any(secret and secret in text for secret in secrets):
            return True
    return False


def raise_translated(error: BaseException, cause: BaseException, secrets: Collection[str] = ()) -> NoReturn:
    """Raise ``error`` chained to ``cause``, or ``from None`` when ``cause``'s chain shows a secret."""
    if chain_mentions_secret(cause, secrets):
        raise error from None
    raise error from cause


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "inner_exception", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _text(exc: BaseException) -> str:
    parts = []
    for render in (str, repr):
        try:
            parts.append(render(exc))
        except Exception:  # a broken __str__ must not hide the original error
            continue
    return " ".join(parts)
