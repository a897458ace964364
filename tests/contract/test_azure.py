"""The contract suite on live Azure Batch and Azure Blob Storage (marked ``azure``; skipped unless
``BATCHBOX_TEST_AZURE=1`` and the Azure settings are present, see tests/fixtures/backends.py). Pools here are real
and cost money while the tests run; every test deletes what it created."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from batchbox.core.backend import Backend
from batchbox.core.storage import StorageBackend
from tests.contract.compute_contract import ComputeContract
from tests.contract.helpers import HttpSasClient, SasClient
from tests.contract.storage_contract import StorageContract
from tests.fixtures.backends import azure_backend

pytestmark = pytest.mark.azure


class TestAzureStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[StorageBackend]:
        with azure_backend() as backend:
            yield backend.storage

    @pytest.fixture
    def sas_client(self) -> SasClient:
        return HttpSasClient()

    @pytest.fixture
    def put_unsafe_blob(self) -> Callable[[str, str, bytes], None]:
        pytest.skip("Azure Storage normalises '..' in blob paths: no escaping name can be stored there")


class TestAzureCompute(ComputeContract):
    wait = 1200.0

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Iterator[Backend]:
        with azure_backend() as backend:
            yield backend
