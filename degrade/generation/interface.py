"""What every backend's generation takes and returns: requests in, one sample per request out.

A job chooses its :class:`Generator` once (:func:`degrade.job.prepare.prepare`): the Transformers
model on text (:class:`degrade.generation.text.TextGenerator`), the same with an image
(:class:`degrade.generation.vision.ImageGenerator`), or a vLLM engine
(:class:`degrade.generation.vllm_engine.Engine`). The cells and the dry run's calibration call it the
same way, whichever it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from degrade.records.contract import GenParams


@dataclass(frozen=True)
class Request:
    """One prompt to answer.

    ``ids`` are its tokens through the chat template (the text backends read them), ``text`` the user's
    words (the image backend templates them with its processor), ``seed`` its own sampling seed
    (:func:`degrade.generation.sampling.prompt_seed`), so its answer does not depend on its batch.
    """

    id: str
    ids: list[int]
    text: str
    seed: int = 0


@dataclass(frozen=True)
class Sample:
    """One generated answer."""

    text: str
    tokens_in: int
    tokens_out: int
    duration: float  # wall seconds of the batch that produced it
    finish_reason: str  # "stop": it ended with an end-of-turn token; "length": max_new_tokens was reached
    ids: tuple[int, ...] = ()  # the answer's tokens, its end-of-turn token included (where the backend gives them)


class Progress:
    """Never stops generation; reports the decoding step every ``every`` seconds, so a long batch is not silent.

    A stopping criterion in Transformers' sense (called with the ids and scores after every step); it does
    not subclass theirs, so that importing this module does not import Transformers: a rerun with nothing
    left to generate never needs it.
    """

    def __init__(self, max_new_tokens: int, report: Callable[[int, int, float], None], every: float = 15.0) -> None:
        self.max_new_tokens, self.report, self.every = max_new_tokens, report, every
        self.start = self.last = time.perf_counter()
        self.step = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.step += 1
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.report(self.step, self.max_new_tokens, now - self.start)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class Generator(Protocol):
    """Answers a batch of requests with the model as its weights are now."""

    def generate(
        self,
        requests: Sequence[Request],
        params: GenParams,
        *,
        min_new_tokens: int = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[Sample]:
        """One sample per request, in order.

        Args:
            requests: the prompts of one batch.
            params: the effective decoding values (:func:`degrade.generation.text.effective_params`).
            min_new_tokens: a length every answer is forced to (the dry run's calibration).
            progress: called after every decoding step where the backend decodes step by step
                (a :class:`Progress`, possibly wrapped to stop at a safe point); ignored otherwise.
        """
        ...
