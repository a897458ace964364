"""The Azurite process helper: start, answer, stop by PID, detached mode, and clear errors when missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from batchbox.backends.local.azurite import (
    AZURITE_ACCOUNT_KEY,
    AZURITE_JS_ENV,
    AzuriteProcess,
    connection_string,
    find_azurite_command,
    read_pid_file,
    running_from_pid_file,
    stop_from_pid_file,
    stop_pid,
    wait_until_answering,
)
from batchbox.core.errors import BackendUnavailableError


def gone(pid: int) -> bool:
    """True when no process (or only a zombie) has this PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


def test_connection_string_names_the_endpoint() -> None:
    text = connection_string("127.0.0.1", 12345)
    assert "AccountName=devstoreaccount1;" in text
    assert f"AccountKey={AZURITE_ACCOUNT_KEY};" in text
    assert text.endswith("BlobEndpoint=http://127.0.0.1:12345/devstoreaccount1;")


def test_session_azurite_answers(azurite: AzuriteProcess) -> None:
    assert azurite.is_running()
    assert not gone(azurite.pid)
    assert wait_until_answering("127.0.0.1", azurite.port, timeout=5)
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.port}/devstoreaccount1"
    assert azurite.log_path.is_file()


def test_start_answers_and_stop_ends_exactly_that_pid(tmp_path: Path) -> None:
    process = AzuriteProcess(tmp_path / "state", in_memory=True).start()
    try:
        pid, port = process.pid, process.port
        assert port > 0
        assert not gone(pid)
        assert wait_until_answering("127.0.0.1", port, timeout=5)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--skipApiVersionCheck" in cmdline and b"--inMemoryPersistence" in cmdline
        assert not (tmp_path / "state" / AzuriteProcess.PID_FILE_NAME).exists()  # attached: no pid file
    finally:
        process.stop()
    assert gone(pid)
    assert not process.is_running()
    assert not wait_until_answering("127.0.0.1", port, timeout=0.5)


def test_second_process_on_a_taken_port_fails_in_one_line(azurite: AzuriteProcess, tmp_path: Path) -> None:
    clash = AzuriteProcess(tmp_path / "state", port=azurite.port, in_memory=True, startup_timeout=20)
    with pytest.raises(BackendUnavailableError) as caught:
        clash.start()
    assert "already in use" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not clash.is_running()
    assert azurite.is_running()


def test_detached_process_outlives_its_starter_and_stops_by_pid_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    starter = textwrap.dedent(
        f"""
        from pathlib import Path
        from batchbox.backends.local.azurite import AzuriteProcess
        AzuriteProcess(Path({str(state)!r}), in_memory=True, detached=True).start()
        """
    )
    real_js = Path(find_azurite_command()[-1])
    linked_js = tmp_path / "custom" / "main.js"  # a path without "azurite" in it: the pid file's program is checked
    linked_js.parent.mkdir()
    linked_js.symlink_to(real_js)
    env = {**os.environ, AZURITE_JS_ENV: str(linked_js)}
    subprocess.run([sys.executable, "-c", starter], check=True, timeout=60, env=env)
    pid_file = state / AzuriteProcess.PID_FILE_NAME
    info = read_pid_file(pid_file)
    assert info is not None
    try:
        assert json.loads(pid_file.read_text())["pid"] == info.pid
        assert info.program == str(linked_js)
        assert running_from_pid_file(pid_file) == info
        assert not gone(info.pid)
        assert os.getsid(info.pid) == info.pid  # its own session: a terminal hangup does not reach it
        assert wait_until_answering(info.host, info.port, timeout=5)
        assert f"127.0.0.1:{info.port}/devstoreaccount1" in info.connection_string
    finally:
        stopped = stop_from_pid_file(pid_file)
    assert stopped
    assert wait_gone(info.pid)
    assert not pid_file.exists()
    assert running_from_pid_file(pid_file) is None


def test_stop_pid_leaves_other_processes_alone() -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert stop_pid(bystander.pid, timeout=1) is False
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(10)
    assert stop_pid(bystander.pid, timeout=1) is False  # reaped: nothing to stop


def test_missing_main_js_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackendUnavailableError) as explicit:
        AzuriteProcess(tmp_path, js_path=tmp_path / "nope" / "main.js").start()
    message = str(explicit.value)
    assert "\n" not in message
    assert "make setup" in message and "main.js" in message
    assert explicit.value.service == "Azurite"

    monkeypatch.setenv(AZURITE_JS_ENV, str(tmp_path / "absent.js"))
    with pytest.raises(BackendUnavailableError, match=AZURITE_JS_ENV) as from_env:
        find_azurite_command()
    assert "\n" not in str(from_env.value)


def test_env_variable_selects_main_js(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "main.js"
    script.write_text("process.exit(3);\n")
    monkeypatch.setenv(AZURITE_JS_ENV, str(script))
    assert find_azurite_command()[-1] == str(script)

    with pytest.raises(BackendUnavailableError, match="exited with code 3") as caught:
        AzuriteProcess(tmp_path / "state", in_memory=True).start()
    assert "\n" not in str(caught.value)
