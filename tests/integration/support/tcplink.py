"""A TCP link on loopback that a test can cut: the network between two hosts, for partitions.

The servers on both sides are real; only the path between them is this forwarder. `cut(source)`
drops the connections that come from one source address and refuses new ones from it, while
connections from other addresses go on: a partition that one client sees and the others do not
(Redis and Sentinel connect from another loopback address with `bind-source-addr`).
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable


class TcpLink:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<upstream_port>, byte for byte."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut: set[str | None] = set()
        self._open: list[tuple[str, socket.socket, socket.socket]] = []
        self._done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> TcpLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _is_cut(self, source: str) -> bool:
        return None in self._cut or source in self._cut

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                client, (source, _port) = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:  # closed
                return
            with self._lock:
                refused = self._is_cut(source)
            if refused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.append((source, client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=relay, args=(src, dst), daemon=True).start()

    def cut(self, source: str | None = None) -> None:
        """Drop every connection from `source` (None: from anywhere) and refuse new ones."""
        with self._lock:
            self._cut.add(source)
            dropped = [pair for pair in self._open if self._is_cut(pair[0])]
            self._open = [pair for pair in self._open if pair not in dropped]
        for _source, client, upstream in dropped:
            _close(client, upstream)

    def mend(self) -> None:
        """Let every source through again."""
        with self._lock:
            self._cut.clear()

    def close(self) -> None:
        self._done.set()
        self.listener.close()
        self.cut()


def relay(source: socket.socket, sink: socket.socket,
          on_data: Callable[[bytes], None] | None = None) -> None:
    """Passes what `source` sends on to `sink` until either side closes, then closes both.
    `on_data` sees each chunk before it goes on (and may hold it: a slow network)."""
    try:
        while data := source.recv(65536):
            if on_data is not None:
                on_data(data)
            sink.sendall(data)
    except OSError:
        pass
    _close(source, sink)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
