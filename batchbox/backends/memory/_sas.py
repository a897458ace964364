"""URLs of the in-memory storage, and the SAS that authorise them.

A blob is ``memory://<account>/<container>/<blob>``; a SAS adds ``sv``, ``sr`` (``b`` blob, ``c`` container),
``sp`` (permissions, as Azure spells them), ``se`` (expiry, UTC) and ``sig``: an HMAC-SHA256 over the rest under
a key that lives only in the :class:`SasSigner` (one per storage object). A SAS is checked at every use, so an
expired, tampered or under-privileged URL is refused the way Azure Storage refuses it (403) and a missing
container or blob is a 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

__all__ = ["SCHEME", "SasGrant", "SasRefused", "SasSigner", "is_memory_url", "plain_url"]

SCHEME = "memory"
_VERSION = "memory-1"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class SasRefused(Exception):
    """A SAS URL was refused: ``status`` 403 (``error_code`` says why) or 404 (no such container or blob)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


@dataclass(frozen=True)
class SasGrant:
    """What a verified SAS allows: a container (and one blob of it, for a blob SAS) with ``permissions``."""

    container: str
    blob: str | None
    permissions: frozenset[str]

    def require(self, permission: str, blob: str | None = None) -> None:
        """Refuse (403 ``AuthorizationPermissionMismatch``) unless the SAS grants ``permission`` on ``blob``."""
        if permission not in self.permissions or (self.blob is not None and blob != self.blob):
            raise SasRefused(
                403,
                "AuthorizationPermissionMismatch",
                f"the SAS does not allow '{permission}' on {self.container}/{blob or ''}",
            )


def is_memory_url(url: str) -> bool:
    """True for a URL of the in-memory storage."""
    return url.startswith(f"{SCHEME}://")


def plain_url(account: str, container: str, blob: str | None = None) -> str:
    """The URL of a container or a blob, without a SAS."""
    base = f"{SCHEME}://{account}/{container}"
    return base if blob is None else f"{base}/{quote(blob, safe='/')}"


class SasSigner:
    """Signs and checks the SAS of one storage account."""

    def __init__(self, account: str) -> None:
        self.account = account
        self._key = secrets.token_bytes(32)

    def _signature(self, resource: str, path: str, permissions: str, expiry: str) -> str:
        message = "\n".join((_VERSION, self.account, resource, path, permissions, expiry)).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, container: str, blob: str | None, permissions: str, expiry: datetime) -> str:
        """A SAS URL for a container (``blob`` None) or one blob, granting ``permissions`` until ``expiry``."""
        resource = "c" if blob is None else "b"
        path = container if blob is None else f"{container}/{blob}"
        until = expiry.astimezone(timezone.utc).strftime(_TIME_FORMAT)
        query = {
            "sv": _VERSION,
            "sr": resource,
            "sp": permissions,
            "se": until,
            "sig": self._signature(resource, path, permissions, until),
        }
        return f"{plain_url(self.account, container, blob)}?{urlencode(query)}"

    def verify(self, url: str) -> SasGrant:
        """Check a SAS URL and return what it grants.

        Raises:
            SasRefused: (403) not a URL of this account, no or a wrong signature, or expired.
        """
        parts = urlsplit(url)
        if parts.scheme != SCHEME or parts.hostname != self.account.lower():
            raise SasRefused(403, "AuthenticationFailed", "the URL does not belong to this storage account")
        container, _, blob_part = parts.path.lstrip("/").partition("/")
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        resource, permissions, until = query.get("sr", ""), query.get("sp", ""), query.get("se", "")
        if resource not in ("b", "c") or (resource == "b") != bool(blob_part):
            raise SasRefused(403, "AuthenticationFailed", "the URL carries no valid SAS")
        blob = unquote(blob_part) if blob_part else None
        path = container if blob is None else f"{container}/{blob}"
        expected = self._signature(resource, path, permissions, until)
        if not hmac.compare_digest(expected, query.get("sig", "")):
            raise SasRefused(403, "AuthenticationFailed", "the SAS signature does not match")
        try:
            expiry = datetime.strptime(until, _TIME_FORMAT).replace(tzinfo=timezone.utc)
        except ValueError:
            raise SasRefused(403, "AuthenticationFailed", "the SAS has no valid expiry") from None
        if expiry <= datetime.now(timezone.utc):
            raise SasRefused(403, "AuthenticationFailed", "the SAS has expired")
        return SasGrant(container=container, blob=blob, permissions=frozenset(permissions))
