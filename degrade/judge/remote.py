"""The ``openai`` backend: any server speaking the OpenAI chat-completions protocol.

vLLM's server, Ollama, llama.cpp's server and the hosted API. Requests run ``concurrency`` at
a time, each bounded as a whole by ``timeout_s`` (:mod:`degrade.judge.exchange`); a 429, a 5xx, a
timeout or a dropped connection is retried with a doubling wait (the server's ``Retry-After`` when
it sends a usable one); any other refusal stops the command in one line. A reply that is not a chat
completion (not JSON, no choices) is returned as such, its text kept, and becomes a failed judgment.
The JSON answer is asked for with ``response_format`` (a JSON schema) unless the server refuses it,
after which the rubric's instructions alone ask for it. The API key is read from the environment
variable the config names, sent to the server and nowhere else (:mod:`degrade.judge.redact`).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from degrade.errors import ConfigError, DegradeError
from degrade.judge.backends import Completion
from degrade.judge.config import BackendConfig
from degrade.judge.exchange import Exchange, Reply, Unreachable
from degrade.judge.redact import Redactor, api_key, public_url

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0


class NotACompletion(ValueError):
    """A 200 reply that is not a chat completion (the message says what is wrong with it)."""


class OpenAIBackend:
    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        self.redact = Redactor.of(cfg)
        self.where = public_url(cfg.base_url)
        # httpx logs every request at INFO, URL included: the judge's own progress lines say how the calls go
        logging.getLogger("httpx").setLevel(logging.WARNING)
        key = api_key(cfg)
        if cfg.api_key_env and not key:
            log.info("no key in $%s: the requests carry none (local servers need none)", cfg.api_key_env)
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.exchange = Exchange(cfg.timeout_s, headers)
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.use_schema = cfg.json_mode != "prompt"
        self.lock = threading.Lock()

    def calls_in_parallel(self) -> int:
        return self.cfg.concurrency

    def complete(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda messages: self.one(messages, schema), conversations))

    def one(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        """One chat completion, retried on 429, 5xx and connection errors (``retries`` times at most)."""
        retries = 0
        while True:
            reply, problem = None, ""
            try:
                reply = self.exchange.post(self.url, json.dumps(self.body(messages, schema)).encode())
            except Unreachable as exc:
                problem = self.redact(str(exc)) or ""
            if reply is not None and reply.status == 200:
                return self.completion(reply.text, retries)
            if reply is not None:
                if self.drop_schema(reply):
                    continue  # at most once: response_format is not sent again
                problem = self.refusal(reply)
            if retries >= self.cfg.retries:
                return Completion(None, error=f"gave up after {retries} retries: {problem}", transport_retries=retries)
            time.sleep(self.wait(reply, retries))
            retries += 1

    def body(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
        body = {"model": self.cfg.model, "messages": messages, "temperature": 0, "max_tokens": self.cfg.max_tokens}
        if self.use_schema:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "judgment", "schema": schema}}
        return body

    def completion(self, text: str, retries: int) -> Completion:
        """The answer in a 200 reply; a reply that holds none is returned with its text, to be kept."""
        try:
            content, prompt_tokens, completion_tokens = parse_completion(text)
        except NotACompletion as exc:
            error = f"the server's reply is not a chat completion: {exc}"
            return Completion(None, error=error, raw=text, transport_retries=retries)
        return Completion(content, prompt_tokens, completion_tokens, transport_retries=retries)

    def drop_schema(self, reply: Reply) -> bool:
        """After a 400 to a request with ``response_format`` (``json_mode=auto``): go on without it."""
        if reply.status != 400 or not (self.use_schema and self.cfg.json_mode == "auto"):
            return False
        with self.lock:
            if self.use_schema:
                log.info("the server refused response_format (%s): JSON is asked for in the text", self.said(reply))
            self.use_schema = False
        return True

    def refusal(self, reply: Reply) -> str:
        """What a reply other than 200 says, when it is worth retrying (429, 5xx).

        Raises:
            ConfigError: 401, the key was refused.
            DegradeError: any other status: the request will not do better when repeated.
        """
        if reply.status == 401:
            refused = f"the server refused the key in ${self.cfg.api_key_env} (401)"
            raise ConfigError("judge.backend.api_key_env", refused)
        if reply.status == 400:
            raise DegradeError(f"{self.where}: the server refused the request: {self.said(reply)}")
        if reply.status != 429 and reply.status < 500:
            raise DegradeError(f"{self.where}: {self.said(reply)}")
        return self.said(reply)

    def said(self, reply: Reply) -> str:
        """The status and the server's own message (its error's ``message`` when it sends JSON), redacted."""
        try:
            body = json.loads(reply.text)
            message = body["error"]["message"] if isinstance(body["error"], dict) else body["error"]
        except (ValueError, RecursionError, KeyError, TypeError):
            message = reply.text
        first = " ".join(str(message).split())[:160] or "no message"
        return self.redact(f"{reply.status}: {first}") or ""

    def wait(self, reply: Reply | None, retries: int) -> float:
        """The server's ``Retry-After`` when it is a number of seconds ≥ 0, else ``backoff_s`` doubled per retry."""
        try:
            after = float(reply.headers.get("retry-after", "")) if reply is not None else math.nan
        except ValueError:  # an HTTP date, or nonsense
            after = math.nan
        if math.isfinite(after) and after >= 0:
            return min(after, MAX_WAIT_S)
        return min(self.cfg.backoff_s * 2**retries, MAX_WAIT_S)


def parse_completion(text: str) -> tuple[str, int, int]:
    """The answer's text and the token counts in a chat-completion reply.

    Raises:
        NotACompletion: the reply is not JSON, or holds no choice with a message.
    """
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise NotACompletion("not JSON") from None
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise NotACompletion("no choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), (str, type(None))):
        raise NotACompletion("the first choice holds no message text")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    tokens = [usage.get(k) for k in ("prompt_tokens", "completion_tokens")]
    prompt, completion = (t if isinstance(t, int) and not isinstance(t, bool) else 0 for t in tokens)
    return message.get("content") or "", prompt, completion
