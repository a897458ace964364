"""The synchronous ``BlobServiceClient`` behind :class:`~batchbox.backends.azure.storage.BlobStorage`: its
credential, its HTTP session and its bounded retries, tuned for Azure Storage accounts and for Azurite alike."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential, TokenCredential
from azure.storage.blob import BlobServiceClient, LinearRetry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from batchbox.backends.azure._storage_errors import strip_query
from batchbox.core.errors import ConfigurationError

__all__ = [
    "AZURITE_API_VERSION",
    "StorageCredential",
    "credential_from_connection_string",
    "is_local_endpoint",
    "key_or_token",
    "service_client",
]

StorageCredential = str | AzureNamedKeyCredential | AzureSasCredential | TokenCredential
"""An account key, a named key, a SAS (no SAS generation then) or an Azure AD token credential."""

AZURITE_API_VERSION = "2025-11-05"
"""The x-ms-version pinned for Azurite (accepted by Azurite 3.35 to 3.37 without --skipApiVersionCheck)."""

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def is_local_endpoint(account_url: str) -> bool:
    """True for a plain-http or loopback endpoint (Azurite): it gets :data:`AZURITE_API_VERSION` and no proxy."""
    parts = urlsplit(account_url)
    return parts.scheme == "http" or (parts.hostname or "") in _LOOPBACK_HOSTS


def key_or_token(credential: StorageCredential) -> tuple[str | None, TokenCredential | None]:
    """The account key (signing SAS with it) or the token credential (signing them with a user delegation key)
    of ``credential``; neither for a SAS credential."""
    if isinstance(credential, str):
        return credential, None
    if isinstance(credential, AzureNamedKeyCredential):
        return credential.named_key.key, None
    if isinstance(credential, AzureSasCredential):
        return None, None
    return None, credential


def credential_from_connection_string(conn_str: str) -> tuple[str, StorageCredential]:
    """The blob endpoint (no query string) and the credential a connection string carries.

    Raises:
        ConfigurationError: the connection string is malformed or carries no credential.
    """
    try:
        parsed = BlobServiceClient.from_connection_string(conn_str)
    except ValueError as exc:
        raise ConfigurationError("connection string", str(exc).splitlines()[0]) from None
    with parsed:
        url = parsed.url
        account_name = getattr(parsed.credential, "account_name", None)
        account_key = getattr(parsed.credential, "account_key", None)
    if isinstance(account_name, str) and isinstance(account_key, str):
        return strip_query(url), AzureNamedKeyCredential(account_name, account_key)
    if urlsplit(url).query:
        return strip_query(url), AzureSasCredential(urlsplit(url).query)
    raise ConfigurationError("connection string", "has neither AccountKey nor SharedAccessSignature")


def service_client(
    endpoint: str,
    credential: StorageCredential,
    *,
    api_version: str | None,
    retry_total: int,
    retry_backoff: int,
    connection_timeout: float,
    read_timeout: float,
    pool_size: int,
    ca_bundle: str | None,
) -> BlobServiceClient:
    """The SDK client of ``endpoint``: linear retries (about one second of jitter when ``retry_backoff`` is 2 or
    more), bounded timeouts, ``pool_size`` connections per host; :data:`AZURITE_API_VERSION` by default for a local
    endpoint.

    Raises:
        ConfigurationError: the SDK refuses the endpoint or the API version.
    """
    local = is_local_endpoint(endpoint)
    session = _http_session(pool_size, use_env_proxies=not local)
    try:
        return BlobServiceClient(
            endpoint,
            credential=credential,
            api_version=api_version or (AZURITE_API_VERSION if local else None),
            retry_policy=LinearRetry(
                backoff=retry_backoff, retry_total=retry_total, random_jitter_range=1 if retry_backoff >= 2 else 0
            ),
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
            session=session,
            connection_verify=ca_bundle or True,
        )
    except ValueError as exc:  # e.g. no account name in the URL, unknown api_version
        session.close()
        raise ConfigurationError("blob storage", str(exc).splitlines()[0]) from None


def _http_session(pool_size: int, *, use_env_proxies: bool) -> requests.Session:
    """The SDK's HTTP session: ``pool_size`` connections per host, no urllib3 retries (the SDK retries), and no
    environment proxy towards a local endpoint."""
    session = requests.Session()
    session.trust_env = use_env_proxies
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
