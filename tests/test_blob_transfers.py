"""The transfer runner under BlobStorage's uploads and downloads: bounds, order, first error, callers in a loop.

The work functions here are real coroutines that sleep instead of moving blobs, so the runner's own behaviour can be
observed exactly; the transfers themselves are covered against Azurite by the storage contract (tests/contract/).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from batchbox.backends.azure._blob_transfers import BlobTransfers
from batchbox.backends.local.azurite import AZURITE_ACCOUNT_KEY

ENDPOINT = "http://127.0.0.1:1/devstoreaccount1"  # never contacted: the work functions below do not use the client


def _transfers() -> BlobTransfers:
    return BlobTransfers(
        ENDPOINT,
        AZURITE_ACCOUNT_KEY,
        api_version=None,
        retry_total=0,
        retry_backoff=0,
        connection_timeout=1,
        read_timeout=1,
        use_env_proxies=False,
    )


class _Gauge:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.started: list[int] = []

    async def work(self, client: Any, item: int) -> int:
        self.started.append(item)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.002 * (item % 5))
        finally:
            self.now -= 1
        return item * 10


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_results_come_in_item_order_with_at_most_the_limit_in_flight(limit: int) -> None:
    gauge = _Gauge()
    assert _transfers().run(gauge.work, list(range(40)), limit) == [i * 10 for i in range(40)]
    assert gauge.peak == limit
    assert sorted(gauge.started) == list(range(40))


def test_the_first_error_is_raised_and_transfers_not_started_never_start() -> None:
    started: list[int] = []

    async def work(client: Any, item: int) -> int:
        started.append(item)
        if item in (3, 5):
            raise OSError(f"transfer {item} failed")
        await asyncio.sleep(0.05)
        return item

    with pytest.raises(OSError, match="transfer 3 failed"):
        _transfers().run(work, list(range(100)), 4)
    assert 3 in started and len(started) < 10


def test_no_items_need_no_loop_and_a_caller_inside_an_event_loop_is_served() -> None:
    assert _transfers().run(_Gauge().work, [], 8) == []

    async def caller() -> list[int]:
        return _transfers().run(_Gauge().work, [1, 2, 3], 2)

    assert asyncio.run(caller()) == [10, 20, 30]


def test_a_synchronous_token_credential_is_asked_off_the_event_loop() -> None:
    from azure.core.credentials import AccessToken

    from batchbox.backends.azure._blob_transfers import _AsyncTokenAdapter

    asked: list[tuple[tuple[str, ...], str]] = []

    class FixedToken:  # stands in for an azure-identity credential, which needs Azure AD
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            asked.append((scopes, threading.current_thread().name))
            return AccessToken("token-value", 4_102_444_800)

    async def fetch() -> tuple[AccessToken, str]:
        async with _AsyncTokenAdapter(FixedToken()) as adapter:
            return await adapter.get_token("https://storage.azure.com/.default"), threading.current_thread().name

    token, loop_thread = asyncio.run(fetch())
    assert token.token == "token-value"
    assert asked[0][0] == ("https://storage.azure.com/.default",) and asked[0][1] != loop_thread
