"""The process helper (``batchbox.node._agent_spawner``) inside a real node container: nonadmin tasks are started
by it with exactly the credentials the agent would give them; admin tasks are started by the agent itself."""

from __future__ import annotations

import pytest

from tests.test_agent_execution import Node, assignment, node, run, task_id

__all__ = ["node"]

pytestmark = pytest.mark.docker

_WHO = '/bin/sh -c \'id -u; id -g; id -G; tr "\\000" " " < /proc/$PPID/cmdline\''


def test_a_nonadmin_task_is_started_by_the_helper_as_batchuser(node: Node) -> None:
    outcome = run(node, assignment(task_id(), _WHO))
    assert outcome.completed["exitCode"] == 0, outcome.stderr
    uid, gid, groups, *parent_lines = outcome.stdout.splitlines()
    parent = "\n".join(parent_lines)
    assert (uid, gid, groups) == ("1000", "1000", "1000")
    assert "batchbox.node._agent_spawner" in parent


def test_an_admin_task_is_started_by_the_agent_in_the_batch_group(node: Node) -> None:
    outcome = run(node, assignment(task_id(), _WHO, elevationLevel="admin"))
    assert outcome.completed["exitCode"] == 0, outcome.stderr
    uid, gid, groups, *parent_lines = outcome.stdout.splitlines()
    parent = "\n".join(parent_lines)
    assert (uid, gid, groups) == ("0", "1000", "1000")
    assert "_agent_spawner" not in parent


def test_the_helper_reports_exit_codes_and_signals(node: Node) -> None:
    assert run(node, assignment(task_id(), "/bin/sh -c 'exit 3'")).completed["exitCode"] == 3
    assert run(node, assignment(task_id(), "/bin/sh -c 'kill -TERM $$'")).completed["exitCode"] == 128 + 15
