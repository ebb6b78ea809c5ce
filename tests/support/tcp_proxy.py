"""A TCP proxy on loopback that a test controls: forwards each client connection to a target port and can
fail every connection established so far in one of two ways, while new connections still pass:

- `cut()`: both sockets closed, as when a NAT or a load balancer drops them; `cut(refuse_for=…)` also
  turns new connections away for a while, as a server that restarts does;
- `blackhole()`: both sockets stay open but nothing is forwarded any more and no FIN reaches the client,
  as when a connection dies silently (a stalled stream, a path that drops packets).

TLS passes through untouched: a client verifies the target's certificate (give it the address it names).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass

from tests.support.redis_server import free_port


@dataclass(eq=False)
class Link:
    """One forwarded connection: the client's socket and ours to the target."""

    client: socket.socket
    upstream: socket.socket
    blackholed: bool = False


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.links: list[Link] = []
        self.cuts = 0
        self.blackholes = 0
        self.server: socket.socket | None = None
        self.stopping = threading.Event()
        self.refusing = threading.Event()

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, self.port))
        server.listen(64)
        server.settimeout(0.2)
        self.server = server
        threading.Thread(target=self.accept, name="tcp-proxy", daemon=True).start()
        return self

    def accept(self) -> None:
        assert self.server is not None
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target_port), timeout=2)
            except OSError:
                client.close()  # the target is down: refused, as the target itself would be
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            link = Link(client, upstream)
            with self.lock:
                self.links.append(link)
            for from_client in (True, False):
                threading.Thread(target=self.pump, args=(link, from_client), daemon=True).start()

    def pump(self, link: Link, from_client: bool) -> None:
        src, dst = (link.client, link.upstream) if from_client else (link.upstream, link.client)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not link.blackholed:
                    dst.sendall(data)
        except OSError:
            pass
        if link.blackholed and not from_client:
            _close(link.upstream)  # the target hung up: the client is told nothing
        else:
            self.drop(link)

    def drop(self, link: Link) -> None:
        _close(link.client)
        _close(link.upstream)
        with self.lock:
            if link in self.links:
                self.links.remove(link)

    def established(self) -> list[Link]:
        with self.lock:
            return list(self.links)

    def cut(self, refuse_for: float = 0.0) -> int:
        """Close every forwarded connection now, and close new ones at once for `refuse_for` seconds;
        returns how many were cut."""
        if refuse_for > 0:
            self.refusing.set()
            threading.Timer(refuse_for, self.refusing.clear).start()
        links = self.established()
        for link in links:
            self.drop(link)
        self.cuts += len(links)
        return len(links)

    def blackhole(self) -> int:
        """From now on forward nothing on every connection established so far and keep it open (no FIN, no
        RST: its client finds out only by a timeout of its own); returns how many. New ones still pass."""
        links = [link for link in self.established() if not link.blackholed]
        for link in links:
            link.blackholed = True
        self.blackholes += len(links)
        return len(links)

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.close()
        self.cut()
