"""Closing a connection that was answered before its request was read in full, without resetting it.

When the reward service answers early (503 at capacity, 411, 413, a malformed request line) the client may
still be sending. Closing a socket with unread input makes the kernel send a reset, and the client sees
``ConnectionResetError`` instead of the answer. So the socket goes to :class:`Linger`'s one thread, which reads
and discards what still arrives, for at most a few seconds and a few megabytes, and then closes it.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

# A connection answered early is drained of at most this much, for at most this long, before it is closed.
_LINGER_BYTES = 64 * 1024 * 1024


_LINGER_SECONDS = 5.0


_LINGER_MAX_SOCKETS = 4096


class Linger:
    """One thread that closes connections gracefully: no more writes, then read and discard until EOF or limits."""

    def __init__(self, seconds: float = _LINGER_SECONDS, max_bytes: int = _LINGER_BYTES,
                 max_sockets: int = _LINGER_MAX_SOCKETS):
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.max_sockets = max_sockets
        self._lock = threading.Lock()
        self._pending: list[socket.socket] = []
        self._held = 0
        self._closed = False
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name="rm-linger", daemon=True)
        self._thread.start()

    def add(self, sock: socket.socket) -> None:
        """Take over ``sock`` (the caller must not use or close it again)."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            full = self._closed or self._held >= self.max_sockets
            if not full:
                self._pending.append(sock)
                self._held += 1
        if full:  # a reset is the last resort, when even the janitor is saturated
            sock.close()
            return
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=10)
        self._wake_w.close()

    def _drop(self, sock: socket.socket) -> None:
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        with self._lock:
            self._held -= 1

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select(0.25):
                if key.data is None:
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                sock, state = key.fileobj, key.data
                try:
                    chunk = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                state[1] -= len(chunk)
                if not chunk or state[1] <= 0:
                    self._drop(sock)
            with self._lock:
                pending, self._pending = self._pending, []
                closed = self._closed
            deadline = time.monotonic() + self.seconds
            for sock in pending:
                try:
                    sock.setblocking(False)
                    self._selector.register(sock, selectors.EVENT_READ, [deadline, self.max_bytes])
                except (OSError, ValueError):
                    sock.close()
                    with self._lock:
                        self._held -= 1
            now = time.monotonic()
            for key in list(self._selector.get_map().values()):
                if key.data is not None and (closed or key.data[0] < now):
                    self._drop(key.fileobj)
            if closed:
                self._selector.close()
                self._wake_r.close()
                return
