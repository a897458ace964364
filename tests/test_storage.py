"""BlobStorage against a real Azurite: transfers, idempotency, errors and the SAS it signs."""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.azure.storage import AZURITE_API_VERSION, SAS_START_SKEW
from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY, AzuriteProcess
from batchbox.core.errors import (
    ConfigurationError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from batchbox.core.storage import BlobInfo, ContainerPermission, UploadItem

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    """Status of a plain urllib request (no SDK, no proxy)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with NO_PROXY.open(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def make_tree(root: Path, names: list[str]) -> list[UploadItem]:
    """Files under ``root`` named like their blobs, each with distinct content."""
    items = []
    for index, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"{index}:{name}\n".encode() * (index % 7 + 1))
        items.append(UploadItem(path=path, blob_name=name))
    return items


def put_raw(azurite: AzuriteProcess, path: str, query: str, body: bytes) -> int:
    """PUT a block blob with http.client, which sends ``path`` verbatim (no dot-segment normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", azurite.port, timeout=30)
    try:
        connection.request("PUT", f"{path}?{query}", body=body, headers={"x-ms-blob-type": "BlockBlob"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# -- round trips ----------------------------------------------------------------------------------------------


def test_round_trip_nested_names(blob_storage: BlobStorage, blob_container: str, tmp_path: Path) -> None:
    names = ["top.txt", "a/b/c.txt", "a/b/d.bin", "a/e f.txt", "deep/1/2/3/4/x.csv", "ünï/cødé.txt"]
    items = make_tree(tmp_path / "src", names)

    assert blob_storage.upload_files(blob_container, items, max_concurrency=3) == names

    listed = {blob.name: blob.size for blob in blob_storage.list_blobs(blob_container)}
    assert listed == {item.blob_name: item.path.stat().st_size for item in items}
    assert blob_storage.read_blob(blob_container, "a/b/c.txt") == (tmp_path / "src/a/b/c.txt").read_bytes()

    destination = tmp_path / "dst"
    paths = blob_storage.download_container(blob_container, destination)
    assert sorted(paths) == sorted(destination / name for name in names)
    for name in names:
        assert (destination / name).read_bytes() == (tmp_path / "src" / name).read_bytes()


def test_prefix_filters_list_and_download(blob_storage: BlobStorage, blob_container: str, tmp_path: Path) -> None:
    blob_storage.upload_files(blob_container, make_tree(tmp_path / "src", ["in/a.txt", "in/b.txt", "out/c.txt"]))

    assert [blob.name for blob in blob_storage.list_blobs(blob_container, prefix="in/")] == ["in/a.txt", "in/b.txt"]
    paths = blob_storage.download_container(blob_container, tmp_path / "dst", prefix="out/")
    assert paths == [tmp_path / "dst" / "out" / "c.txt"]
    assert not (tmp_path / "dst" / "in").exists()


def test_many_files_bounded_concurrency_and_progress(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    names = [f"batch/{index // 50}/file-{index:03d}.txt" for index in range(200)]
    items = make_tree(tmp_path / "src", names)
    calls: list[tuple[str, int]] = []
    threads: set[str] = set()
    lock = threading.Lock()

    def progress(blob_name: str, size: int) -> None:
        with lock:
            calls.append((blob_name, size))
            threads.add(threading.current_thread().name)

    assert blob_storage.upload_files(blob_container, items, max_concurrency=8, progress=progress) == names
    assert sorted(calls) == sorted((item.blob_name, item.path.stat().st_size) for item in items)
    assert 1 <= len(threads) <= 8

    calls.clear()
    threads.clear()
    paths = blob_storage.download_container(blob_container, tmp_path / "dst", max_concurrency=8, progress=progress)
    assert len(paths) == 200
    assert sorted(name for name, _ in calls) == sorted(names)
    assert 1 <= len(threads) <= 8
    assert all((tmp_path / "dst" / name).read_bytes() == (tmp_path / "src" / name).read_bytes() for name in names)


def test_upload_checks_local_files_before_sending(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    items = make_tree(tmp_path, ["one.txt", "two.txt"])
    items.insert(1, UploadItem(path=tmp_path / "missing.txt", blob_name="missing.txt"))

    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        blob_storage.upload_files(blob_container, items)
    assert blob_storage.list_blobs(blob_container) == []


def test_upload_bytes_overwrite_rules(blob_storage: BlobStorage, blob_container: str) -> None:
    blob_storage.upload_bytes(blob_container, "x.txt", b"first")
    blob_storage.upload_bytes(blob_container, "x.txt", b"second")
    assert blob_storage.read_blob(blob_container, "x.txt") == b"second"

    with pytest.raises(ResourceExistsError) as caught:
        blob_storage.upload_bytes(blob_container, "x.txt", b"third", overwrite=False)
    assert (caught.value.kind, caught.value.name) == ("blob", "x.txt")
    assert blob_storage.read_blob(blob_container, "x.txt") == b"second"


def test_create_and_delete_are_idempotent(blob_storage: BlobStorage, unique_container: Callable[[], str]) -> None:
    name = unique_container()
    blob_storage.create_container(name)
    blob_storage.upload_bytes(name, "keep.txt", b"kept")
    blob_storage.create_container(name)
    assert [blob.name for blob in blob_storage.list_blobs(name)] == ["keep.txt"]

    blob_storage.delete_container(name)
    blob_storage.delete_container(name)
    with pytest.raises(ResourceNotFoundError) as caught:
        blob_storage.list_blobs(name)
    assert caught.value.kind == "container"


def test_invalid_container_name_is_refused_before_any_call(blob_storage: BlobStorage) -> None:
    with pytest.raises(ValueError, match="invalid container name"):
        blob_storage.create_container("Bad_Name")


# -- downloads ------------------------------------------------------------------------------------------------


def test_download_leaves_no_part_files_even_when_a_rename_fails(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    blob_storage.upload_files(blob_container, make_tree(tmp_path / "src", ["a.txt", "sub/b.txt", "sub/c.txt"]))
    destination = tmp_path / "dst"
    blob_storage.download_container(blob_container, destination)
    assert sorted(p.relative_to(destination).as_posix() for p in destination.rglob("*") if p.is_file()) == [
        "a.txt",
        "sub/b.txt",
        "sub/c.txt",
    ]

    blocked = tmp_path / "blocked"
    (blocked / "a.txt").mkdir(parents=True)  # a directory where the file must go: the final rename fails
    with pytest.raises(OSError):
        blob_storage.download_container(blob_container, blocked, max_concurrency=1)
    assert [p.name for p in blocked.rglob("*") if ".part-" in p.name] == []


def test_download_refuses_names_escaping_destination(
    azurite: AzuriteProcess, blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    sas = urlsplit(
        blob_storage.container_sas_url(
            blob_container, [ContainerPermission.CREATE, ContainerPermission.WRITE], expiry=timedelta(hours=1)
        )
    ).query
    assert put_raw(azurite, f"/devstoreaccount1/{blob_container}/../evil", sas, b"evil") == 201
    blob_storage.upload_bytes(blob_container, "fine.txt", b"fine")
    assert "../evil" in {blob.name for blob in blob_storage.list_blobs(blob_container)}

    destination = tmp_path / "box" / "dst"
    with pytest.raises(InvalidRequestError) as caught:
        blob_storage.download_container(blob_container, destination)
    assert (caught.value.kind, caught.value.name) == ("blob", "../evil")
    assert not (tmp_path / "box" / "evil").exists()
    assert not destination.exists() or list(destination.iterdir()) == []


def test_skip_existing_keeps_files_of_the_blob_size(
    blob_storage: BlobStorage, blob_container: str, tmp_path: Path
) -> None:
    blob_storage.upload_bytes(blob_container, "same.txt", b"0123456789")
    blob_storage.upload_bytes(blob_container, "other.txt", b"remote content")
    destination = tmp_path / "dst"
    destination.mkdir()
    (destination / "same.txt").write_bytes(b"abcdefghij")  # same size: kept as is
    (destination / "other.txt").write_bytes(b"short")  # other size: downloaded again
    fetched: list[str] = []

    paths = blob_storage.download_container(
        blob_container, destination, skip_existing=True, progress=lambda name, size: fetched.append(name)
    )
    assert sorted(paths) == [destination / "other.txt", destination / "same.txt"]
    assert fetched == ["other.txt"]
    assert (destination / "same.txt").read_bytes() == b"abcdefghij"
    assert (destination / "other.txt").read_bytes() == b"remote content"

    blob_storage.download_container(blob_container, destination, skip_existing=False)
    assert (destination / "same.txt").read_bytes() == b"0123456789"


# -- missing resources ----------------------------------------------------------------------------------------


def test_missing_container_and_blob_are_told_apart(
    blob_storage: BlobStorage, blob_container: str, unique_container: Callable[[], str], tmp_path: Path
) -> None:
    absent = unique_container()
    for call in (
        lambda: blob_storage.read_blob(absent, "x.txt"),
        lambda: blob_storage.list_blobs(absent),
        lambda: blob_storage.upload_bytes(absent, "x.txt", b"x"),
        lambda: blob_storage.upload_files(absent, make_tree(tmp_path, ["x.txt"])),
        lambda: blob_storage.download_container(absent, tmp_path / "dst"),
    ):
        with pytest.raises(ResourceNotFoundError) as caught:
            call()
        assert (caught.value.kind, caught.value.name) == ("container", absent)

    with pytest.raises(ResourceNotFoundError) as missing_blob:
        blob_storage.read_blob(blob_container, "nope/x.txt")
    assert (missing_blob.value.kind, missing_blob.value.name) == ("blob", "nope/x.txt")
    assert "\n" not in str(missing_blob.value)


# -- SAS ------------------------------------------------------------------------------------------------------


def sas_params(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_read_sas_url_works_with_plain_urllib(blob_storage: BlobStorage, blob_container: str) -> None:
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


def test_sas_expiry_accepts_a_datetime(blob_storage: BlobStorage, blob_container: str) -> None:
    expiry = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    url = blob_storage.container_sas_url(blob_container, [ContainerPermission.LIST], expiry=expiry)
    assert sas_params(url)["se"] == "2031-01-02T03:04:05Z"
    assert http_status(url + "&restype=container&comp=list") == 200


def test_container_sas_grants_exactly_the_permissions_asked(blob_storage: BlobStorage, blob_container: str) -> None:
    blob_storage.upload_bytes(blob_container, "existing.txt", b"secret data")
    write_url = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.WRITE, ContainerPermission.CREATE], expiry=timedelta(hours=1)
    )
    base, query = write_url.split("?", 1)
    assert sas_params(write_url)["sp"] == "cw"

    put = http_status(f"{base}/new.txt?{query}", "PUT", b"written", {"x-ms-blob-type": "BlockBlob"})
    assert put == 201
    assert blob_storage.read_blob(blob_container, "new.txt") == b"written"
    assert http_status(f"{base}?{query}&restype=container&comp=list") == 403
    assert http_status(f"{base}/existing.txt?{query}") == 403

    read_list = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.LIST, ContainerPermission.READ], expiry=timedelta(hours=1)
    )
    assert sas_params(read_list)["sp"] == "rl"
    base, query = read_list.split("?", 1)
    assert http_status(f"{base}?{query}&restype=container&comp=list") == 200
    assert http_status(f"{base}/existing.txt?{query}") == 200


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


def test_blob_info_of_listing(blob_storage: BlobStorage, blob_container: str) -> None:
    blob_storage.upload_bytes(blob_container, "x.txt", b"12345")
    [info] = blob_storage.list_blobs(blob_container)
    assert isinstance(info, BlobInfo)
    assert (info.name, info.size) == ("x.txt", 5)
    assert info.last_modified is not None


# -- refused SAS, secrets and dead endpoints ------------------------------------------------------------------


def sas_storage(blob_storage: BlobStorage, sas_url: str) -> BlobStorage:
    """A BlobStorage that holds only the SAS of ``sas_url``, as a task node would."""
    from azure.core.credentials import AzureSasCredential

    return BlobStorage(blob_storage.endpoint, AzureSasCredential(urlsplit(sas_url).query), retry_total=0)


def tamper(url: str) -> str:
    """``url`` with the first character of its signature changed."""
    from urllib.parse import unquote

    base, query = url.split("?", 1)
    parts = query.split("&")
    for index, part in enumerate(parts):
        if part.startswith("sig="):
            signature = unquote(part[4:])
            parts[index] = "sig=" + _quoted(("B" if signature[0] == "A" else "A") + signature[1:])
    tampered = f"{base}?{'&'.join(parts)}"
    assert sas_params(tampered)["sig"] != sas_params(url)["sig"]
    return tampered


def _quoted(value: str, safe: str = "") -> str:
    from urllib.parse import quote

    return quote(value, safe=safe)


def test_expired_sas_is_refused(blob_storage: BlobStorage, blob_container: str) -> None:
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobClient

    from batchbox.backends.azure._storage_errors import translate_storage_error
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    url = blob_storage.blob_sas_url(blob_container, "x.txt", expiry=timedelta(minutes=-1))
    assert http_status(url) == 403

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


def test_tampered_sas_is_refused(blob_storage: BlobStorage, blob_container: str) -> None:
    from batchbox.core.errors import AuthenticationError

    blob_storage.upload_bytes(blob_container, "x.txt", b"x")
    good = blob_storage.blob_sas_url(blob_container, "x.txt", expiry=timedelta(hours=1))
    assert http_status(good) == 200
    assert http_status(tamper(good)) == 403

    container_sas = blob_storage.container_sas_url(
        blob_container, [ContainerPermission.READ], expiry=timedelta(hours=1)
    )
    with sas_storage(blob_storage, tamper(container_sas)) as limited, pytest.raises(AuthenticationError):
        limited.read_blob(blob_container, "x.txt")


def test_read_only_sas_cannot_write(blob_storage: BlobStorage, blob_container: str) -> None:
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
