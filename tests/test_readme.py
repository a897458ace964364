"""The README's examples, run as a user would copy them (the fenced blocks are read from README.md itself).

- "Writing your own workload": the Checksums workload, its shell commands (3 succeeded, outputs downloaded) and
  the Python API block, on the session's local stack;
- "The emulator on its own": the azure-batch snippet, against an emulator process (only the port differs);
- "The memory backend": the Checksums workload on it, in-process;
- "Use batchbox in your project": the test shown is the example project's own test (run by test_user_project).

A new code block fails :func:`test_every_block_is_accounted_for` until a test covers it or it is listed as
reference text.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azure.batch import models

from batchbox.backends.local.stack import LocalEndpoints
from tests.fixtures.emulator import EmulatorProcess

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

REFERENCE_BLOCKS = {
    ("batchbox — Azure Batch in a box", "bash", "make demo"),
    ("Running on Azure", "bash", "export BATCHBOX_BATCH_URL"),
    ("Writing your own workload", "text", "batchbox run my_workload.py [--backend"),
    ("The local portal", "text", "$ batchbox local up"),
    ("Rehearse Azure's failures locally", "text", "$ batchbox local up --faults"),
    ("Containers, application packages and mounts", "bash", "batchbox app add blender"),
    ("Entra ID", "bash", "batchbox local up --tls"),  # tests/test_entra.py runs these commands (with more flags)
}
"""Blocks that are reference text, not something to run here (make itself, live Azure, a synopsis, sample output)."""

RUN_BLOCKS = {
    ("Writing your own workload", "python", "from pathlib import Path"),
    ("Writing your own workload", "bash", "mkdir -p data"),
    ("Writing your own workload", "python", "from batchbox.core.backend import open_backend"),
    ("The emulator on its own", "python", "from azure.batch import BatchClient, models"),
    ("Containers, application packages and mounts", "python", "from azure.batch import BatchClient, models"),
    ("The memory backend", "python", "from batchbox.backends.memory import MemoryBackend"),
    ("Use batchbox in your project", "python", "def test_pipeline_counts_words_on_batch"),
    ("Rehearse Azure's failures locally", "toml", "[faults]"),  # tests/test_faults_cli.py
    ("Rehearse Azure's failures locally", "python", "from azure.batch import BatchClient"),  # test_faults_api.py
    ("Entra ID", "python", "import json"),  # run by tests/test_entra.py on its TLS stack
}


def _blocks() -> list[tuple[str, str, str]]:
    """(section title, language, code) of every fenced block, in order."""
    text = README.read_text()
    found = []
    for match in _BLOCK.finditer(text):
        headings = re.findall(r"^#{1,2} (.+)$", text[: match.start()], re.MULTILINE)
        found.append((headings[-1], match.group(1), match.group(2)))
    return found


def _block(section: str, language: str, start: str) -> str:
    (code,) = [
        code for title, lang, code in _blocks() if (title, lang) == (section, language) and code.startswith(start)
    ]
    return code


def test_every_block_is_accounted_for() -> None:
    seen = set()
    for title, language, code in _blocks():
        key = next(
            (k for k in RUN_BLOCKS | REFERENCE_BLOCKS if k[:2] == (title, language) and code.startswith(k[2])), None
        )
        assert key is not None, (
            f"README block in {title!r} ({language}) is neither run by a test nor reference: {code[:60]!r}"
        )
        seen.add(key)
    assert seen == RUN_BLOCKS | REFERENCE_BLOCKS


def _user_env(stack: LocalEndpoints) -> dict[str, str]:
    """A user's shell on the session's stack: batchbox on PATH, the stack's home and ports."""
    blob_port = re.search(r"BlobEndpoint=http://127\.0\.0\.1:(\d+)/", stack.storage_connection_string)
    assert blob_port is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHBOX_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        BATCHBOX_HOME=stack.state_dir,
        BATCHBOX_AZURITE_PORT=blob_port.group(1),
        BATCHBOX_EMULATOR_PORT=str(urlsplit(stack.batch_url).port),
    )
    return env


def _write_workload(folder: Path) -> None:
    (folder / "my_workload.py").write_text(_block("Writing your own workload", "python", "from pathlib import Path"))


def _checksums_of(folder: Path) -> dict[str, str]:
    return {
        f"{path.name}.sha256": f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
        for path in sorted((folder / "data").glob("*.bin"))
    }


@pytest.mark.docker
def test_checksums_workload_reports_three_succeeded_and_its_outputs_arrive(
    local_stack: LocalEndpoints, tmp_path: Path
) -> None:
    _write_workload(tmp_path)
    commands = _block("Writing your own workload", "bash", "mkdir -p data")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=tmp_path,
        env=_user_env(local_stack),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "job checksums: 3 succeeded, 0 failed of 3" in result.stdout
    assert result.stdout.split()[-3:] == ["a.bin.sha256", "b.bin.sha256", "c.bin.sha256"]
    outputs = tmp_path / "outputs" / "checksums"
    assert {path.name: path.read_text() for path in outputs.iterdir()} == _checksums_of(tmp_path)


@pytest.mark.docker
def test_python_api_block_runs_the_same_workload(local_stack: LocalEndpoints, tmp_path: Path) -> None:
    _write_workload(tmp_path)
    (tmp_path / "data").mkdir()
    for name in "xyz":
        (tmp_path / "data" / f"{name}.bin").write_bytes(os.urandom(1024))
    script = (
        (tmp_path / "my_workload.py").read_text()
        + "\n"
        + _block("Writing your own workload", "python", "from batchbox.core.backend import open_backend")
    )
    (tmp_path / "api_example.py").write_text(script)
    env = _user_env(local_stack)
    try:
        result = subprocess.run(
            [sys.executable, "api_example.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "succeeded=3" in result.stdout and "failed=0" in result.stdout
        outputs = tmp_path / "outputs" / "checksums"
        assert {path.name: path.read_text() for path in outputs.iterdir()} == _checksums_of(tmp_path)
    finally:  # keep_pool=True kept the pool: remove it, the job and the containers
        subprocess.run(
            [sys.executable, "-m", "batchbox.cli.main", "cleanup", "--workload", "my_workload.py", "--yes"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


def test_memory_backend_block_runs_the_workload_in_process(tmp_path: Path) -> None:
    _write_workload(tmp_path)
    (tmp_path / "data").mkdir()
    for name in "pq":
        (tmp_path / "data" / f"{name}.bin").write_bytes(os.urandom(512))
    block = _block("The memory backend", "python", "from batchbox.backends.memory import MemoryBackend")
    script = (tmp_path / "my_workload.py").read_text() + "\n" + block + "\nprint(result.counts.succeeded)\n"
    (tmp_path / "memory_example.py").write_text(script)
    result = subprocess.run(
        [sys.executable, "memory_example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2"
    outputs = tmp_path / "outputs" / "checksums"
    assert {path.name: path.read_text() for path in outputs.iterdir()} == _checksums_of(tmp_path)


@pytest.mark.docker
def test_emulator_snippet_runs_unchanged_but_for_the_port(emulator: EmulatorProcess, tmp_path: Path) -> None:
    snippet = _block("The emulator on its own", "python", "from azure.batch import BatchClient, models")
    assert '"http://127.0.0.1:8446"' in snippet
    (tmp_path / "snippet.py").write_text(snippet.replace("http://127.0.0.1:8446", emulator.url))
    result = subprocess.run(
        [sys.executable, "snippet.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    client = emulator.batch_client()
    try:
        deadline = time.monotonic() + 120
        while client.get_task("j1", "t1").state != models.BatchTaskState.COMPLETED:
            assert time.monotonic() < deadline, "the README's task did not complete"
            time.sleep(0.2)
        assert client.get_task("j1", "t1").execution_info.exit_code == 0
    finally:
        client.begin_delete_job("j1", polling_interval=1).wait(60)
        client.begin_delete_pool("p1", polling_interval=1).wait(60)


def test_project_block_is_the_example_projects_own_test() -> None:
    shown = _block("Use batchbox in your project", "python", "def test_pipeline_counts_words_on_batch")
    example = (REPO / "examples" / "user-project" / "tests" / "test_pipeline.py").read_text()
    assert shown in example  # run by tests/test_user_project.py


@pytest.mark.docker
def test_container_task_example_runs_in_its_image(emulator: EmulatorProcess, node_image: str, tmp_path: Path) -> None:
    snippet = _block("Containers, application packages and mounts", "python", "from azure.batch import BatchClient")
    assert '"http://127.0.0.1:8446"' in snippet and 'IMAGE = "batchbox-node:latest"' in snippet
    (tmp_path / "containers.py").write_text(snippet.replace("http://127.0.0.1:8446", emulator.url))
    result = subprocess.run(
        [sys.executable, "containers.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    client = emulator.batch_client()
    try:
        deadline = time.monotonic() + 120
        while client.get_task("cj", "in-a-container").state != models.BatchTaskState.COMPLETED:
            assert time.monotonic() < deadline, "the README's container task did not complete"
            time.sleep(0.2)
        task = client.get_task("cj", "in-a-container")
        assert task.execution_info.exit_code == 0, task.execution_info.failure_info
        output = b"".join(client.download_task_file("cj", "in-a-container", "stdout.txt")).decode().strip()
        assert output == "hello from in-a-container in /mnt/batch/tasks/workitems/cj/job-1/in-a-container/wd"
    finally:
        client.begin_delete_job("cj", polling_interval=1)
        client.begin_delete_pool("containers", polling_interval=1)
