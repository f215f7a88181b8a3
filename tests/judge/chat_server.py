"""A chat-completions server for the judge's tests: stdlib ``http.server`` in a thread, scripted answers.

Each request takes the next step of ``script`` (then ``default``): a string is the answer's
content, an integer an HTTP error status, ``"<drop>"`` closes the connection without a reply.
Every request's body and Authorization header are kept in ``requests``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DROP = "<drop>"


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, default: Callable[[dict[str, Any]], Any], delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[Any] = []
        self.default = default
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.refuse_response_format = False
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
            time.sleep(srv.delay)
            if srv.refuse_response_format and "response_format" in body:
                return self.reply(400, {"error": {"message": "response_format is not supported", "type": "invalid"}})
            step = srv.next_step(body)
            if step == DROP:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
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

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def serve(default: Callable[[dict[str, Any]], Any], delay: float = 0.0) -> ChatServer:
    server = ChatServer(default, delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
