"""A TCP proxy on loopback that a test controls: forwards each client connection to a target port and can
cut every connection at once (both sockets closed, as when a NAT or a load balancer drops them)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.redis_server import free_port


class TcpProxy:
    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0
        self.server: socket.socket | None = None
        self.stopping = threading.Event()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
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
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()  # the target is down: refused, as Redis itself would be
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(src, dst), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self.close_pair(src, dst)

    def close_pair(self, a: socket.socket, b: socket.socket) -> None:
        for sock in (a, b):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        with self.lock:
            self.pairs = [p for p in self.pairs if a not in p and b not in p]

    def cut(self) -> int:
        """Close every forwarded connection now; returns how many were cut."""
        with self.lock:
            pairs = list(self.pairs)
        for a, b in pairs:
            self.close_pair(a, b)
        self.cuts += len(pairs)
        return len(pairs)

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.close()
        self.cut()
