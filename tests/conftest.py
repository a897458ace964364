"""Shared fixtures: one real Azurite, the real Docker engine and node image, and real emulator processes."""

import os

import pytest

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.docker",
    "tests.fixtures.task_images",
    "tests.fixtures.emulator",
    "tests.fixtures.backends",
    "tests.fixtures.wheel",
    "tests.fixtures.faults",
    "tests.fixtures.fake_batch",
    "pytester",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``soak`` run only under ``make soak`` (``BATCHBOX_SOAK=1``), never in ``make test``."""
    if os.environ.get("BATCHBOX_SOAK") == "1":
        return
    skip = pytest.mark.skip(reason="a soak: run it with `make soak` (BATCHBOX_SOAK=1)")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
