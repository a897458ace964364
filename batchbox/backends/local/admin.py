"""The emulator's admin API from the client side: ``batchbox local preempt``.

The emulator serves it next to its node-agent API (``/_agent/v1/admin/...``, never on the Batch API), to loopback
callers that present the token of ``<state dir>/portal.token``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from batchbox.core.errors import BackendUnavailableError, BatchboxError
from batchbox.emulator.portal.token import read_token

__all__ = ["preempt_nodes"]


def preempt_nodes(batch_url: str, state_dir: Path, pool_id: str, node_ids: Sequence[str] = ()) -> list[str]:
    """Preempt spot/low-priority nodes of a pool (all of them when ``node_ids`` is empty).

    Args:
        batch_url: the emulator's endpoint (``http://127.0.0.1:8446``).
        state_dir: the emulator's state directory (its admin token lives there).
        pool_id: the pool.
        node_ids: the nodes to preempt.

    Returns:
        The ids of the preempted nodes.

    Raises:
        BackendUnavailableError: no admin token, or the emulator does not answer.
        BatchboxError: the emulator refused (unknown pool or node, a dedicated node ...).
    """
    token = read_token(state_dir)
    if token is None:
        raise BackendUnavailableError(
            "batchbox emulator", f"no admin token in {state_dir}: start it with `batchbox local up`"
        )
    url = f"{batch_url.rstrip('/')}/_agent/v1/admin/pools/{urllib.parse.quote(pool_id, safe='')}/preempt"
    request = urllib.request.Request(
        url,
        data=json.dumps({"nodeIds": list(node_ids)}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"BatchboxAdmin {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise BatchboxError(f"the emulator refused to preempt: {_error_message(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BackendUnavailableError("batchbox emulator", f"cannot reach it at {batch_url}: {exc}") from None
    return [str(node_id) for node_id in answer.get("preempted") or []]


def _error_message(exc: urllib.error.HTTPError) -> str:
    """``Code: message Reason`` of a Batch-style error body (the HTTP status when there is none)."""
    try:
        error = json.loads(exc.read() or b"{}")
        message = (error.get("message") or {}).get("value") or ""
        values = {v.get("key"): v.get("value") for v in error.get("values") or [] if isinstance(v, dict)}
        first = message.splitlines()[0] if message else ""
        return f"{error.get('code')}: {first} {values.get('Reason') or ''}".strip()
    except (ValueError, AttributeError):
        return f"HTTP {exc.code}"
