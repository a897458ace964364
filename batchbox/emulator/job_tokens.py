"""Job authentication tokens: what a task with ``authenticationTokenSettings`` (``access: ["job"]``) finds in
``AZ_BATCH_AUTHENTICATION_TOKEN``.

A task (typically a job manager) sends it as ``Authorization: Bearer <token>`` to act on its own job: the emulator
accepts it for the operations under ``/jobs/{its job}`` only (403 ``InsufficientAccountPermissions`` elsewhere), until
it expires (:data:`TOKEN_LIFETIME`). A token is ``bbjt1.<payload>.<signature>``: the payload (base64url JSON) names the
job and the expiry, the signature is an HMAC-SHA256 under a key derived from the account key, so only this emulator's
account mints valid ones and no account key ever reaches a node. Tokens are secrets: never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

__all__ = ["TOKEN_LIFETIME", "TOKEN_PREFIX", "mint_job_token", "token_job"]

TOKEN_PREFIX = "bbjt1."
TOKEN_LIFETIME = 24 * 3600.0
"""Seconds a token is accepted after it was minted (when the task that received it started)."""


def _key(account_key: bytes) -> bytes:
    return hmac.new(account_key, b"batchbox job authentication token", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_job_token(account_key: bytes, job_id: str, *, now: float | None = None) -> str:
    """A token for the operations of job ``job_id`` (``account_key``: the decoded account key)."""
    expires = int((time.time() if now is None else now) + TOKEN_LIFETIME)
    payload = _b64(json.dumps({"job": job_id, "exp": expires}, separators=(",", ":")).encode("utf-8"))
    signature = _b64(hmac.new(_key(account_key), payload.encode("ascii"), hashlib.sha256).digest())
    return f"{TOKEN_PREFIX}{payload}.{signature}"


def token_job(account_key: bytes, token: str, *, now: float | None = None) -> str | None:
    """The job a token was minted for; ``None`` when it is not one of ours, was tampered with or expired."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    payload, sep, signature = token[len(TOKEN_PREFIX) :].partition(".")
    if not sep:
        return None
    expected = _b64(hmac.new(_key(account_key), payload.encode("ascii", "replace"), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("job"), str) or not isinstance(claims.get("exp"), int):
        return None
    if claims["exp"] < (time.time() if now is None else now):
        return None
    return str(claims["job"])
