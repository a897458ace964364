"""The portal in a real browser: Debian's Chromium, headless, driven by Playwright, against a real emulator.

Skipped with the reason when Chromium (``/usr/bin/chromium`` or ``$BATCHBOX_CHROMIUM``; ``make setup`` installs it
as root on Debian/Ubuntu) or Playwright is missing. Screenshots of the main pages go to ``tests/artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as m

from batchbox.emulator.portal import read_token
from tests.portal_helpers import SCRIPT_OUTPUT, all_done, make_scenario, unique, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Headless, as root, and never reaching out to the internet on its own."""


def chromium_path() -> str | None:
    """``$BATCHBOX_CHROMIUM``, else Debian's ``/usr/bin/chromium`` (or whatever ``chromium`` is on the PATH)."""
    candidate = os.environ.get("BATCHBOX_CHROMIUM") or "/usr/bin/chromium"
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium with a fresh profile; one per module."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: `make setup` installs Debian's chromium as root with apt (or set BATCHBOX_CHROMIUM)")
    with playwright_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def client(emulator: Any) -> BatchClient:
    return emulator.batch_client()


@pytest.fixture(scope="module")
def scenario(client: BatchClient) -> dict[str, str]:
    ids = make_scenario(client, unique("portal-ui"))
    all_done(client, ids["job"], 8)
    return ids


@pytest.fixture(scope="module")
def page(browser: Any, emulator: Any, scenario: dict[str, str]) -> Any:
    """A tab signed in to the portal (the token once in the URL, then the cookie)."""
    tab = browser.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto(f"{emulator.url}/portal/?token={read_token(emulator.state_dir)}")
    assert tab.url == f"{emulator.url}/portal/"  # the token left the address bar
    tab.page_errors = errors
    return tab


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"portal-{name}.png"), full_page=True)


def show(page: Any, emulator: Any, hash_path: str) -> None:
    page.goto(f"{emulator.url}/portal/#/{hash_path}")


def test_a_browser_without_the_token_is_refused(browser: Any, emulator: Any) -> None:
    stranger = browser.new_page()
    try:
        stranger.context.clear_cookies()
        answer = stranger.goto(f"{emulator.url}/portal/")
        assert answer is not None and answer.status == 401
        assert "token" in stranger.inner_text("body")
        answer = stranger.goto(f"{emulator.url}/portal/?token=not-the-token")
        assert answer is not None and answer.status == 403
    finally:
        stranger.close()


def test_overview_and_pool_with_its_nodes(page: Any, emulator: Any, scenario: dict[str, str]) -> None:
    show(page, emulator, "")
    page.get_by_role("link", name=scenario["pool"]).first.wait_for()
    page.get_by_role("link", name=scenario["job"]).first.wait_for()
    screenshot(page, "overview")
    show(page, emulator, f"pools/{scenario['pool']}")
    page.get_by_role("heading", name="Nodes").wait_for()
    node_row = page.locator("tr", has=page.locator("code", has_text="tvmps_")).first
    node_row.wait_for()
    assert "idle" in node_row.inner_text() or "running" in node_row.inner_text()
    assert "1/1 dedicated" in page.inner_text("dl.facts")
    screenshot(page, "pool")
    node_row.get_by_role("link", name="files").click()
    page.get_by_role("link", name="workitems/").click()  # the node's files, then into a directory
    page.locator(".crumbs a", has_text="workitems").wait_for()
    assert page.page_errors == []


def test_job_counts_failing_task_and_one_bar_per_run(page: Any, emulator: Any, scenario: dict[str, str]) -> None:
    show(page, emulator, f"jobs/{scenario['job']}")
    legend = page.locator(".card .bar-legend").first
    legend.get_by_text("succeeded 6").wait_for()
    assert "failed 2" in legend.inner_text()
    row = page.locator("tr[data-task='fails']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[1] == "failed" and cells[2] == "3" and "FailureExitCode" in cells[-1]
    bars = page.evaluate(
        "() => document.querySelector('canvas.timeline-canvas').timeline.bars().map(b => [b.task, b.outcome, b.row])"
    )
    assert len(bars) == 9  # 8 tasks, one retried: one bar per run
    flaky = [outcome for task, outcome, _ in bars if task == "flaky"]
    assert sorted(flaky) == ["retried", "succeeded"]
    assert {row for _, _, row in bars} <= {0, 1}  # one node, two slots: two rows
    screenshot(page, "job")
    show(page, emulator, f"jobs/{scenario['job']}/tasks/fails")
    stderr = page.locator("pre.output[data-file='stderr.txt']")
    page.wait_for_function(
        "() => document.querySelector(\"pre.output[data-file='stderr.txt']\").textContent.length > 0"
    )
    assert stderr.text_content() == "boom\n"
    facts = page.inner_text("dl.facts")
    assert "exit code\n3" in facts and "FailureExitCode" in facts
    screenshot(page, "task")
    assert page.page_errors == []


def test_output_with_markup_is_shown_as_text_and_never_runs(page: Any, emulator: Any, scenario: dict[str, str]) -> None:
    show(page, emulator, f"jobs/{scenario['job']}/tasks/html")
    page.wait_for_function(
        "() => document.querySelector(\"pre.output[data-file='stdout.txt']\").textContent.length > 0"
    )
    shown = page.locator("pre.output[data-file='stdout.txt']")
    assert shown.text_content() == SCRIPT_OUTPUT + "\n"
    assert shown.locator("script, img").count() == 0
    page.wait_for_timeout(1500)  # two more refreshes
    assert page.evaluate("() => window.__pwned") is None


def test_a_running_task_finishing_updates_its_row_without_a_reload(
    page: Any, emulator: Any, client: BatchClient, scenario: dict[str, str]
) -> None:
    job_id = unique("live")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=scenario["pool"])))
    client.create_task(job_id, m.BatchTaskCreateOptions(id="slow", command_line="/bin/sh -c 'sleep 4; echo done'"))
    show(page, emulator, f"jobs/{job_id}")
    state = page.locator("tr[data-task='slow'] td").nth(1)
    wait_for("the row to show the task running", lambda: state.inner_text() == "running", timeout=60)
    page.evaluate("() => { window.__sameDocument = 42; }")
    wait_for("the row to show the task completed", lambda: state.inner_text() == "completed", timeout=60)
    assert page.evaluate("() => window.__sameDocument") == 42  # no reload happened
    assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1
    runs = page.evaluate("() => document.querySelector('canvas.timeline-canvas').timeline.bars().map(b => b.outcome)")
    assert runs == ["succeeded"]


def test_terminate_and_delete_ask_first(
    page: Any, emulator: Any, client: BatchClient, scenario: dict[str, str]
) -> None:
    job_id = unique("ui-actions")
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=scenario["pool"])))
    client.create_task(job_id, m.BatchTaskCreateOptions(id="sleeper", command_line="/bin/sh -c 'sleep 120'"))
    show(page, emulator, f"jobs/{job_id}")
    terminate = page.get_by_role("button", name="Terminate")
    terminate.wait_for()
    page.once("dialog", lambda dialog: dialog.dismiss())
    terminate.click()
    page.wait_for_timeout(1000)
    assert client.get_job(job_id).state == m.BatchJobState.ACTIVE  # "Cancel" changes nothing
    page.once("dialog", lambda dialog: dialog.accept())
    terminate.click()
    wait_for("the job to complete", lambda: client.get_job(job_id).state == m.BatchJobState.COMPLETED)
    assert client.get_job(job_id).execution_info.termination_reason == "UserTerminate"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{emulator.url}/portal/#/jobs")
    wait_for("the job to be gone", lambda: job_id not in [j.id for j in client.list_jobs()])
