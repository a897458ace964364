"""Reading VCR cassettes recorded against the real Azure Batch service.

A cassette's ``interactions`` hold one request (method, uri, headers, body) and the service's response (status,
headers, body) each. Only the Batch data plane (hosts ending in ``.batch.azure.com``) is kept; the Azure Resource
Manager calls that created the account around it are not something the emulator answers.

The recordings live outside the repository (``shared/reference/batch-recordings`` next to the checkout, see
``tests.fixtures.batch_recordings.recordings_dir``) and are never copied into it; tests skip when they are absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = ["DATA_PLANE_SUFFIX", "Cassette", "Exchange", "load_cassettes"]

DATA_PLANE_SUFFIX = ".batch.azure.com"


def _first(values: Any) -> str:
    if isinstance(values, list):
        return str(values[0]) if values else ""
    return "" if values is None else str(values)


@dataclass(frozen=True)
class Exchange:
    """One recorded data-plane request and the real service's answer.

    Attributes:
        cassette: the cassette's file stem (``test_batch_pool_cmd``).
        index: the interaction's position in its cassette (ARM calls included), stable across runs.
        method / path / query: the request line (``path`` percent-encoded as recorded, ``query`` without ``?``).
        headers: the request headers, lower-cased names, first value each.
        body: the request body as sent, or None.
        status: the recorded HTTP status.
        response_headers: lower-cased names, first value each.
        response_body: the recorded body text ('' when empty).
    """

    cassette: str
    index: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str | None
    status: int
    response_headers: dict[str, str]
    response_body: str

    @property
    def key(self) -> str:
        """``<cassette>:<interaction index>``: how the baseline names an exchange."""
        return f"{self.cassette}:{self.index}"

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def request_json(self) -> Any:
        """The request body parsed as JSON, or None when there is none (or it is not JSON)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def response_json(self) -> Any:
        """The recorded response body parsed as JSON, or None when it is not JSON."""
        return _parse_json(self.response_body, self.response_headers.get("content-type", ""))


def _parse_json(text: str, content_type: str) -> Any:
    if not text or "json" not in content_type:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class Cassette:
    """The data-plane exchanges of one cassette, in recorded order."""

    name: str
    exchanges: tuple[Exchange, ...]


def _exchange(name: str, index: int, interaction: dict[str, Any]) -> Exchange | None:
    request = interaction["request"]
    url = urlsplit(str(request["uri"]))
    if not (url.hostname or "").endswith(DATA_PLANE_SUFFIX):
        return None
    response = interaction["response"]
    body = request.get("body")
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    response_body = (response.get("body") or {}).get("string") or ""
    if isinstance(response_body, bytes):
        response_body = response_body.decode("utf-8", errors="replace")
    return Exchange(
        cassette=name,
        index=index,
        method=str(request["method"]).upper(),
        path=url.path,
        query=url.query,
        headers={str(k).lower(): _first(v) for k, v in (request.get("headers") or {}).items()},
        body=body if body else None,
        status=int(response["status"]["code"]),
        response_headers={str(k).lower(): _first(v) for k, v in (response.get("headers") or {}).items()},
        response_body=response_body,
    )


def load_cassettes(folder: Path) -> list[Cassette]:
    """Every cassette (``*.yaml``) of ``folder`` with at least one data-plane exchange, sorted by file name."""
    cassettes: list[Cassette] = []
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = path.name.removesuffix(".yaml")
        exchanges = [
            exchange
            for index, interaction in enumerate(document.get("interactions") or [])
            if (exchange := _exchange(name, index, interaction)) is not None
        ]
        if exchanges:
            cassettes.append(Cassette(name, tuple(exchanges)))
    return cassettes
