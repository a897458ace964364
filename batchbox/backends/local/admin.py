"""The emulator's node admin API from the client side: ``batchbox local preempt``.

The emulator serves it beside the Batch API (``/_admin/v1/pools/{id}/preempt``, never a Batch operation); requests
are signed with the account's SharedKey like Batch requests, here through the azure-batch SDK's ``send_request``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest

from batchbox.core.errors import BackendUnavailableError, BatchboxError
from batchbox.emulator.protocol.versions import LATEST_API_VERSION

__all__ = ["preempt_nodes"]


def preempt_nodes(
    batch_url: str, account_name: str, account_key: str, pool_id: str, node_ids: Sequence[str] = ()
) -> list[str]:
    """Preempt spot/low-priority nodes of a pool (all of them when ``node_ids`` is empty).

    Args:
        batch_url: the emulator's endpoint (``http://127.0.0.1:8446``).
        account_name / account_key: the account's SharedKey credential.
        pool_id: the pool.
        node_ids: the nodes to preempt.

    Returns:
        The ids of the preempted nodes.

    Raises:
        BackendUnavailableError: the emulator does not answer.
        BatchboxError: the emulator refused (unknown pool or node, a dedicated node ...).
    """
    path = f"/_admin/v1/pools/{urllib.parse.quote(pool_id, safe='')}/preempt"
    request = HttpRequest(
        "POST",
        f"{batch_url.rstrip('/')}{path}",
        params={"api-version": LATEST_API_VERSION},
        json={"nodeIds": list(node_ids)},
    )
    client = BatchClient(batch_url, AzureNamedKeyCredential(account_name, account_key))
    try:
        with client:
            response = client.send_request(request)
            body = response.read()
    except AzureError as exc:
        raise BackendUnavailableError("batchbox emulator", f"cannot reach it at {batch_url}: {exc}") from None
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        answer = {}
    if response.status_code != 200:
        raise BatchboxError(f"the emulator refused to preempt: {_error_message(answer, response.status_code)}")
    return [str(node_id) for node_id in answer.get("preempted") or []]


def _error_message(error: object, status: int) -> str:
    """``Code: message Reason`` of a Batch-style error body (the HTTP status when there is none)."""
    if not isinstance(error, dict) or "code" not in error:
        return f"HTTP {status}"
    message = error.get("message")
    text = str(message.get("value") or "") if isinstance(message, dict) else ""
    values = {v.get("key"): v.get("value") for v in error.get("values") or [] if isinstance(v, dict)}
    first = text.splitlines()[0] if text else ""
    return f"{error['code']}: {first} {values.get('Reason') or ''}".strip()
