"""Network faults on real 127.0.0.1 sockets: an endpoint that goes away, and one that never answers.

`TcpProxy` forwards a port of its own to the local AWS endpoint; `stop()` closes its listener and
resets every open connection at once, which is what clients see when S3 goes down, including on
pooled keep-alive connections, and it can come back on the same port. `SilentServer` accepts connections and
never answers, so clients hit their read timeouts. Both are bounded: every wait has a timeout,
and `stop()` joins their threads.
"""

from __future__ import annotations

import socket
import struct
import threading

LOOPBACK = "127.0.0.1"


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(64)
    sock.settimeout(0.2)
    return sock


def _reset(conn: socket.socket) -> None:
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        conn.close()
    except OSError:
        pass


class _Acceptor:
    """Accepts on 127.0.0.1:`port` in a thread until stopped; `handle` gets each connection."""

    def __init__(self, port: int = 0):
        self.sock = _listener(port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.conns.append(conn)
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        """Hold the connection open and say nothing."""

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        for conn in list(self.conns):
            _reset(conn)
        for t in self._threads:
            t.join(timeout=5)


class SilentServer(_Acceptor):
    """Accepts and never answers."""


class TcpProxy(_Acceptor):
    """Forwards 127.0.0.1:`port` (a free one by default) to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int, port: int = 0):
        self.target_port = target_port
        super().__init__(port)

    def handle(self, conn: socket.socket) -> None:
        try:
            upstream = socket.create_connection((LOOPBACK, self.target_port), timeout=5)
        except OSError:
            _reset(conn)
            return
        self.conns.append(upstream)
        self._spawn(self._pump, conn, upstream)
        self._spawn(self._pump, upstream, conn)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.5)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        _reset(dst)
