"""The local Microsoft Entra ID stand-in: an issuer of signed access tokens, and a ``TokenCredential`` using it.

``LocalIssuer.ensure(directory)`` makes, once, under the local stack's state directory:

- ``signing-key.pem`` (mode 0600): the issuer's RSA private key. Never logged or printed;
- ``jwks.json``: its public key as a JSON Web Key Set (what the emulator verifies signatures against);
- ``openid-configuration.json``: OpenID-style metadata: ``issuer``, ``jwks_uri`` (a ``file:`` URL of ``jwks.json``),
  the signing algorithm, and the local tenant. The emulator is started with its path (``--entra-issuer``).

Tokens look like Entra ID v1 access tokens for a service principal: RS256, a ``kid`` header (the RFC 7638
thumbprint of the key), ``iss`` = ``https://sts.windows.net/<local tenant id>/``, ``aud`` from the scope asked for
(``https://batch.core.windows.net//.default`` -> ``https://batch.core.windows.net/``, ``https://storage.azure.com/
.default`` -> ``https://storage.azure.com``), ``iat``/``nbf``/``exp``, ``tid``, ``oid`` and ``sub`` (the local
identity), ``appid``, ``ver`` 1.0. The issuer's host is Entra's own spelling because Azurite accepts only Entra
issuers; nothing ever contacts it, and the tenant id is made on this machine.

:class:`LocalTokenCredential` is an azure-core ``TokenCredential`` (``get_token`` and ``get_token_info``) signing
such tokens in-process, so ``BatchClient(url, credential)`` and ``BlobServiceClient(url, credential)`` work against
the local stack as they do against Azure with Entra ID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from batchbox.backends.local.tls import write_private_key
from batchbox.core.errors import ConfigurationError

__all__ = [
    "BATCH_AUDIENCE",
    "DEFAULT_TOKEN_LIFETIME",
    "JWKS_NAME",
    "OPENID_CONFIGURATION_NAME",
    "SIGNING_KEY_NAME",
    "STORAGE_AUDIENCE",
    "LocalIssuer",
    "LocalTokenCredential",
    "audience_of_scope",
]

BATCH_AUDIENCE = "https://batch.core.windows.net/"
"""The audience of tokens for the Batch service (the trailing slash is part of it)."""
STORAGE_AUDIENCE = "https://storage.azure.com"
"""The audience of tokens for Azure Storage."""
DEFAULT_TOKEN_LIFETIME = 3600
"""Seconds a token is valid, like Entra ID's default access-token lifetime (about an hour)."""

SIGNING_KEY_NAME = "signing-key.pem"
JWKS_NAME = "jwks.json"
OPENID_CONFIGURATION_NAME = "openid-configuration.json"
_ALGORITHM = "RS256"
_APP_ID = "batchbox-local"
_REFRESH_MARGIN = 300


def audience_of_scope(scope: str) -> str:
    """The ``aud`` Entra ID puts in a token asked for ``scope``: the resource before ``/.default``."""
    return scope[: -len("/.default")] if scope.endswith("/.default") else scope


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of an RSA public key."""
    numbers = public_key.public_numbers()
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}, separators=(",", ":")
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class LocalIssuer:
    """The issuer whose files live in ``directory`` (see the module docstring).

    Attributes:
        directory: where its key and metadata are.
        issuer: the ``iss`` of its tokens.
        tenant_id: the local tenant (``tid``).
        object_id: the local identity (``oid``, ``sub``).
    """

    directory: Path
    issuer: str
    tenant_id: str
    object_id: str

    @property
    def openid_configuration(self) -> Path:
        """The metadata file the emulator is given (``--entra-issuer``)."""
        return self.directory / OPENID_CONFIGURATION_NAME

    @property
    def jwks_path(self) -> Path:
        return self.directory / JWKS_NAME

    @classmethod
    def load(cls, directory: Path) -> LocalIssuer:
        """The issuer made before in ``directory``.

        Raises:
            ConfigurationError: there is none (``batchbox local up --tls`` makes it).
        """
        try:
            metadata = json.loads((directory / OPENID_CONFIGURATION_NAME).read_text())
            present = (directory / SIGNING_KEY_NAME).is_file()
        except (OSError, ValueError):
            metadata, present = None, False
        if not present or not isinstance(metadata, dict):
            raise ConfigurationError(
                "local Entra ID issuer", f"none in {directory}: `batchbox local up --tls` makes it"
            ) from None
        return cls(directory, str(metadata["issuer"]), str(metadata["tenant_id"]), str(metadata["object_id"]))

    @classmethod
    def ensure(cls, directory: Path) -> LocalIssuer:
        """The issuer in ``directory``, made first when there is none (callers serialise this per directory)."""
        try:
            return cls.load(directory)
        except ConfigurationError:
            pass
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".entra-", dir=directory.parent))
        try:
            os.chmod(staging, 0o755)
            _write_issuer(staging, directory)
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cls.load(directory)

    def _signing_key(self) -> Any:
        return serialization.load_pem_private_key((self.directory / SIGNING_KEY_NAME).read_bytes(), password=None)

    def issue(
        self,
        audience: str,
        *,
        lifetime: int = DEFAULT_TOKEN_LIFETIME,
        now: float | None = None,
        not_before: float | None = None,
    ) -> AccessToken:
        """A signed access token for ``audience``.

        Args:
            audience: the ``aud`` claim.
            lifetime: seconds from ``now`` to ``exp`` (negative: an expired token).
            now: the issue time (default: the current time).
            not_before: the ``nbf`` claim (default: ``now``).

        Returns:
            The token and its expiry (seconds since the epoch).
        """
        issued = int(now if now is not None else time.time())
        expires = issued + lifetime
        claims = {
            "aud": audience,
            "iss": self.issuer,
            "iat": issued,
            "nbf": int(not_before) if not_before is not None else issued,
            "exp": expires,
            "tid": self.tenant_id,
            "oid": self.object_id,
            "sub": self.object_id,
            "appid": _APP_ID,
            "idtyp": "app",
            "ver": "1.0",
        }
        key = self._signing_key()
        token = jwt.encode(claims, key, algorithm=_ALGORITHM, headers={"kid": _thumbprint(key.public_key())})
        return AccessToken(token, expires)


def _write_issuer(staging: Path, final_directory: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = _thumbprint(key.public_key())
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": _ALGORITHM})
    tenant_id = str(uuid.uuid4())
    metadata = {
        "issuer": f"https://sts.windows.net/{tenant_id}/",
        "jwks_uri": (final_directory / JWKS_NAME).resolve().as_uri(),
        "id_token_signing_alg_values_supported": [_ALGORITHM],
        "token_endpoint_auth_methods_supported": [],
        "tenant_id": tenant_id,
        "object_id": str(uuid.uuid5(uuid.UUID(tenant_id), "batchbox-local-identity")),
    }
    write_private_key(staging / SIGNING_KEY_NAME, key)
    (staging / JWKS_NAME).write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    (staging / OPENID_CONFIGURATION_NAME).write_text(json.dumps(metadata, indent=2) + "\n")


class LocalTokenCredential:
    """An azure-core ``TokenCredential`` whose tokens come from the local issuer (see the module docstring).

    Args:
        issuer: the local issuer, or the directory holding it (``<state dir>/entra``).
        lifetime: seconds each token is valid.

    Raises:
        ConfigurationError: the directory holds no issuer.
    """

    def __init__(self, issuer: LocalIssuer | Path | str, *, lifetime: int = DEFAULT_TOKEN_LIFETIME) -> None:
        self._issuer = issuer if isinstance(issuer, LocalIssuer) else LocalIssuer.load(Path(issuer))
        self._lifetime = lifetime

    @property
    def issuer(self) -> LocalIssuer:
        return self._issuer

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for the one scope asked for (``https://batch.core.windows.net//.default``, ...).

        ``enable_cae`` is accepted (the local issuer's tokens need no continuous access evaluation); a ``claims``
        challenge cannot be met and is refused.

        Raises:
            ValueError: not exactly one scope, another tenant than the local one, or a claims challenge.
        """
        return self._issue(scopes, tenant_id, claims)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """The same as :meth:`get_token`, with the token type and when to refresh it."""
        chosen = options or {}
        token = self._issue(scopes, chosen.get("tenant_id"), chosen.get("claims"))
        return AccessTokenInfo(
            token.token, token.expires_on, token_type="Bearer", refresh_on=token.expires_on - _REFRESH_MARGIN
        )

    def _issue(self, scopes: tuple[str, ...], tenant_id: str | None, claims: str | None) -> AccessToken:
        if claims:
            raise ValueError("LocalTokenCredential: the local issuer cannot satisfy a claims challenge")
        if len(scopes) != 1:
            raise ValueError(f"LocalTokenCredential: exactly one scope, not {len(scopes)}")
        if tenant_id and tenant_id != self._issuer.tenant_id:
            raise ValueError(f"LocalTokenCredential: tenant {tenant_id!r} is not the local tenant")
        return self._issuer.issue(audience_of_scope(scopes[0]), lifetime=self._lifetime)

    def close(self) -> None:
        """Nothing to release (the protocol's ``close``)."""

    def __enter__(self) -> LocalTokenCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
