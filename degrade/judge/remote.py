"""The ``openai`` backend: any server speaking the OpenAI chat-completions protocol.

vLLM's server, Ollama, llama.cpp's server and the hosted API. Requests run ``concurrency`` at
a time; a 429, a 5xx, a timeout or a dropped connection is retried with a doubling wait (the
server's ``Retry-After`` when it sends one); any other refusal stops the command in one line.
The JSON answer is asked for with ``response_format`` (a JSON schema) unless the server refuses
it, after which the rubric's instructions alone ask for it. The API key is read from the
environment variable the config names and is never written anywhere.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from degrade.errors import ConfigError, DegradeError
from degrade.judge.backends import Completion

log = logging.getLogger(__name__)

MAX_WAIT_S = 60.0


class OpenAIBackend:
    def __init__(self, cfg: Any) -> None:
        try:
            import openai
        except ImportError:
            raise DegradeError("judge/backend=openai needs the openai client: pip install -e '.[judge]'") from None
        self.cfg, self.openai = cfg, openai
        # httpx logs every request at INFO: the judge's own progress lines say how the calls go
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self.batch_size = cfg.batch_size
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if cfg.api_key_env and not key:
            log.info("no key in $%s: the requests carry none (local servers need none)", cfg.api_key_env)
        self.client = openai.OpenAI(base_url=cfg.base_url, api_key=key or "none", timeout=cfg.timeout_s, max_retries=0)
        self.use_schema = cfg.json_mode != "prompt"
        self.lock = threading.Lock()

    def calls_in_parallel(self) -> int:
        return self.cfg.concurrency

    def complete(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(lambda messages: self.one(messages, schema), conversations))

    def one(self, messages: list[dict[str, str]], schema: dict[str, Any]) -> Completion:
        """One chat completion, retried on 429, 5xx and connection errors."""
        oa, retries, last = self.openai, 0, ""
        while True:
            try:
                response = self.client.chat.completions.create(
                    model=self.cfg.model,
                    messages=messages,
                    temperature=0,
                    max_tokens=self.cfg.max_tokens,
                    **self.response_format(schema),
                )
                usage = response.usage
                return Completion(
                    response.choices[0].message.content or "",
                    usage.prompt_tokens if usage else 0,
                    usage.completion_tokens if usage else 0,
                    transport_retries=retries,
                )
            except oa.BadRequestError as exc:
                if not (self.use_schema and self.cfg.json_mode == "auto"):
                    raise DegradeError(f"{self.cfg.base_url}: the server refused the request: {_said(exc)}") from None
                with self.lock:
                    if self.use_schema:
                        log.info("the server refused response_format (%s): JSON is asked for in the text", _said(exc))
                    self.use_schema = False
            except (oa.RateLimitError, oa.InternalServerError, oa.APIConnectionError) as exc:
                last = _said(exc)
                if retries >= self.cfg.retries:
                    return Completion(None, error=f"gave up after {retries} retries: {last}", transport_retries=retries)
                time.sleep(self.wait(exc, retries))
                retries += 1
            except oa.AuthenticationError:
                raise ConfigError(
                    "judge.backend.api_key_env", f"the server refused the key in ${self.cfg.api_key_env} (401)"
                ) from None
            except oa.APIStatusError as exc:
                raise DegradeError(f"{self.cfg.base_url}: {exc.status_code} {_said(exc)}") from None

    def response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if not self.use_schema:
            return {}
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "judgment", "schema": schema}}}

    def wait(self, exc: Any, retries: int) -> float:
        response = getattr(exc, "response", None)
        after = response.headers.get("retry-after") if response is not None else None
        try:
            return min(float(after), MAX_WAIT_S)
        except (TypeError, ValueError):
            return min(self.cfg.backoff_s * 2**retries, MAX_WAIT_S)


def _said(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return f"{status}: {text}" if status else f"{type(exc).__name__}: {text}"
