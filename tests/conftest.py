"""Shared fixtures: one real Azurite, the real Docker engine and node image, and real emulator processes."""

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
