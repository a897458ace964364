"""The agent's HTTP client for the emulator's node-agent API: JSON POSTs over one keep-alive connection.

Each thread of the agent owns one :class:`AgentClient` (``http.client`` connections are not thread-safe), so a
request costs a round trip on an open socket instead of a new TCP connection. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import urllib.parse
from typing import Any, cast

__all__ = ["AgentClient", "Backoff", "ServerUnreachable"]

_STALE_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class ServerUnreachable(Exception):
    """The emulator did not answer (refused, reset, timed out, or an unreadable answer)."""


class Backoff:
    """Delays for retrying: ``initial`` seconds, doubled after each failure, at most ``maximum``.

    Args:
        initial: the first delay.
        maximum: the cap.
    """

    def __init__(self, initial: float = 0.1, maximum: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        """Return the delay to wait now and double the following one (up to the cap)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._next = self.initial


class AgentClient:
    """JSON-over-HTTP client for ``$BATCHBOX_AGENT_URL``, authenticated as one node.

    Args:
        base_url: e.g. ``http://127.0.0.1:8446/_agent/v1``.
        node_id: this node's id.
        secret: this node's secret (sent in the ``Authorization`` header, never logged).
        timeout: default socket timeout in seconds.
    """

    def __init__(self, base_url: str, node_id: str, secret: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("BATCHBOX_AGENT_URL must be an http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base_path = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {
            "Authorization": f"BatchboxNode {node_id}:{secret}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, path: str, body: Any, timeout: float | None = None) -> tuple[int, Any]:
        """POST ``body`` as JSON to ``<base>/<path>`` and return ``(status, decoded JSON or None)``.

        A kept-alive connection the server has closed meanwhile is replaced once, transparently.

        Args:
            path: the path below the base URL, starting with ``/`` (may carry a query string).
            body: a JSON-serialisable value.
            timeout: socket timeout for this request (e.g. a long poll's wait plus a margin).

        Returns:
            The HTTP status and the decoded JSON body (None when empty or not JSON).

        Raises:
            ServerUnreachable: no answer could be obtained.
        """
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        reused = self._conn is not None and not self._is_stale()
        if not reused:
            self.close()
        try:
            return self._send(path, payload, timeout)
        except _STALE_ERRORS as exc:
            self.close()
            if not reused:
                raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        # The server dropped an idle keep-alive connection before reading the request: send it once more.
        try:
            return self._send(path, payload, timeout)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _is_stale(self) -> bool:
        """True when the idle socket is readable: the peer closed it (or sent something unasked)."""
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _send(self, path: str, payload: bytes, timeout: float | None) -> tuple[int, Any]:
        conn = self._connection()
        if conn.sock is None:
            conn.connect()
            cast(socket.socket, conn.sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cast(socket.socket, conn.sock).settimeout(timeout if timeout is not None else self._timeout)
        conn.request("POST", self._base_path + path, body=payload, headers=self._headers)
        response = conn.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        if not data:
            return response.status, None
        try:
            return response.status, json.loads(data.decode("utf-8"))
        except ValueError:
            return response.status, None
