"""Microsoft Entra ID bearer tokens for the Batch API, verified: signature, issuer, audience, lifetime.

The emulator trusts one issuer, described by an OpenID-style metadata document (``--entra-issuer PATH``): its
``issuer`` string and a ``jwks_uri`` naming its JSON Web Key Set. ``batchbox local up --tls`` makes such an issuer
(``batchbox.backends.local.entra``); the ``jwks_uri`` must be a ``file:`` URL or a path next to the metadata, so
verification never reaches the network.

A token is accepted when PyJWT verifies, in this order: an RS256 signature by a key of the set (chosen by the
token's ``kid``), ``iss`` equal to the issuer, ``aud`` exactly ``https://batch.core.windows.net/`` (as Batch
compares it, trailing slash included), and ``nbf`` <= now < ``exp`` with :data:`CLOCK_SKEW` of tolerance. Every
refusal is Batch's ``403 AuthenticationFailed`` with an ``AuthenticationErrorDetail`` saying which check failed; no
detail quotes the token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from ..errors import BatchError

__all__ = [
    "BATCH_AUDIENCE",
    "CLOCK_SKEW",
    "TOKEN_AUTHENTICATION_FAILED_MESSAGE",
    "TokenClaims",
    "TokenVerifier",
    "token_authentication_failed",
]

BATCH_AUDIENCE = "https://batch.core.windows.net/"
"""The audience Batch accepts (the resource id of the Batch service; the trailing slash is part of it)."""

CLOCK_SKEW = 300
"""Seconds of clock difference tolerated on ``nbf`` and ``exp`` (Entra ID token validation's default: 5 minutes)."""

TOKEN_AUTHENTICATION_FAILED_MESSAGE = (
    "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly."
)
"""The message Batch answers refused bearer tokens with (SharedKey refusals also mention the signature)."""

_ALGORITHMS = ["RS256"]


def token_authentication_failed(detail: str) -> BatchError:
    """403 ``AuthenticationFailed`` for a refused bearer token (``detail`` never quotes the token)."""
    return BatchError(
        403, "AuthenticationFailed", TOKEN_AUTHENTICATION_FAILED_MESSAGE, {"AuthenticationErrorDetail": detail}
    )


@dataclass(frozen=True)
class TokenClaims:
    """Who a verified token names.

    Attributes:
        object_id: the ``oid`` claim (the identity), or ``sub`` when there is no ``oid``.
        tenant_id: the ``tid`` claim ("" when absent).
        expires_on: ``exp``, seconds since the epoch.
    """

    object_id: str
    tenant_id: str
    expires_on: int


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


class TokenVerifier:
    """Verifies bearer tokens against one issuer and its keys.

    Args:
        issuer: the ``iss`` tokens must carry.
        jwks: the issuer's JSON Web Key Set (``{"keys": [...]}``).
        audience: the ``aud`` tokens must carry.
        clock_skew: seconds of tolerance on ``nbf`` / ``exp``.

    Raises:
        ValueError: the key set holds no usable RSA signing key.
    """

    def __init__(
        self, issuer: str, jwks: Mapping[str, Any], *, audience: str = BATCH_AUDIENCE, clock_skew: int = CLOCK_SKEW
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.clock_skew = clock_skew
        try:
            key_set = jwt.PyJWKSet.from_dict(dict(jwks))
        except (jwt.PyJWKSetError, jwt.PyJWKError) as exc:
            raise ValueError(f"the issuer's key set is not usable: {exc}") from None
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        if not self._keys:
            raise ValueError("the issuer's key set has no key with a 'kid'")

    @classmethod
    def from_openid_configuration(cls, path: Path, **options: Any) -> TokenVerifier:
        """Read the issuer's metadata document and the key set its ``jwks_uri`` names (a local file).

        Raises:
            ValueError: the document or the key set cannot be read, or ``jwks_uri`` is not a local file.
        """
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
            issuer = str(metadata["issuer"])
            jwks_uri = str(metadata["jwks_uri"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read the issuer metadata {path}: {exc}") from None
        parts = urlsplit(jwks_uri)
        if parts.scheme == "file":
            jwks_path = Path(unquote(parts.path))
        elif not parts.scheme:
            jwks_path = path.parent / jwks_uri
        else:
            raise ValueError(f"the issuer's jwks_uri must be a local file, not a {parts.scheme} URL")
        try:
            jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the issuer's key set {jwks_path}: {exc}") from None
        return cls(issuer, jwks, **options)

    def verify(self, token: str) -> TokenClaims:
        """Check one token, against the current time.

        Args:
            token: the compact JWT (after ``Bearer ``).

        Returns:
            The identity the token names.

        Raises:
            BatchError: 403 ``AuthenticationFailed`` naming the check that failed.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise token_authentication_failed("The access token is not a well-formed JSON Web Token.") from None
        key = self._keys.get(str(header.get("kid", "")))
        if key is None or header.get("alg") not in _ALGORITHMS:
            raise token_authentication_failed("The access token is not signed by a key of the trusted issuer.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.clock_skew,
                options={"require": ["exp", "nbf", "iss", "aud"], "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise token_authentication_failed("The access token signature is invalid.") from None
        except jwt.InvalidAudienceError:
            audience = _unverified(token).get("aud")
            raise token_authentication_failed(
                f"The access token has been obtained from wrong audience or resource '{str(audience)[:200]}'. "
                f"It should exactly match (including forward slash) with one of the allowed audiences "
                f"'{self.audience}'"
            ) from None
        except jwt.InvalidIssuerError:
            issuer = _unverified(token).get("iss")
            raise token_authentication_failed(
                f"The access token is from the wrong issuer '{str(issuer)[:200]}'. It must match '{self.issuer}'."
            ) from None
        except jwt.ExpiredSignatureError:
            expiry = float(_unverified(token)["exp"])  # PyJWT checked it is a number
            current = datetime.now(timezone.utc).timestamp()
            raise token_authentication_failed(
                f"The access token expiry UTC time '{_utc(expiry)}' is earlier than current UTC time '{_utc(current)}'."
            ) from None
        except jwt.ImmatureSignatureError:
            raise token_authentication_failed("The access token is not valid yet (nbf is in the future).") from None
        except jwt.MissingRequiredClaimError as exc:
            raise token_authentication_failed(f"The access token has no '{exc.claim}' claim.") from None
        except jwt.InvalidTokenError:
            raise token_authentication_failed("The access token is not a valid JSON Web Token.") from None
        object_id = str(claims.get("oid") or claims.get("sub") or "")
        return TokenClaims(object_id=object_id, tenant_id=str(claims.get("tid") or ""), expires_on=int(claims["exp"]))


def _unverified(token: str) -> dict[str, Any]:
    """The claims of a token whose signature was already checked (to quote ``aud`` / ``iss`` / ``exp``)."""
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
