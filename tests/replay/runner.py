"""Replays the exchanges of one cassette, in order, against a running emulator and compares every answer.

Requests are signed with the emulator's SharedKey exactly as the SDK signs (``tests.signing``), after the changes of
:mod:`tests.replay.translate`. Polling is replayed as polling: the last request of a run of identical GETs (a client
waiting for a state), and a lone GET whose recorded state is a settled one (``steady``, ``idle``, ``completed``,
``active``), are repeated until the emulator reports the recorded state, while its own state is still moving
(resizing, starting, running, tasks queued ...), within :data:`POLL_BOUND_SECONDS`. The earlier requests of a run
are sent once: their states are passing ones.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.replay.cassettes import Cassette, Exchange
from tests.replay.compare import Observation, differences, observe
from tests.replay.translate import (
    CONDITIONAL_DATE_HEADERS,
    Translation,
    retired_machine_standin,
    rewrite_command_lines,
)
from tests.signing import SignedClient

__all__ = ["POLL_BOUND_SECONDS", "Outcome", "replay_cassette"]

POLL_BOUND_SECONDS = 60.0
"""How long a polling request waits for the recorded state before the answer is compared as it is."""
_POLL_INTERVAL = 0.25
_SETTLED = frozenset({"steady", "idle", "completed", "active"})
_MOVING = frozenset(
    {"resizing", "stopping", "creating", "starting", "waitingforstarttask", "running", "preparing", "rebooting",
     "reimaging", "leavingpool", "deleting", "terminating", "disabling", "enabling"}
)  # fmt: skip
_FORWARDED_HEADERS = ("accept", "content-type", "ocp-range", "if-match", "if-none-match", *CONDITIONAL_DATE_HEADERS)
_POOL_PATH = re.compile(r"^/pools/([^/]+)")
_NODES_PATH = re.compile(r"^/pools/[^/]+/nodes(?:/[^/]+)?$")


@dataclass(frozen=True)
class Outcome:
    """A replayed exchange: both answers reduced, what differs, and notes on how it was replayed."""

    exchange: Exchange
    recorded: Observation
    replayed: Observation
    differences: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def matches(self) -> bool:
        return not self.differences


def _state_signature(document: Any) -> Any:
    """The states an answer reports (``state``, ``allocationState``, ``taskCounts``), list items sorted."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("value"), list):
        return tuple(sorted(repr(_state_signature(item)) for item in document["value"]))
    signature = [(name, document[name]) for name in ("state", "allocationState") if name in document]
    counts = document.get("taskCounts")
    if isinstance(counts, dict):
        signature.append(("taskCounts", tuple(sorted(counts.items()))))
    return tuple(signature)


def _states(document: Any) -> list[Any]:
    items = document["value"] if isinstance(document.get("value"), list) else [document]
    found = [item.get(name) for item in items if isinstance(item, dict) for name in ("state", "allocationState")]
    return [state for state in found if state is not None]


def _settled(document: Any) -> bool:
    """Every state the answer reports is a resting one."""
    if not isinstance(document, dict):
        return False
    states = _states(document)
    return bool(states) and all(state in _SETTLED for state in states)


def _moving(document: Any) -> bool:
    """The emulator is still on its way somewhere: a transitional state, or tasks waiting or running."""
    if not isinstance(document, dict):
        return False
    counts = document.get("taskCounts")
    if isinstance(counts, dict) and (counts.get("active") or counts.get("running")):
        return True
    return any(state in _MOVING for state in _states(document))


def _request_line(exchange: Exchange) -> tuple[str, str, str, str | None]:
    return exchange.method, exchange.path, exchange.query, exchange.headers.get("ocp-range")


def _same_request(a: Exchange, b: Exchange) -> bool:
    return _request_line(a) == _request_line(b)


def _request_body(exchange: Exchange) -> bytes | None:
    """The request body to send: a JSON body with its command lines translated, any other body as recorded."""
    if exchange.body is None:
        return None
    document = exchange.request_json()
    if document is None:
        return exchange.body.encode("utf-8")
    return json.dumps(rewrite_command_lines(document)).encode("utf-8")


def _json_body(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _anchors(exchanges: tuple[Exchange, ...]) -> set[int]:
    """Positions after which the replay waits for the next wall-clock second.

    A conditional date names the second of an earlier ``Last-Modified``. When the recording changed the resource in
    a later second, the replay must too, or a second-granular comparison would see no change.
    """
    anchors: set[int] = set()
    for position, exchange in enumerate(exchanges):
        for name in CONDITIONAL_DATE_HEADERS:
            value = exchange.headers.get(name)
            if not value:
                continue
            earlier = [i for i in range(position) if exchanges[i].response_headers.get("last-modified") == value]
            if earlier:
                anchors.add(earlier[-1])
    return anchors


class _Replayer:
    def __init__(self, client: SignedClient, cassette: Cassette, ignore_paths: Iterable[str]) -> None:
        self.client = client
        self.cassette = cassette
        self.ignore_paths = tuple(ignore_paths)
        self.translation = Translation()

    def send(self, exchange: Exchange) -> httpx.Response:
        """The recorded request, translated (path, conditional dates, command lines) and signed for the emulator."""
        headers = {name: exchange.headers[name] for name in _FORWARDED_HEADERS if exchange.headers.get(name)}
        return self.client.send(
            exchange.method,
            self.translation.path(exchange.path),
            query=exchange.query or None,
            raw=_request_body(exchange),
            headers=self.translation.headers(headers),
        )

    def poll(self, exchange: Exchange, bound: float) -> tuple[httpx.Response, float]:
        wanted = _state_signature(exchange.response_json())
        started = time.monotonic()
        while True:
            response = self.send(exchange)
            waited = time.monotonic() - started
            document = _json_body(response)
            if (
                response.status_code != exchange.status
                or _state_signature(document) == wanted
                or not _moving(document)
                or waited >= bound
            ):
                return response, waited
            time.sleep(_POLL_INTERVAL)

    def replay(self, position: int) -> Outcome:
        exchanges = self.cassette.exchanges
        exchange = exchanges[position]
        notes: list[str] = []
        repeated_next = position + 1 < len(exchanges) and _same_request(exchange, exchanges[position + 1])
        repeated_before = position > 0 and _same_request(exchange, exchanges[position - 1])
        recorded_doc = exchange.response_json()
        pollable = exchange.method == "GET" and exchange.status == 200 and not repeated_next
        if pollable and (repeated_before or _settled(recorded_doc)):
            response, waited = self.poll(exchange, POLL_BOUND_SECONDS)
            if waited >= POLL_BOUND_SECONDS:
                notes.append(f"recorded state not reached in {POLL_BOUND_SECONDS:.0f} s")
            elif waited >= 1:
                notes.append(f"polled {waited:.1f} s")
        else:
            response = self.send(exchange)
        replayed_doc = _json_body(response)
        self.after(exchange, response, replayed_doc, notes)
        return self.outcome(exchange, response, replayed_doc, notes)

    def after(self, exchange: Exchange, response: httpx.Response, document: Any, notes: list[str]) -> None:
        """Learn mappings from the answer; create the stand-in of a refused cloud service pool."""
        if _NODES_PATH.match(exchange.path) and response.status_code == 200:
            self.translation.learn_nodes(exchange.response_json(), document)
        self.translation.learn_date(
            exchange.response_headers.get("last-modified"), response.headers.get("last-modified")
        )
        standin = None
        if exchange.label == "POST /pools" and exchange.status == 201 and response.status_code >= 400:
            body = exchange.request_json()
            standin = retired_machine_standin(body)
        if standin is not None:
            answer = self.client.send(
                "POST", "/pools", query=exchange.query or None, body=rewrite_command_lines(standin)
            )
            if answer.status_code == 201:
                self.translation.standin_pools.add(str(standin.get("id", "")).lower())
                notes.append("stand-in pool created")
            else:
                notes.append(f"stand-in pool refused: {answer.status_code} {answer.text[:200]}")

    def outcome(self, exchange: Exchange, response: httpx.Response, document: Any, notes: list[str]) -> Outcome:
        standins = frozenset(self.translation.standin_pools)
        match = _POOL_PATH.match(exchange.path)
        entity_pool = match.group(1) if match else None
        recorded = observe(exchange.status, exchange.response_headers, exchange.response_json(),
                           standin_pools=standins, entity_pool=entity_pool)  # fmt: skip
        replayed = observe(response.status_code, {k.lower(): v for k, v in response.headers.items()}, document,
                           standin_pools=standins, entity_pool=entity_pool)  # fmt: skip
        found = differences(recorded, replayed, ignore_paths=self.ignore_paths)
        return Outcome(exchange, recorded, replayed, tuple(found), tuple(notes))


def _wait_for_next_second() -> None:
    now = time.time()
    time.sleep(math.floor(now) + 1.05 - now)


def replay_cassette(client: SignedClient, cassette: Cassette, *, ignore_paths: Iterable[str] = ()) -> list[Outcome]:
    """Replay every exchange of ``cassette`` in order through ``client`` (signed for a fresh emulator)."""
    replayer = _Replayer(client, cassette, ignore_paths)
    anchors = _anchors(cassette.exchanges)
    outcomes = []
    for position in range(len(cassette.exchanges)):
        outcomes.append(replayer.replay(position))
        if position in anchors:
            _wait_for_next_second()
    return outcomes
