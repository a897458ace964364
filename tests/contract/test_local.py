"""The contract suite on the local backend: BlobStorage on a real Azurite, AzureBatchCompute (azure-batch 15.x)
on a real batchbox emulator whose nodes are Docker containers."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from batchbox.backends.azure import BlobStorage
from batchbox.backends.local.azurite import AzuriteProcess
from batchbox.backends.local.backend import LocalBackend
from batchbox.backends.local.stack import LocalEndpoints
from batchbox.core.backend import Backend
from batchbox.core.storage import ContainerPermission
from tests.contract.compute_contract import ComputeContract
from tests.contract.helpers import HttpSasClient, SasClient
from tests.contract.storage_contract import HOUR, StorageContract


class TestAzuriteStorage(StorageContract):
    @pytest.fixture
    def storage(self, blob_storage: BlobStorage) -> BlobStorage:
        return blob_storage

    @pytest.fixture
    def sas_client(self) -> SasClient:
        return HttpSasClient()

    @pytest.fixture
    def put_unsafe_blob(self, azurite: AzuriteProcess, storage: BlobStorage) -> Callable[[str, str, bytes], None]:
        """A PUT through http.client, which sends the path verbatim (an SDK or urllib would normalise ``..``)."""

        def put(container: str, name: str, data: bytes) -> None:
            sas = storage.container_sas_url(container, [ContainerPermission.CREATE], expiry=HOUR)
            connection = http.client.HTTPConnection("127.0.0.1", azurite.port, timeout=30)
            try:
                path = f"{urlsplit(storage.container_url(container)).path}/{name}?{urlsplit(sas).query}"
                connection.request("PUT", path, body=data, headers={"x-ms-blob-type": "BlockBlob"})
                response = connection.getresponse()
                response.read()
                assert response.status == 201, response.status
            finally:
                connection.close()

        return put


@pytest.mark.docker
class TestEmulatorCompute(ComputeContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, local_stack: LocalEndpoints) -> Iterator[Backend]:
        with LocalBackend(local_stack) as backend:
            yield backend
