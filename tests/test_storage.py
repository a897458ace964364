"""BlobStorage against a real Azurite: what is particular to it (connection strings, SAS credentials, the SDK's
errors and logs, the SAS it signs). What every StorageBackend does is stated once in tests/contract/ and run there
on BlobStorage + Azurite too."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.azure.storage import AZURITE_API_VERSION, SAS_START_SKEW
from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY
from batchbox.core.errors import (
    ConfigurationError,
    ResourceNotFoundError,
)
from batchbox.core.storage import ContainerPermission
from tests.contract.storage_contract import sas_params, tamper

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- SAS ------------------------------------------------------------------------------------------------------


def test_sas_starts_early_and_allows_http_only_on_a_plain_http_endpoint(
    blob_storage: BlobStorage, blob_container: str
) -> None:
    blob_storage.upload_bytes(blob_container, "dir/data.bin", b"\x00payload\xff")
    url = blob_storage.blob_sas_url(blob_container, "dir/data.bin", expiry=timedelta(hours=1))

    with NO_PROXY.open(url, timeout=30) as response:
        assert response.read() == b"\x00payload\xff"
    params = sas_params(url)
    assert params["sp"] == "r"
    assert params["spr"] == "https,http"
    start = datetime.strptime(params["st"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    expected_start = datetime.now(timezone.utc) - SAS_START_SKEW
    assert abs(start - expected_start) < timedelta(minutes=2)
    assert url.startswith(blob_storage.blob_url(blob_container, "dir/data.bin") + "?")


def test_from_connection_string_variants_need_no_network() -> None:
    with BlobStorage.from_connection_string("UseDevelopmentStorage=true") as storage:
        assert storage.account_name == "devstoreaccount1"
        assert storage.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
        assert storage.api_version == AZURITE_API_VERSION
        assert storage.sas_protocol == "https,http"

    with BlobStorage("https://myaccount.blob.core.windows.net", AZURITE_ACCOUNT_KEY) as cloud:
        assert cloud.api_version != AZURITE_API_VERSION
        url = cloud.container_sas_url("inputs", [ContainerPermission.READ], expiry=timedelta(hours=1))
        assert url.startswith("https://myaccount.blob.core.windows.net/inputs?")
        assert sas_params(url)["spr"] == "https"

    with pytest.raises(ConfigurationError) as caught:
        BlobStorage.from_connection_string("this is not a connection string")
    assert "\n" not in str(caught.value)


def test_sas_connection_string_reaches_only_what_the_sas_allows(blob_storage: BlobStorage, blob_container: str) -> None:
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    url = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.READ, ContainerPermission.LIST], expiry=timedelta(hours=1)
    )
    conn_str = f"BlobEndpoint={blob_storage.endpoint};SharedAccessSignature={urlsplit(url).query}"
    with BlobStorage.from_connection_string(conn_str, retry_total=0) as limited:
        assert limited.endpoint == blob_storage.endpoint
        assert [blob.name for blob in limited.list_blobs(blob_container)] == ["x.txt"]
        assert limited.read_blob(blob_container, "x.txt") == b"x"
        with pytest.raises(AuthenticationError):
            limited.upload_bytes(blob_container, "y.txt", b"y")


def test_sas_credential_cannot_sign_new_sas(blob_storage: BlobStorage, blob_container: str) -> None:
    from azure.core.credentials import AzureSasCredential

    url = blob_storage.container_sas_url(blob_container, [ContainerPermission.READ], expiry=timedelta(hours=1))
    with (
        BlobStorage(blob_storage.endpoint, AzureSasCredential(urlsplit(url).query)) as limited,
        pytest.raises(ConfigurationError, match="cannot sign"),
    ):
        limited.blob_sas_url(blob_container, "x", expiry=timedelta(hours=1))


# -- refused SAS, secrets and dead endpoints ------------------------------------------------------------------


def sas_storage(blob_storage: BlobStorage, sas_url: str) -> BlobStorage:
    """A BlobStorage that holds only the SAS of ``sas_url``, as a task node would."""
    from azure.core.credentials import AzureSasCredential

    return BlobStorage(blob_storage.endpoint, AzureSasCredential(urlsplit(sas_url).query), retry_total=0)


def _quoted(value: str, safe: str = "") -> str:
    from urllib.parse import quote

    return quote(value, safe=safe)


def test_expired_sas_is_an_authentication_error(blob_storage: BlobStorage, blob_container: str) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobClient

    from batchbox.backends.azure._storage_errors import translate_storage_error
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    url = blob_storage.blob_sas_url(blob_container, "x.txt", expiry=timedelta(minutes=-1))
    client = BlobClient.from_blob_url(url, api_version=AZURITE_API_VERSION, retry_total=0)
    with pytest.raises(HttpResponseError) as sdk_error:
        client.download_blob().readall()
    translated = translate_storage_error(
        sdk_error.value, endpoint=url, account="devstoreaccount1", container=blob_container, blob="x.txt"
    )
    assert isinstance(translated, AuthenticationError)
    assert (translated.kind, translated.name) == ("blob", "x.txt")

    expired_container = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.READ], expiry=timedelta(minutes=-1)
    )
    with sas_storage(blob_storage, expired_container) as limited, pytest.raises(AuthenticationError) as caught:
        limited.read_blob(blob_container, "x.txt")
    assert "403" in str(caught.value)


def test_tampered_sas_is_an_authentication_error(blob_storage: BlobStorage, blob_container: str) -> None:
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    container_sas = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.READ], expiry=timedelta(hours=1)
    )
    with sas_storage(blob_storage, tamper(container_sas)) as limited, pytest.raises(AuthenticationError):
        limited.read_blob(blob_container, "x.txt")


def test_read_only_sas_write_names_the_storage_error_code(blob_storage: BlobStorage, blob_container: str) -> None:
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"original")
    url = blob_storage.blob_sas_url(blob_container, "x.txt", expiry=timedelta(hours=1))
    request = urllib.request.Request(url, data=b"overwrite", method="PUT", headers={"x-ms-blob-type": "BlockBlob"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        NO_PROXY.open(request, timeout=30)
    assert refused.value.code == 403
    assert refused.value.headers["x-ms-error-code"] == "AuthorizationPermissionMismatch"

    read_only = blob_storage.container_sas_url(blob_container, [ContainerPermission.READ], expiry=timedelta(hours=1))
    with sas_storage(blob_storage, read_only) as limited:
        assert limited.read_blob(blob_container, "x.txt") == b"original"
        with pytest.raises(AuthenticationError, match="AuthorizationPermissionMismatch") as caught:
            limited.upload_bytes(blob_container, "x.txt", b"overwrite")
    assert (caught.value.kind, caught.value.name) == ("blob", "x.txt")
    assert blob_storage.read_blob(blob_container, "x.txt") == b"original"


def assert_no_secret(text: str, signatures: list[str]) -> None:
    assert AZURITE_ACCOUNT_KEY not in text
    assert _quoted(AZURITE_ACCOUNT_KEY) not in text
    for signature in signatures:
        assert signature not in text
        assert _quoted(signature) not in text
        assert _quoted(signature, safe="/") not in text
    import re

    for shown in re.findall(r"sig=([^&\s'\"]+)", text):
        assert set(shown) <= {"*"} or shown == "REDACTED", "a SAS signature value reached the logs"


def exception_texts(exc: BaseException) -> str:
    import traceback

    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def test_no_secret_in_errors_or_debug_logs(
    blob_storage: BlobStorage, blob_container: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    read_only = blob_storage.container_sas_url(blob_container, [ContainerPermission.READ], expiry=timedelta(hours=1))
    signatures = [sas_params(read_only)["sig"]]
    caplog.set_level(logging.DEBUG)  # root: azure.* and urllib3 (which logs request lines, query included)
    caplog.set_level(logging.DEBUG, logger="azure")

    with sas_storage(blob_storage, read_only) as limited, pytest.raises(AuthenticationError) as refused:
        limited.upload_bytes(blob_container, "y.txt", b"y")
    with pytest.raises(ResourceNotFoundError) as missing:
        blob_storage.read_blob(blob_container, "missing.txt")

    assert "sig=*****" in caplog.text, "urllib3's request line (query included) was not logged, redacted"
    assert_no_secret(caplog.text, signatures)
    for caught in (refused.value, missing.value):
        assert "\n" not in str(caught)
        assert_no_secret(exception_texts(caught), signatures)


def test_dead_endpoint_fails_with_backend_unavailable(unique_container: Callable[[], str]) -> None:
    from azure.core.credentials import AzureSasCredential

    from batchbox.backends.local.azurite import blob_endpoint, find_free_port
    from batchbox.core.errors import BackendUnavailableError

    endpoint = blob_endpoint("127.0.0.1", find_free_port())
    with (
        BlobStorage(endpoint, AZURITE_ACCOUNT_KEY, retry_total=1, retry_backoff=0) as storage,
        pytest.raises(BackendUnavailableError) as caught,
    ):
        storage.create_container(unique_container())
    assert endpoint in str(caught.value)
    assert "\n" not in str(caught.value)
    assert_no_secret(exception_texts(caught.value), [])

    signature = "c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ=="
    sas = AzureSasCredential(f"sv=2025-11-05&sp=r&sr=c&se=2099-01-01T00%3A00%3A00Z&sig={_quoted(signature)}")
    with (
        BlobStorage(endpoint, sas, retry_total=0) as limited,
        pytest.raises(BackendUnavailableError) as via_sas,
    ):
        limited.read_blob("somewhere", "x.txt")
    assert_no_secret(exception_texts(via_sas.value), [signature])


def test_sdk_errors_quoting_a_sas_are_not_chained() -> None:
    from azure.core.exceptions import ServiceRequestError

    from batchbox.backends.azure._storage_errors import translated_errors
    from batchbox.core.errors import BackendUnavailableError

    quoting = ServiceRequestError("Max retries exceeded with url: /devstoreaccount1/c/b?sp=r&sig=c2VjcmV0%3D")
    with (
        pytest.raises(BackendUnavailableError) as caught,
        translated_errors(
            endpoint="http://127.0.0.1:1/devstoreaccount1?sig=c2VjcmV0%3D", account="devstoreaccount1", container="c"
        ),
    ):
        raise quoting
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert_no_secret(exception_texts(caught.value), ["c2VjcmV0%3D"])

    plain = ServiceRequestError("Connection refused")
    with pytest.raises(BackendUnavailableError) as chained, translated_errors(endpoint="http://h", account="a"):
        raise plain
    assert chained.value.__cause__ is plain


def test_a_default_azure_credential_made_for_storage_is_closed_with_it() -> None:
    # Construction only: asking DefaultAzureCredential for a token would probe non-loopback endpoints.
    storage = BlobStorage.from_default_azure_credential("https://127.0.0.1:1/devstoreaccount1")
    credential = storage._owned_credential
    assert type(credential).__name__ == "DefaultAzureCredential"
    closed: list[bool] = []
    original = credential.close  # type: ignore[union-attr]

    def close() -> None:
        closed.append(True)
        original()

    credential.close = close  # type: ignore[union-attr,method-assign]
    storage.close()
    assert closed == [True] and storage._owned_credential is None
    storage.close()  # a second close does not close it again
    assert closed == [True]
