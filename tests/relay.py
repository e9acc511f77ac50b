"""A TCP relay on 127.0.0.1 in front of PostgreSQL (or any server) that can be cut and restored.

Cutting it is what a network failure or a stopped server looks like from the client: every
open connection is shut down and new ones are refused. Restoring it listens again on the
same port, so a DSN pointing at the relay works again without changing.

    relay = Relay(("127.0.0.1", 5432))
    url = relay.url(database_url)   # the same database, through the relay
    relay.cut(); ...; relay.restore(); ...; relay.close()

``lose_answer_to(marker)`` cuts it the moment the server answers a request that carried
``marker``: the request reached the server (and, outside a transaction, committed) but its
answer never reaches the client -- the lost answer a network failure makes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class Relay:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._marker: bytes | None = None  # lose the answer to the next request carrying it
        self._asked: set[socket.socket] = set()  # upstreams that were sent such a request
        self.answer_lost = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._serve(self._listener)

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the relay's."""
        parts = urlsplit(database_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                try:
                    upstream = socket.create_connection(self._target)
                except OSError:
                    client.close()  # the server behind is down: so is the relay, for this client
                    continue
                with self._lock:
                    self._sockets += [client, upstream]
                threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()
                threading.Thread(target=self._answers, args=(upstream, client), daemon=True).start()

    def lose_answer_to(self, marker: bytes) -> None:
        """Cut every connection as the server answers the next request carrying ``marker``."""
        self.answer_lost.clear()
        with self._lock:
            self._marker = marker

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self._lock:
                    if self._marker is not None and self._marker in data:
                        self._marker = None
                        self._asked.add(upstream)
                upstream.sendall(data)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_RDWR)

    def _answers(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                with self._lock:
                    lost = upstream in self._asked
                    self._asked.discard(upstream)
                if lost:
                    self.cut()
                    self.answer_lost.set()
                    return
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        # shutdown first: a bare close() leaves the accept() blocked in another thread holding
        # the listening socket open, and the next connection would still get through
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        """Listen again, on the same port."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve(self._listener)

    def close(self) -> None:
        self.cut()
