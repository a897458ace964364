"""The fault admin API: ``/_admin/v1/faults``, beside the Batch API and never part of it.

Requests are signed with the account's SharedKey and carry ``api-version``, like Batch requests (the protocol
middleware checks both), so any SharedKey client can call it, e.g. the azure-batch SDK's ``send_request``:

- ``GET``: what is on: ``{"enabled": ..., "describe": "...", "faults": {...}}``;
- ``PUT`` with the keys of the ``[faults]`` table as JSON: replaces every fault (keys left out are off);
- ``DELETE``: turns every fault off.

Unknown keys and values out of range are ``400 InvalidRequestBody`` naming the key.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import BatchError, invalid_request_body
from batchbox.emulator.faults.config import FaultConfig, FaultConfigError
from batchbox.emulator.faults.live import Faults
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.responses import JSON_CONTENT_TYPE, json_bytes

__all__ = ["ADMIN_FAULTS_PATH", "routes"]

ADMIN_FAULTS_PATH = "/_admin/v1/faults"


def _faults(request: Request) -> Faults:
    faults = getattr(request.app.state, "faults", None)
    if not isinstance(faults, Faults):
        raise BatchError(404, "ResourceNotFound", "This emulator has no fault layer.")
    return faults


def _answer(faults: Faults) -> Response:
    config = faults.config
    document: dict[str, Any] = {"enabled": config.enabled, "describe": config.describe(), "faults": config.as_dict()}
    return Response(json_bytes(document), media_type=JSON_CONTENT_TYPE)


async def get_faults(request: Request) -> Response:
    return _answer(_faults(request))


async def put_faults(request: Request) -> Response:
    faults = _faults(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_request_body("The faults must be a JSON object of the [faults] settings.")
    try:
        config = FaultConfig.from_mapping(body)
    except FaultConfigError as exc:
        raise invalid_request_body(str(exc)) from None
    faults.replace(config)
    return _answer(faults)


async def delete_faults(request: Request) -> Response:
    faults = _faults(request)
    faults.replace(FaultConfig(seed=faults.config.seed))
    return _answer(faults)


routes: list[Route] = [
    Route(ADMIN_FAULTS_PATH, get_faults, methods=["GET"]),
    Route(ADMIN_FAULTS_PATH, put_faults, methods=["PUT"]),
    Route(ADMIN_FAULTS_PATH, delete_faults, methods=["DELETE"]),
]
