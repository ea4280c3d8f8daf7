"""Hold many slow or idle connections open against a server, as an attacker or a bad network would.

`python -m tools.slow_clients --port P --count 200 --modes head,body,idle --seconds 20`
keeps `count` connections open per mode for `seconds`, from one thread with
non-blocking sockets (so the holding costs this process almost nothing):

- `head`: a lookup request head that never ends (no blank line, no key);
- `body`: an unauthenticated webhook POST that declares 1,000 body bytes and sends 5;
- `idle`: connected, nothing sent.

A connection the server closes is opened again at once, so the count stays
held however the server defends itself. Prints one JSON line "ready" when all
are connected, and one with the counts when done. Run in its own process by
the tests and `make bench`, so its work never competes with the measuring
client for a GIL.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time

REQUESTS = {
    "head": (b"GET /api/contacts/by-phone?phone=%2B6281234567890&workspace_id=00000000-0000-4000-8000-000000000001"
             b" HTTP/1.1\r\nHost: kontak\r\nUser-Agent: slow\r\n"),
    "body": (b"POST /api/webhook/kapso HTTP/1.1\r\nHost: kontak\r\nContent-Type: application/json\r\n"
             b"Content-Length: 1000\r\n\r\n{\"a\":"),
    "idle": b"",
}


class Holder:
    def __init__(self, host: str, port: int, modes: list[str], count: int) -> None:
        self.address = (host, port)
        self.selector = selectors.DefaultSelector()
        self.opened = dict.fromkeys(modes, 0)
        self.closed_by_server = dict.fromkeys(modes, 0)
        self.connected = dict.fromkeys(modes, 0)
        self.refused = 0
        for mode in modes:
            for _ in range(count):
                self._open(mode)

    def _open(self, mode: str) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        result = sock.connect_ex(self.address)
        if result not in (0, errno.EINPROGRESS):
            self.refused += 1
            sock.close()
            return
        self.opened[mode] += 1
        self.selector.register(sock, selectors.EVENT_WRITE, (mode, "connecting"))

    def step(self, timeout: float) -> None:
        for key, events in self.selector.select(timeout):
            sock, (mode, state) = key.fileobj, key.data
            if state == "connecting":
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self._drop(sock, mode, connected=False)
                    continue
                if REQUESTS[mode]:
                    try:
                        sock.send(REQUESTS[mode])
                    except OSError:
                        self._drop(sock, mode, connected=False)
                        continue
                self.connected[mode] += 1
                self.selector.modify(sock, selectors.EVENT_READ, (mode, "held"))
            elif events & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # closed (or reset) by the server: open another
                    self._drop(sock, mode, connected=True)

    def _drop(self, sock: socket.socket, mode: str, connected: bool) -> None:
        self.selector.unregister(sock)
        sock.close()
        if connected:
            self.connected[mode] -= 1
        self.closed_by_server[mode] += 1
        self._open(mode)

    def all_connected(self, count: int) -> bool:
        return all(n >= count for n in self.connected.values())

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=200, help="connections held per mode")
    parser.add_argument("--modes", default="head,body,idle")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to hold them once all are connected")
    args = parser.parse_args(argv)
    holder = Holder(args.host, args.port, args.modes.split(","), args.count)
    deadline = time.monotonic() + 30
    while not holder.all_connected(args.count):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "could not connect them all", "connected": holder.connected}), flush=True)
            return 1
        holder.step(0.1)
    print(json.dumps({"ready": True, "connected": holder.connected}), flush=True)
    ends = time.monotonic() + args.seconds
    while (left := ends - time.monotonic()) > 0:
        holder.step(min(left, 0.1))
    holder.close()
    print(json.dumps({"done": True, "held_seconds": args.seconds, "opened": holder.opened,
                      "closed_by_server": holder.closed_by_server, "refused": holder.refused}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
