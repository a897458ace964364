"""The agent's HTTP client for the emulator's node-agent API: JSON POSTs over one keep-alive connection.

Each thread of the agent owns one :class:`AgentClient` (``http.client`` connections are not thread-safe), so a
request costs a round trip on an open socket instead of a new TCP connection. Stdlib only, Python >= 3.9.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import urllib.parse
from typing import Any, cast

from batchbox.node._agent_tls import client_context

__all__ = ["AgentClient", "Backoff", "NodeApi", "ServerUnreachable"]

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
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=client_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
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
        sock = cast(socket.socket, conn.sock)
        sock.settimeout(timeout if timeout is not None else self._timeout)
        if self._https:
            conn.request("POST", self._base_path + path, body=payload, headers=self._headers)
            response = conn.getresponse()
            status, data, close = response.status, response.read(), response.will_close
        else:
            # Plain HTTP on loopback: the request and its answer by hand. http.client's answer parsing (a file
            # object and the email package's header parser per answer) was the agent's largest CPU cost per task.
            sock.sendall(self._request_head(path, len(payload)) + payload)
            status, data, close = _read_answer(sock)
        if close:
            self.close()
        if not data:
            return status, None
        try:
            return status, json.loads(data.decode("utf-8"))
        except ValueError:
            return status, None

    def _request_head(self, path: str, length: int) -> bytes:
        lines = [f"POST {self._base_path}{path} HTTP/1.1", f"Host: {self._host}:{self._port}"]
        lines += [f"{name}: {value}" for name, value in self._headers.items()]
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class NodeApi:
    """The node's part of the agent API for calls made from task threads (container tasks, packages): one
    keep-alive :class:`AgentClient` per thread.

    Args:
        base_url: ``$BATCHBOX_AGENT_URL``.
        node_id: this node's id.
        secret: this node's secret.
    """

    def __init__(self, base_url: str, node_id: str, secret: str) -> None:
        self._args = (base_url, node_id, secret)
        self._node_id = node_id
        self._local = threading.local()

    def post(self, action: str, body: Any, timeout: float = 30.0) -> tuple[int, Any]:
        """POST ``body`` to ``<base>/nodes/<node id>/<action>``; ``(status, decoded JSON or None)``.

        Raises:
            ServerUnreachable: the emulator did not answer.
        """
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = AgentClient(*self._args)
        return client.post(f"/nodes/{self._node_id}/{action}", body, timeout=timeout)


def _receive(sock: socket.socket, data: bytes) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        if not data:
            raise http.client.RemoteDisconnected("the server closed the connection without answering")
        raise http.client.IncompleteRead(data)
    return data + chunk


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    """Read one HTTP/1.1 answer: ``(status, body, the connection must be closed)``.

    Raises:
        http.client.HTTPException: a malformed or cut answer (``RemoteDisconnected`` when nothing came back).
        OSError: the socket failed or timed out.
    """
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            break
        data = _receive(sock, data)
    status_line, *header_lines = data[:end].split(b"\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise http.client.BadStatusLine(status_line.decode("latin-1", "replace"))
    headers: dict[bytes, bytes] = {}
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    close = headers.get(b"connection") == b"close" or parts[0] == b"HTTP/1.0"
    body = data[end + 4 :]
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        return int(parts[1]), _read_chunked(sock, body), close
    if b"content-length" not in headers:
        while True:  # the body ends with the connection
            chunk = sock.recv(65536)
            if not chunk:
                return int(parts[1]), body, True
            body += chunk
    length = _number(headers[b"content-length"], 10)
    while len(body) < length:
        body = _receive(sock, body)
    return int(parts[1]), body[:length], close


def _number(text: bytes, base: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if value < 0:
        raise http.client.HTTPException(f"malformed length {text[:20]!r} in the answer")
    return value


def _read_chunked(sock: socket.socket, data: bytes) -> bytes:
    body = b""
    while True:
        while b"\r\n" not in data:
            data = _receive(sock, data)
        size_line, _, data = data.partition(b"\r\n")
        size = _number(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            while not data.startswith(b"\r\n"):  # trailer lines, then the empty line
                while b"\r\n" not in data:
                    data = _receive(sock, data)
                data = data.partition(b"\r\n")[2]
            return body
        while len(data) < size + 2:
            data = _receive(sock, data)
        body, data = body + data[:size], data[size + 2 :]
