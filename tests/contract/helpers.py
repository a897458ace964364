"""Small helpers of the contract tests: unique names, waiting for a state, and using SAS URLs as a node would."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Protocol, TypeVar

import pytest

from batchbox.backends.memory._sas import SasRefused
from batchbox.backends.memory.storage import MemoryStorage

__all__ = ["HttpSasClient", "MemorySasClient", "SasClient", "eventually", "unique"]

T = TypeVar("T")


def unique(prefix: str) -> str:
    """``prefix`` and ten random hex digits: a pool, job or container name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], *, timeout: float = 120.0, what: str = "") -> T:
    """Poll ``probe`` until ``accept`` holds; fail the test (with the last value) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if accept(value):
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"{what or 'condition'} not reached in {timeout:.0f} s; last value: {value!r}")
        time.sleep(0.1)


class SasClient(Protocol):
    """What a task node can do with nothing but a SAS URL; each call returns the HTTP status Azure would give."""

    def read(self, sas_url: str, blob: str | None = None) -> tuple[int, bytes]:
        """GET a blob: the one a blob SAS names, or ``blob`` of a container SAS."""

    def write(self, container_sas_url: str, blob: str, data: bytes) -> int:
        """PUT ``data`` as ``blob`` through a container SAS."""

    def list(self, container_sas_url: str) -> int:
        """List the container of a container SAS."""


def _blob_of(sas_url: str, blob: str | None) -> str:
    if blob is None:
        return sas_url
    base, _, query = sas_url.partition("?")
    return f"{base}/{blob}?{query}"


class HttpSasClient:
    """The Blob REST API through urllib, as the node agent calls it (no SDK, no proxy)."""

    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _status(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with self._opener.open(request, timeout=30) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def read(self, sas_url: str, blob: str | None = None) -> tuple[int, bytes]:
        return self._status(urllib.request.Request(_blob_of(sas_url, blob)))

    def write(self, container_sas_url: str, blob: str, data: bytes) -> int:
        request = urllib.request.Request(
            _blob_of(container_sas_url, blob), data=data, method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
        )
        return self._status(request)[0]

    def list(self, container_sas_url: str) -> int:
        return self._status(urllib.request.Request(container_sas_url + "&restype=container&comp=list"))[0]


class MemorySasClient:
    """The same calls against a :class:`MemoryStorage`, through the access a memory node gets."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def read(self, sas_url: str, blob: str | None = None) -> tuple[int, bytes]:
        try:
            access = self.storage.sas_access(sas_url)
            return 200, access.read(blob if blob is not None else access.blob or "")
        except SasRefused as exc:
            return exc.status, b""

    def write(self, container_sas_url: str, blob: str, data: bytes) -> int:
        try:
            self.storage.sas_access(container_sas_url).write(blob, data)
        except SasRefused as exc:
            return exc.status
        return 201

    def list(self, container_sas_url: str) -> int:
        try:
            self.storage.sas_access(container_sas_url).list()
        except SasRefused as exc:
            return exc.status
        return 200
