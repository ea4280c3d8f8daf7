"""TCP proxies on loopback for the benchmarks.

`DelayProxy` (kept in tools/ because the tests also use it to make a backend
slow) delays every chunk by a fixed time each way: the latency figure puts it
between the app and PostgreSQL. `CountingProxy` adds no delay and counts the
TCP connections opened through it: the Convex connection figure puts it
between the app and the Convex stand-in.
"""

from __future__ import annotations

import asyncio

from tools.delay_proxy import DelayProxy

__all__ = ["CountingProxy", "DelayProxy"]


class CountingProxy(DelayProxy):
    """Forwards to `target_port` unchanged, counting each new TCP connection."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        super().__init__(target_port, 0.0, target_host)
        self.connections = 0

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1  # only the event loop thread writes it
        await super()._handle(client_reader, client_writer)
