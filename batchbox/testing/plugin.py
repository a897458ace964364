"""The batchbox pytest plugin (entry point ``pytest11``): ``pip install batchbox`` and your tests get

``batchbox_local`` (session scope)
    A :class:`~batchbox.testing.target.BatchTarget`: ``batch_url``, ``batch_account``, ``batch_key``,
    ``storage_connection_string``, ``batch_client()``, ``blob_service_client()`` and ``backend()``. Locally it
    starts the local stack (Azurite + the Batch emulator, under ``$BATCHBOX_HOME``) or reuses a running one, and
    stops at the end only what the test run started. pytest-xdist workers share one stack.
``batchbox_names`` (per test)
    A :class:`~batchbox.testing.isolation.UniqueNames`: unique pool, job and container names; whatever the test
    created under them is deleted after it, passed or failed.

``--batchbox-backend=azure`` (or ``BATCHBOX_BACKEND=azure``) points the same fixtures at live Azure, configured by
the ``BATCHBOX_*`` settings of the README (``BATCHBOX_BATCH_URL``, ``BATCHBOX_STORAGE_CONNECTION_STRING``, ...).
``BATCHBOX_AUTH=entra`` makes the clients use Microsoft Entra ID tokens only (locally: the stack with TLS and
``LocalTokenCredential``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest

from batchbox.core.errors import BatchboxError
from batchbox.core.settings import load_settings
from batchbox.testing.isolation import UniqueNames
from batchbox.testing.target import BatchTarget

__all__ = ["batchbox_local", "batchbox_names", "pytest_addoption"]

_BACKENDS = ("local", "azure")
_LOCAL_CLEANUP_WAIT = 60.0
"""Seconds a test's teardown waits for the local emulator to delete its pools and jobs (on Azure: no wait)."""
_log = logging.getLogger("batchbox.testing")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--batchbox-backend``."""
    group = parser.getgroup("batchbox", "batchbox (local Azure Batch)")
    group.addoption(
        "--batchbox-backend",
        choices=_BACKENDS,
        default=None,
        help="Where the batchbox_local fixture points: local (default; or BATCHBOX_BACKEND) or azure.",
    )


def _chosen_backend(config: pytest.Config) -> str:
    chosen = str(config.getoption("batchbox_backend") or load_settings().backend)
    if chosen not in _BACKENDS:
        raise pytest.UsageError(f"batchbox: BATCHBOX_BACKEND must be local or azure for tests, not {chosen!r}")
    return chosen


@pytest.fixture(scope="session")
def batchbox_local(request: pytest.FixtureRequest) -> Iterator[BatchTarget]:
    """The Batch and storage accounts of this test session: the local stack, or Azure with ``--batchbox-backend``."""
    from batchbox.testing.target import azure_target, local_target

    try:
        backend = _chosen_backend(request.config)
        settings = load_settings(backend=backend)
        if backend == "azure":
            target = azure_target(settings)
            shared = None
        else:
            from batchbox.backends.local.stack import LocalStack, StackMode
            from batchbox.testing.shared_stack import SharedLocalStack

            stack = LocalStack(
                settings.home,
                storage_connection_string=settings.storage_connection_string,
                mode=StackMode(tls=True) if settings.entra else None,
            )
            shared = SharedLocalStack(stack)
            target = local_target(shared.acquire(progress=_log.info), settings)
    except BatchboxError as exc:
        pytest.fail(f"batchbox: {exc}", pytrace=False)
    try:
        yield target
    finally:
        target.close()
        if shared is not None:
            for line in shared.release():
                _log.info("%s", line)


@pytest.fixture(scope="session")
def _batchbox_cleanup_clients(batchbox_local: BatchTarget) -> tuple[object, object]:
    """One Batch and one blob client for every test's cleanup (closed with the target)."""
    return batchbox_local.batch_client(), batchbox_local.blob_service_client()


@pytest.fixture
def batchbox_names(
    request: pytest.FixtureRequest, _batchbox_cleanup_clients: tuple[object, object]
) -> Iterator[UniqueNames]:
    """Unique pool/job/container names for this test; what was created under them is deleted afterwards."""
    batch_client, blob_client = _batchbox_cleanup_clients
    names = UniqueNames(batch_client, blob_client, request.node.name)
    try:
        yield names
    finally:
        wait = _LOCAL_CLEANUP_WAIT if request.getfixturevalue("batchbox_local").is_local else 0.0
        for problem in names.cleanup(wait_seconds=wait):
            warnings.warn(f"batchbox cleanup: {problem}", stacklevel=1)
