"""Signing SAS for :class:`~batchbox.backends.azure.storage.BlobStorage`: with the account key, or with a user
delegation key fetched through Azure AD (at most 7 days; fetched once and reused while it lasts)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone

from azure.core.credentials import TokenCredential
from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_blob_sas,
    generate_container_sas,
)

from batchbox.core.errors import ConfigurationError
from batchbox.core.storage import ContainerPermission, expiry_time, permission_string

__all__ = ["SAS_START_SKEW", "SasSigner"]

SAS_START_SKEW = timedelta(minutes=15)
"""SAS start times lie this far in the past so clients with a slow clock can use them at once."""

_USER_DELEGATION_MAX = timedelta(days=7)


class SasSigner:
    """Makes the query strings of read-only blob SAS and container SAS.

    Args:
        client: the service client (fetches user delegation keys).
        account_name: the storage account.
        account_key: the account key, or None.
        token_credential: an Azure AD credential (used when there is no account key), or None.
        protocol: the protocols the SAS allow (``https`` or ``https,http``).
        errors: translated errors of a call about a container (a context manager).
    """

    def __init__(
        self,
        client: BlobServiceClient,
        account_name: str,
        account_key: str | None,
        token_credential: TokenCredential | None,
        protocol: str,
        errors: Callable[[str], AbstractContextManager[None]],
    ) -> None:
        self._client = client
        self._account_name = account_name
        self._account_key = account_key
        self._token_credential = token_credential
        self._protocol = protocol
        self._errors = errors
        self._delegation_lock = threading.Lock()
        self._delegation: tuple[UserDelegationKey, datetime] | None = None

    def blob_sas(self, container: str, blob_name: str, expiry: datetime | timedelta) -> str:
        """A read-only SAS for one blob."""
        start, expiry_at = _sas_window(expiry)
        account_key, delegation_key = self._signing_key(expiry_at, container)
        return generate_blob_sas(
            self._account_name,
            container,
            blob_name,
            permission=BlobSasPermissions(read=True),
            expiry=expiry_at,
            start=start,
            protocol=self._protocol,
            account_key=account_key,
            user_delegation_key=delegation_key,
        )

    def container_sas(
        self, container: str, permissions: Sequence[ContainerPermission], expiry: datetime | timedelta
    ) -> str:
        """A SAS for a container with exactly ``permissions``."""
        granted = ContainerSasPermissions.from_string(permission_string(permissions))
        start, expiry_at = _sas_window(expiry)
        account_key, delegation_key = self._signing_key(expiry_at, container)
        return generate_container_sas(
            self._account_name,
            container,
            permission=granted,
            expiry=expiry_at,
            start=start,
            protocol=self._protocol,
            account_key=account_key,
            user_delegation_key=delegation_key,
        )

    def _signing_key(self, expiry: datetime, container: str) -> tuple[str | None, UserDelegationKey | None]:
        """(account key, user delegation key): exactly one is set."""
        if self._account_key is not None:
            return self._account_key, None
        if self._token_credential is not None:
            return None, self._user_delegation_key(expiry, container)
        raise ConfigurationError("credential", "a SAS credential cannot sign new SAS; use an account key or Azure AD")

    def _user_delegation_key(self, expiry: datetime, container: str) -> UserDelegationKey:
        """A user delegation key valid until ``expiry``, fetched once and reused while it lasts (Azure AD only)."""
        now = datetime.now(timezone.utc)
        if expiry - now > _USER_DELEGATION_MAX:
            raise ValueError("a SAS signed with Azure AD credentials can be valid for at most 7 days")
        with self._delegation_lock:
            if self._delegation is None or self._delegation[1] < expiry:
                key_expiry = min(max(expiry, now + timedelta(hours=12)), now + _USER_DELEGATION_MAX)
                with self._errors(container):
                    key = self._client.get_user_delegation_key(now - SAS_START_SKEW, key_expiry)
                self._delegation = (key, key_expiry)
            return self._delegation[0]


def _sas_window(expiry: datetime | timedelta) -> tuple[datetime, datetime]:
    """(start, expiry) in UTC: start 15 minutes ago; a naive ``expiry`` is taken as UTC."""
    return datetime.now(timezone.utc) - SAS_START_SKEW, expiry_time(expiry)
