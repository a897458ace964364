"""Replays the Azure Batch data-plane exchanges recorded against the real service and compares the answers.

The recordings are the Azure CLI's VCR cassettes (``shared/reference/batch-recordings`` next to the repository,
never copied into it; see ``tests/fixtures/batch_recordings.py``). Each cassette was recorded in a new Batch account, so
each is replayed against a fresh emulator process: every exchange in order, signed with the emulator's key, with the
translations of ``tests/replay/translate.py`` (Windows command lines, node ids, retired cloud service pools) and
polling replayed as polling (``tests/replay/runner.py``).

Compared per exchange: status, Batch error code, ``odata.metadata``, the set of property paths, the set of Batch
headers. ``tests/recorded_exchanges_baseline.yaml`` lists what may still differ and why; the test fails on anything
else. The table is printed (``pytest -s``) and written to ``tests/artifacts/recorded_exchanges.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from batchbox.backends.local.azurite import find_free_port
from tests.fixtures.batch_recordings import recordings_dir
from tests.fixtures.emulator import EmulatorProcess
from tests.replay.baseline import Verdict, load_baseline
from tests.replay.cassettes import Cassette, load_cassettes
from tests.replay.report import render_report
from tests.replay.runner import Outcome, replay_cassette
from tests.signing import SignedClient

BASELINE = Path(__file__).with_name("recorded_exchanges_baseline.yaml")
REPORT = Path(__file__).parent / "artifacts" / "recorded_exchanges.md"


@pytest.fixture(scope="module")
def cassettes() -> list[Cassette]:
    folder = recordings_dir()
    if folder is None:
        pytest.skip("no recorded exchanges: shared/reference/batch-recordings next to the repository is absent")
    found = load_cassettes(folder)
    if not found:
        pytest.fail(f"{folder} holds no cassette with Batch data-plane exchanges", pytrace=False)
    return found


@contextmanager
def fresh_emulator(docker_client: docker.DockerClient, node_image: str, base: Path) -> Iterator[EmulatorProcess]:
    """A new emulator process with its own state; stopped and its containers removed afterwards."""
    process = EmulatorProcess(
        port=find_free_port(),
        state_dir=base / "state",
        instance_label=f"test-{uuid.uuid4().hex[:12]}",
        node_image=node_image,
        docker_client=docker_client,
    )
    try:
        process.start()
        yield process
    finally:
        process.cleanup()


def test_baseline_entries_are_well_formed() -> None:
    baseline = load_baseline(BASELINE)
    assert baseline.differs or baseline.retired or baseline.local_differences
    for expect, _ in baseline.retired.values():
        status, _, code = expect.partition(" ")
        assert status.isdigit() and int(status) >= 400 and code, f"retired answers are Batch errors, not {expect!r}"
    for _, allowed in baseline.differs.values():
        assert allowed, "a differing exchange lists the differences it is allowed"


@pytest.mark.docker
@pytest.mark.timeout(600)
def test_recorded_exchanges_conform_to_the_baseline(
    cassettes: list[Cassette],
    docker_client: docker.DockerClient,
    node_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    baseline = load_baseline(BASELINE)
    results: list[tuple[Outcome, Verdict]] = []
    for cassette in cassettes:
        base = tmp_path_factory.mktemp("replay")
        with (
            fresh_emulator(docker_client, node_image, base) as emulator,
            SignedClient(emulator.url, emulator.account_name, emulator.account_key) as client,
        ):
            outcomes = replay_cassette(client, cassette, ignore_paths=baseline.ignore_paths)
        results += [(outcome, baseline.verdict(outcome)) for outcome in outcomes]
    report = render_report(results)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report, encoding="utf-8")
    print(report)
    problems = [verdict.problem for _, verdict in results if verdict.problem]
    problems += [f"{key}: in the baseline but replayed nowhere" for key in baseline.stale_keys(o for o, _ in results)]
    assert not problems, "\n".join(problems)
