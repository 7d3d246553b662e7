"""Network faults for tests: servers that misbehave the way an outage does."""

from __future__ import annotations

import contextlib
import socket
import threading


class BlackHole:
    """Accepts every connection, reads nothing, answers nothing; counts connections."""

    def __init__(self, drop_first: int = 0) -> None:
        self.drop_first = drop_first
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drop_first:
                conn.close()  # an answerless hang-up: unreachable at once
            else:
                self._held.append(conn)

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept() (close alone does not, on Linux), so
        # no connection is accepted after the held ones are closed
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        self.sock.close()
        for conn in self._held:
            conn.close()
