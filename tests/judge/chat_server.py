"""A chat-completions server for the judge's tests: stdlib ``http.server`` in a thread, scripted answers.

Each request takes the next step of ``script`` (then ``default``): a string is the answer's
content, an integer an HTTP error status, ``"<drop>"`` closes the connection without a reply, and a
:class:`Reply` is sent as it is (any status, headers and body, even one that is not a chat completion;
``{auth}`` in its body echoes the request's Authorization header), optionally one byte at a time.
Every request's body and Authorization header are kept in ``requests``; while ``gate`` is set to an
unset event, every request waits for it (a minute at most) before its reply.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "<drop>"


@dataclass(frozen=True)
class Reply:
    """A reply sent byte for byte: ``per_byte_s`` > 0 trickles all of it, status line first, a byte at a time."""

    body: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    per_byte_s: float = 0.0


def completion(content: str) -> str:
    """A chat-completion body answering ``content``."""
    message = {"role": "assistant", "content": content}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    return json.dumps({"id": "chatcmpl-test", "object": "chat.completion", "choices": [choice], "usage": usage})


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, default: Callable[[dict[str, Any]], Any], delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[Any] = []
        self.default = default
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.refuse_response_format = False
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_step(self, body: dict[str, Any]) -> Any:
        with self.lock:
            return self.script.pop(0) if self.script else self.default(body)


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.requests.append({"body": body, "auth": self.headers.get("Authorization")})
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        try:
            if srv.gate is not None:
                srv.gate.wait(60)
            time.sleep(srv.delay)
            if srv.refuse_response_format and "response_format" in body:
                return self.reply(400, {"error": {"message": "response_format is not supported", "type": "invalid"}})
            step = srv.next_step(body)
            if step == DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if isinstance(step, Reply):
                return self.send_raw(step)
            if isinstance(step, int):
                return self.reply(step, {"error": {"message": f"scripted {step}", "type": "server_error"}})
            message = {"role": "assistant", "content": step}
            return self.reply(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                },
            )
        finally:
            with srv.lock:
                srv.in_flight -= 1

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_raw(self, step: Reply) -> None:
        body = step.body.replace("{auth}", self.headers.get("Authorization") or "").encode()
        head = f"HTTP/1.1 {step.status} Scripted\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in step.headers.items()) + "\r\n"
        data = head.encode() + body
        self.close_connection = True
        try:
            if not step.per_byte_s:
                self.wfile.write(data)
                return
            for i in range(len(data)):  # bounded by the reply's length
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(step.per_byte_s)
        except OSError:  # the client gave up and closed the connection
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def serve(default: Callable[[dict[str, Any]], Any], delay: float = 0.0) -> ChatServer:
    server = ChatServer(default, delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
