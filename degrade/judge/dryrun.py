"""A judge's dry run: the calls it would make, their estimated prompt and completion tokens, and the time.

Nothing is written and, for a remote server, nothing is sent. Tokens are estimated at four
characters a token (the chat template's few tokens aside); a completion is estimated as the
JSON object the rubric asks for. The time is measured for the local backend (one batch is
judged and thrown away, after the model loads) and assumed for a remote one, from
``judge.backend.tokens_per_s`` per request and ``concurrency`` requests at once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
_SAMPLE_VALUE = {"int": 3, "float": 3.5, "bool": False, "choice": "x"}


def answer_tokens(rubric: Any, max_tokens: int) -> int:
    """Tokens of the JSON answer the rubric asks for (an example answer's characters ÷ 4, at most ``max_tokens``)."""
    example = {f.name: _SAMPLE_VALUE[f.type] for f in rubric.fields}
    return min(max_tokens, math.ceil(len(json.dumps(example)) / CHARS_PER_TOKEN) + 2)


def estimate(todo: list[Any], jc: Any, conversation: Callable[[Any], list[dict[str, str]]]) -> dict[str, float]:
    """Log (and return) the dry run's figures for judging ``todo``."""
    prompt = sum(math.ceil(sum(len(m["content"]) for m in conversation(i)) / CHARS_PER_TOKEN) for i in todo)
    completion = answer_tokens(jc.rubric, jc.backend.max_tokens) * len(todo)
    seconds = _seconds(todo, jc, conversation, completion) if todo else 0.0
    log.info(
        "dry run: %d calls (at least; an unusable answer is asked again up to %d times), ~%d prompt tokens, "
        "~%d completion tokens, ~%dm%02ds (%s); nothing was written",
        len(todo), jc.invalid_retries, prompt, completion, seconds // 60, seconds % 60, _how(jc),
    )  # fmt: skip
    return {"calls": len(todo), "prompt_tokens": prompt, "completion_tokens": completion, "seconds": seconds}


def _how(jc: Any) -> str:
    if jc.backend.name == "local":
        return "measured on one batch"
    return f"assuming {jc.backend.tokens_per_s:g} tokens/s per request, {jc.backend.concurrency} at once"


def _seconds(todo: list[Any], jc: Any, conversation: Callable[[Any], Any], completion: int) -> float:
    backend = jc.backend
    if backend.name != "local":
        return completion / backend.tokens_per_s / backend.concurrency
    from degrade.judge.backends import make_backend
    from degrade.judge.rubric import json_schema

    judge = make_backend(backend)
    batch = todo[: judge.batch_size]
    start = time.perf_counter()
    judge.complete([conversation(i) for i in batch], json_schema(jc.rubric))
    return (time.perf_counter() - start) / len(batch) * len(todo)
