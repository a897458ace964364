"""Authentication of Batch requests: SharedKey, verified exactly as the Batch SDKs sign, or an Entra ID token.

Bearer tokens are verified by :mod:`batchbox.emulator.protocol.tokens`; SharedKey can be switched off, as on a Batch
account that allows only Microsoft Entra ID.

The string to sign (azure-batch 15.x ``BatchSharedKeyAuthPolicy``; the 14.x msrest ``SharedKeyAuth`` builds the same
lines)::

    VERB\\n
    content-encoding\\n content-language\\n content-length\\n content-md5\\n content-type\\n date\\n
    if-modified-since\\n if-match\\n if-none-match\\n if-unmodified-since\\n range\\n     (values only; "" when absent)
    ocp-*:value\\n ...                   (every header whose name contains "ocp-", sorted, empty values skipped)
    /{account}{percent-encoded URL path}
    \\nname:value ...                    (query parameters sorted by name, parse_qs-decoded first value, empty skipped)

signed with HMAC-SHA256 under the base64-decoded account key. The SDKs differ only in where ``content-length`` comes
from: 15.x signs before the transport runs and fills in ``"0"`` itself for bodiless non-GET/HEAD requests, 14.x signs
the prepared ``requests`` request (whose transport already set ``Content-Length: 0``), and the azure-core policy that
shipped between them signed ``""`` while the transport sent ``0``. The Batch REST documentation additionally
lower-cases query parameter names (the SDKs do not: ``timeOut`` is signed as is). The verifier therefore computes the
few candidate strings that a genuine client can have signed and accepts the request when any of them matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlparse

from ..errors import BatchError
from ..job_tokens import TOKEN_PREFIX, token_job
from .tokens import TokenVerifier, token_authentication_failed

__all__ = [
    "AUTHENTICATION_FAILED_MESSAGE",
    "HEADERS_TO_SIGN",
    "MAX_CLOCK_SKEW",
    "SHARED_KEY_DISABLED_DETAIL",
    "Principal",
    "SharedKeyVerifier",
    "authentication_failed",
    "canonical_strings",
    "decode_account_key",
    "headers_from_scope",
    "sign_string",
]

_log = logging.getLogger(__name__)

HEADERS_TO_SIGN = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)

MAX_CLOCK_SKEW = timedelta(minutes=15)
"""The Batch service refuses requests created more than 15 minutes before (or after) it receives them."""

AUTHENTICATION_FAILED_MESSAGE = (
    "Server failed to authenticate the request. "
    "Make sure the value of Authorization header is formed correctly including the signature."
)

SHARED_KEY_DISABLED_DETAIL = "The specified type of authentication SharedKey is not allowed for this account."
"""What Batch says to a SharedKey request on an account that allows only Microsoft Entra ID."""

_BODILESS_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Principal:
    """Who a request was authenticated as.

    Attributes:
        scheme: ``"SharedKey"``, ``"Bearer"`` (a verified Microsoft Entra ID token) or ``"JobToken"`` (a task's
            ``AZ_BATCH_AUTHENTICATION_TOKEN``, see ``job_tokens``).
        account: the account name of a SharedKey request; None for bearer tokens.
        object_id: the identity (``oid``) of a bearer token; None for SharedKey.
        job_id: for a job token, the only job it may act on.
    """

    scheme: str
    account: str | None
    object_id: str | None = None
    job_id: str | None = None


def authentication_failed(detail: str) -> BatchError:
    """403 ``AuthenticationFailed`` with an ``AuthenticationErrorDetail`` value (never a key or a signature)."""
    return BatchError(403, "AuthenticationFailed", AUTHENTICATION_FAILED_MESSAGE, {"AuthenticationErrorDetail": detail})


def decode_account_key(account_key: str) -> bytes:
    """The HMAC key bytes of a base64 account key.

    Raises:
        ValueError: the key is not valid base64 (the message does not contain the key).
    """
    try:
        return base64.b64decode(account_key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("the account key is not valid base64") from None


def sign_string(key: bytes, string_to_sign: str) -> str:
    """Base64 HMAC-SHA256 of ``string_to_sign`` (UTF-8) under ``key``."""
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def headers_from_scope(raw_headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased header name -> first value, from ASGI ``scope["headers"]``."""
    result: dict[str, str] = {}
    for name, value in raw_headers:
        result.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return result


def _unique(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _content_length_candidates(method: str, headers: Mapping[str, str]) -> list[str]:
    received = headers.get("content-length") or ""
    sdk15 = "0" if not received and method not in _BODILESS_METHODS else received
    return _unique([sdk15, received, "" if received == "0" else received])


def _query_candidates(query_string: str) -> list[str]:
    parsed = parse_qs(query_string)
    as_sent = "".join(f"\n{name}:{parsed[name][0]}" for name in sorted(parsed) if parsed[name][0])
    lowered: dict[str, str] = {}
    for name in sorted(parsed):
        lowered.setdefault(name.lower(), parsed[name][0])
    documented = "".join(f"\n{name}:{lowered[name]}" for name in sorted(lowered) if lowered[name])
    return _unique([as_sent, documented])


def canonical_strings(
    method: str, raw_path: str, query_string: str, headers: Mapping[str, str], account: str
) -> list[str]:
    """Every string to sign that a genuine Batch client can have produced for this request (most likely first).

    Args:
        method: the HTTP method as received.
        raw_path: the percent-encoded path exactly as received (ASGI ``raw_path``), without the query.
        query_string: the raw query string (without ``?``).
        headers: lower-cased header name -> value.
        account: the account name as written in the Authorization header.
    """
    method = method.upper()
    # The SDKs sign urlparse(url).path: same parse here, so a ";params" tail is treated identically.
    path = urlparse("http://host" + raw_path).path
    ocp = "".join(f"{name}:{value}\n" for name, value in sorted(headers.items()) if "ocp-" in name and value)
    resource = f"/{account}{path}"
    results: list[str] = []
    for content_length in _content_length_candidates(method, headers):
        values = [content_length if name == "content-length" else headers.get(name) or "" for name in HEADERS_TO_SIGN]
        prefix = method + "\n" + "\n".join(values) + "\n" + ocp + resource
        results.extend(prefix + query for query in _query_candidates(query_string))
    return _unique(results)


def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


class SharedKeyVerifier:
    """Checks the ``Authorization`` header of Batch requests against one account: SharedKey, or a bearer token.

    Args:
        account_name: the account clients must name.
        account_key: its base64 key.
        tokens: verifies ``Authorization: Bearer`` tokens (None: bearer tokens are refused).
        shared_key_enabled: False refuses every SharedKey request, as Batch does on an account that allows only
            Microsoft Entra ID.
        max_clock_skew: how far ``ocp-date`` / ``Date`` may be from the server's clock.

    Raises:
        ValueError: the account key is not base64.
    """

    def __init__(
        self,
        account_name: str,
        account_key: str,
        *,
        tokens: TokenVerifier | None = None,
        shared_key_enabled: bool = True,
        max_clock_skew: timedelta = MAX_CLOCK_SKEW,
    ) -> None:
        self.account_name = account_name
        self._key = decode_account_key(account_key)
        self.tokens = tokens
        self.shared_key_enabled = shared_key_enabled
        self.max_clock_skew = max_clock_skew

    def verify(
        self,
        method: str,
        raw_path: str,
        query_string: str,
        headers: Mapping[str, str],
        *,
        now: datetime | None = None,
    ) -> Principal:
        """Authenticate one request.

        Args:
            method: HTTP method.
            raw_path: percent-encoded path as received.
            query_string: raw query string.
            headers: lower-cased header name -> value.
            now: the server time to compare the request date with (default: the current UTC time).

        Returns:
            The authenticated principal.

        Raises:
            BatchError: 403 ``AuthenticationFailed`` (missing or malformed header, unknown account, stale or future
                date, wrong signature; SharedKey when it is disabled; a bearer token that fails verification, or
                any bearer token when no issuer is trusted).
        """
        authorization = headers.get("authorization", "").strip()
        if not authorization:
            raise authentication_failed("The Authorization header is missing.")
        scheme, _, credentials = authorization.partition(" ")
        scheme_lower = scheme.lower()
        if scheme_lower == "bearer":
            return self._verify_bearer(credentials.strip())
        if scheme_lower != "sharedkey":
            raise authentication_failed(f"The authentication scheme '{scheme[:40]}' is not supported.")
        if not self.shared_key_enabled:
            raise authentication_failed(SHARED_KEY_DISABLED_DETAIL)
        account, sep, signature = credentials.strip().partition(":")
        if not sep or not account or not signature:
            raise authentication_failed(
                "The Authorization header must have the form 'SharedKey <account>:<signature>'."
            )
        if account.lower() != self.account_name.lower():
            raise authentication_failed(f"The account '{account[:64]}' in the Authorization header is not known.")
        self._check_date(headers, now)
        given = signature.strip().encode("utf-8")
        candidates = canonical_strings(method, raw_path, query_string, headers, account)
        matched = False
        for string_to_sign in candidates:
            # Evaluate every candidate so the time taken does not depend on which one matched.
            matched |= hmac.compare_digest(sign_string(self._key, string_to_sign).encode("ascii"), given)
        if not matched:
            _log.debug("SharedKey mismatch for %s %s; string to sign: %r", method, raw_path, candidates[0])
            raise authentication_failed(
                "The MAC signature found in the HTTP request is not the same as any computed signature."
            )
        return Principal("SharedKey", account)

    def _verify_bearer(self, token: str) -> Principal:
        job_id = token_job(self._key, token)
        if job_id is not None:
            return Principal("JobToken", None, job_id=job_id)
        if token.startswith(TOKEN_PREFIX):
            raise authentication_failed("The job authentication token is not valid, or it expired.")
        if self.tokens is None:
            raise token_authentication_failed(
                "Microsoft Entra ID tokens are not accepted by this emulator: start it with --entra-issuer "
                "(batchbox local up --tls does)."
            )
        if not token:
            raise token_authentication_failed("The Bearer token is empty.")
        claims = self.tokens.verify(token)
        return Principal("Bearer", None, object_id=claims.object_id)

    def _check_date(self, headers: Mapping[str, str], now: datetime | None) -> None:
        raw = headers.get("ocp-date") or headers.get("date")
        if not raw:
            raise authentication_failed("The request has neither an ocp-date nor a Date header.")
        sent = _parse_http_date(raw)
        if sent is None:
            raise authentication_failed(f"The request date header is not a valid RFC 1123 date: '{raw[:64]}'.")
        current = now if now is not None else datetime.now(timezone.utc)
        if current.tzinfo is None:
            current = current.replace(tzinfo=timezone.utc)
        if sent < current - self.max_clock_skew:
            raise authentication_failed(f"Request date header too old: '{raw}'")
        if sent > current + self.max_clock_skew:
            raise authentication_failed(f"Request date header too far in the future: '{raw}'")
