"""examples/user-project, as a user runs it: installed with the batchbox wheel, its tests run with the plugin.

The project is copied out of the checkout and installed into the venv of tests/fixtures/wheel.py (with its
``test`` extra), and its own ``pytest -n 2`` runs against the local stack that venv's ``batchbox local up``
started: the plugin reuses that stack and leaves it running.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.fixtures.wheel import REPO, InstalledWheel, WheelStack

pytestmark = pytest.mark.docker

EXAMPLE = REPO / "examples" / "user-project"


def test_example_project_tests_pass_on_the_installed_wheel(
    installed_wheel: InstalledWheel, wheel_stack: WheelStack
) -> None:
    project = installed_wheel.root / "user-project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    install = installed_wheel.run(
        "python", "-m", "pip", "install", "--quiet", "--no-build-isolation", f"{project}[test]", timeout=600
    )
    assert install.returncode == 0, install.stderr
    before = json.loads(installed_wheel.run("batchbox", "local", "status", "--json").stdout)

    result = installed_wheel.run("pytest", "-p", "no:cacheprovider", "-n", "2", cwd=project, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout

    after = json.loads(installed_wheel.run("batchbox", "local", "status", "--json").stdout)
    assert after["emulator"]["running"] and after["azurite"]["running"]
    assert after["emulator"]["pid"] == before["emulator"]["pid"]  # reused, not restarted, not stopped
