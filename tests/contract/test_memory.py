"""The contract suite on the memory backend: MemoryStorage and MemoryCompute, no service and no Docker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from batchbox.backends.memory import MemoryBackend, MemoryStorage
from batchbox.core.backend import Backend
from tests.contract.compute_contract import ComputeContract
from tests.contract.helpers import MemorySasClient, SasClient
from tests.contract.storage_contract import StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()

    @pytest.fixture
    def sas_client(self, storage: MemoryStorage) -> SasClient:
        return MemorySasClient(storage)

    @pytest.fixture
    def put_unsafe_blob(self, storage: MemoryStorage) -> Callable[[str, str, bytes], None]:
        return lambda container, name, data: storage.upload_bytes(container, name, data)


class TestMemoryCompute(ComputeContract):
    wait = 30.0

    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls) -> Iterator[Backend]:
        with MemoryBackend() as backend:
            yield backend
