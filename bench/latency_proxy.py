"""A loopback TCP proxy that adds a fixed round-trip time: what staging meets over a network, on one machine.

Every byte that crosses the proxy is held for half the round trip in its direction before it is passed on, in
order (a delay line: no bandwidth limit, no loss). A new connection also pays one round trip before its first
byte reaches the server, as a TCP handshake would. It listens on 127.0.0.1 only and forwards to a port on
127.0.0.1 only, so no traffic leaves the machine.

Run: ``python -m bench.latency_proxy --upstream-port PORT [--rtt-ms 20] [--port 0]``; it prints
``listening <port>`` on one line once it accepts connections, and runs until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["LatencyProxy", "main", "run_proxy"]

_CHUNK = 256 * 1024
_HOST = "127.0.0.1"


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, start_at: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived (and not before ``start_at``)."""
    held: collections.deque[tuple[float, bytes]] = collections.deque()
    arrived = asyncio.Event()
    finished = False

    async def receive() -> None:
        nonlocal finished
        try:
            while chunk := await reader.read(_CHUNK):
                held.append((time.monotonic() + delay, chunk))
                arrived.set()
        finally:
            finished = True
            arrived.set()

    receiver = asyncio.ensure_future(receive())
    try:
        while True:
            while not held:
                if finished:
                    return
                arrived.clear()
                await arrived.wait()
            due, chunk = held.popleft()
            wait = max(due, start_at) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
    finally:
        receiver.cancel()
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve(upstream_port: int, rtt: float, port: int) -> None:
    one_way = rtt / 2

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        handshake_done = time.monotonic() + rtt
        try:
            server_reader, server_writer = await asyncio.open_connection(_HOST, upstream_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pump(client_reader, server_writer, one_way, handshake_done),
                _pump(server_reader, client_writer, one_way, handshake_done),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                writer.close()

    server = await asyncio.start_server(handle, _HOST, port)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


class LatencyProxy:
    """A proxy process in front of ``upstream_port``; ``port`` is where clients connect."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def stop(self) -> None:
        """Terminate it by its PID and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.contextmanager
def run_proxy(upstream_port: int, rtt_ms: float) -> Iterator[LatencyProxy]:
    """Start a proxy process adding ``rtt_ms`` to every round trip towards ``upstream_port``; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_proxy", "--upstream-port", str(upstream_port), "--rtt-ms", str(rtt_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            raise RuntimeError(f"the latency proxy did not start (it said {line!r})")
        proxy = LatencyProxy(process, int(line[1]))
        yield proxy
    finally:
        LatencyProxy(process, 0).stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream-port", type=int, required=True, help="the port on 127.0.0.1 to forward to")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="round-trip time to add (default 20 ms)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.upstream_port, args.rtt_ms / 1000, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
