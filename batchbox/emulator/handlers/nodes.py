"""Compute node operations: list and get; reboot, reimage, deallocate, start; disable / enable scheduling; remote
login settings; upload of the service logs; extensions (none); node users."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from batchbox.emulator.errors import BatchError, not_found
from batchbox.emulator.handlers.common import entity_response, get_pool_or_404, get_runtime, get_store, list_page
from batchbox.emulator.protocol.middleware import read_json
from batchbox.emulator.protocol.responses import accepted, base_url, batch_json, created, list_response, ok_empty
from batchbox.emulator.resources.nodes import node_option, node_user, upload_logs_request

__all__ = ["routes"]

_NODE = "/pools/{pool_id}/nodes/{node_id}"


async def list_nodes(request: Request) -> Response:
    pool = get_pool_or_404(request, request.path_params["pool_id"])
    return list_page(request, "nodes", get_store(request).list_nodes(pool["id"]))


async def get_node(request: Request) -> Response:
    pool = get_pool_or_404(request, request.path_params["pool_id"])
    node_id = request.path_params["node_id"]
    for node in get_store(request).list_nodes(pool["id"]):
        if str(node.get("id", "")).lower() == node_id.lower():
            return entity_response(request, node, "nodes")
    raise not_found("node", node_id)


async def _optional_body(request: Request) -> Any:
    """The JSON body, or ``None`` when the request has none (the node options are optional)."""
    if not (await request.body()).strip():
        return None
    return await read_json(request)


def _ids(request: Request) -> tuple[str, str]:
    return request.path_params["pool_id"], request.path_params["node_id"]


def _accepted(doc: dict[str, Any]) -> Response:
    return accepted(data_service_id=str(doc.get("url") or ""))


async def reboot_node(request: Request) -> Response:
    option = node_option("reboot", await _optional_body(request))
    return _accepted(get_runtime(request).nodes.reboot(*_ids(request), option))


async def reimage_node(request: Request) -> Response:
    option = node_option("reimage", await _optional_body(request))
    return _accepted(get_runtime(request).nodes.reimage(*_ids(request), option))


async def deallocate_node(request: Request) -> Response:
    option = node_option("deallocate", await _optional_body(request))
    return _accepted(get_runtime(request).nodes.deallocate(*_ids(request), option))


async def start_node(request: Request) -> Response:
    return _accepted(get_runtime(request).nodes.start(*_ids(request)))


async def disable_scheduling(request: Request) -> Response:
    option = node_option("disablescheduling", await _optional_body(request))
    doc = get_runtime(request).nodes.disable_scheduling(*_ids(request), option)
    return ok_empty(data_service_id=str(doc.get("url") or ""))


async def enable_scheduling(request: Request) -> Response:
    doc = get_runtime(request).nodes.enable_scheduling(*_ids(request))
    return ok_empty(data_service_id=str(doc.get("url") or ""))


async def remote_login_settings(request: Request) -> Response:
    doc = get_runtime(request).nodes.remote_login(*_ids(request))
    return batch_json(doc)  # never reached: nodes have no remote access (the runtime raises)


async def upload_logs(request: Request) -> Response:
    upload = upload_logs_request(await read_json(request))
    result = await get_runtime(request).nodes.upload_logs(*_ids(request), upload)
    return batch_json(result)


async def list_extensions(request: Request) -> Response:
    get_runtime(request).nodes.node(*_ids(request))
    return list_response(base_url(request), "extensions", [], None)


async def get_extension(request: Request) -> Response:
    node = get_runtime(request).nodes.node(*_ids(request))
    name = request.path_params["extension_name"]
    raise BatchError(
        404,
        "ExtensionNotFound",
        "The specified extension does not exist.",
        {"NodeId": node.node_id, "ExtensionName": name},
    )


async def add_user(request: Request) -> Response:
    user = node_user(await read_json(request))
    await get_runtime(request).nodes.add_user(*_ids(request), user)
    return created(f"{request.url.scheme}://{request.url.netloc}{request.url.path}/{user.name}")


async def replace_user(request: Request) -> Response:
    user = node_user(await read_json(request), name=request.path_params["user_name"])
    await get_runtime(request).nodes.update_user(*_ids(request), user)
    return ok_empty()


async def delete_user(request: Request) -> Response:
    await get_runtime(request).nodes.delete_user(*_ids(request), request.path_params["user_name"])
    return ok_empty()


routes: list[Route] = [
    Route("/pools/{pool_id}/nodes", list_nodes, methods=["GET"]),
    Route(_NODE, get_node, methods=["GET"]),
    Route(f"{_NODE}/reboot", reboot_node, methods=["POST"]),
    Route(f"{_NODE}/reimage", reimage_node, methods=["POST"]),
    Route(f"{_NODE}/deallocate", deallocate_node, methods=["POST"]),
    Route(f"{_NODE}/start", start_node, methods=["POST"]),
    Route(f"{_NODE}/disablescheduling", disable_scheduling, methods=["POST"]),
    Route(f"{_NODE}/enablescheduling", enable_scheduling, methods=["POST"]),
    Route(f"{_NODE}/remoteloginsettings", remote_login_settings, methods=["GET"]),
    Route(f"{_NODE}/uploadbatchservicelogs", upload_logs, methods=["POST"]),
    Route(f"{_NODE}/extensions", list_extensions, methods=["GET"]),
    Route(f"{_NODE}/extensions/{{extension_name}}", get_extension, methods=["GET"]),
    Route(f"{_NODE}/users", add_user, methods=["POST"]),
    Route(f"{_NODE}/users/{{user_name}}", replace_user, methods=["PUT"]),
    Route(f"{_NODE}/users/{{user_name}}", delete_user, methods=["DELETE"]),
]
"""The compute node routes (paths relative to the account endpoint)."""
