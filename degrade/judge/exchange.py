"""One HTTP exchange under one deadline: connecting, sending, the reply's headers and its body, all together.

httpx's timeouts bound each socket operation, so a server that sends a byte a second never trips a
read timeout and holds a request as long as it likes. Here a timer shuts the exchange's socket down
when its time is up, wherever the exchange is; it then fails as timed out. Connections are not kept
alive between requests, so each exchange has a socket of its own to shut (the socket is taken from
httpx's ``trace`` request extension when the connection opens).
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

from degrade.errors import DegradeError, one_line

_OPENED = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class Unreachable(Exception):
    """No complete reply: the connection failed or dropped, or the deadline passed (the message says which)."""


@dataclass(frozen=True)
class Reply:
    """A complete HTTP reply: its status, headers (names in lower case) and body as text."""

    status: int
    headers: dict[str, str]
    text: str


class Exchange:
    """POSTs to one server, each request bounded by ``seconds`` from its start to the last byte of its reply."""

    def __init__(self, seconds: float, headers: dict[str, str]) -> None:
        try:
            import httpx
        except ImportError:
            raise DegradeError("judge/backend=openai needs httpx: pip install -e '.[judge]'") from None
        self.httpx, self.seconds = httpx, seconds
        limits = httpx.Limits(max_keepalive_connections=0)  # a fresh socket per exchange: the one the timer shuts
        self.client = httpx.Client(timeout=seconds, limits=limits, headers=headers)

    def post(self, url: str, payload: bytes) -> Reply:
        """``payload`` POSTed to ``url``; the whole reply, whatever its status.

        Raises:
            Unreachable: no complete reply within ``seconds``, or none at all.
        """
        watch = _Watch()
        timer = threading.Timer(self.seconds, watch.expire)
        timer.daemon = True
        timer.start()
        try:
            response = self.client.post(url, content=payload, extensions={"trace": watch.trace})
        except self.httpx.HTTPError as exc:
            if watch.expired.is_set():
                raise Unreachable(f"no complete reply within {self.seconds:g} s (judge.backend.timeout_s)") from None
            raise Unreachable(one_line(exc)) from None
        finally:
            timer.cancel()
        return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.text)


class _Watch:
    """The sockets of one exchange, shut down for reading and writing once it has run out of time."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.expired = threading.Event()
        self.lock = threading.Lock()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event in _OPENED:
            sock = info["return_value"].get_extra_info("socket")
            with self.lock:
                self.sockets.append(sock)
                if self.expired.is_set():  # opened just as the time ran out
                    _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired.set()
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read at once, where close() would not
    except OSError:  # already closed: the exchange ended on its own
        pass
