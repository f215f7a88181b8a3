"""Each prompt samples from its own random stream, so a batch's size or company never changes an answer.

A prompt's stream is seeded from (the record's seed, the prompt's id, and the level when
``degradation.common_noise`` is off), the rule the damage's draws follow (:mod:`degrade.methods.seeding`):
a resume, a smaller batch or an out-of-memory halving leaves every sampled record as it was.

On the transformers backend, :class:`PerPromptSampler` draws the token itself with the Gumbel-max
trick (argmax of the warped scores plus Gumbel noise is a draw from their softmax): Transformers
decodes greedily around it, applying its own processors first (repetition penalty, a minimum length),
then this sampler applies Transformers' own temperature, top-k and top-p warpers in the order
Transformers' sampling applies them, and adds each row's noise from that row's generator.
vLLM takes the same seed per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from degrade.records.contract import GenParams

SAMPLER = "per-prompt seeds"  # in a sampled job's settings: the records of the earlier batch-wide sampler differ
_SEED_MASK = (1 << 31) - 1  # a seed every engine takes


def prompt_seed(seed: int, prompt_id: str, level: float | None = None) -> int:
    """The sampling seed of one prompt in one cell: (the record's seed, the prompt's id[, the level])."""
    key = f"{seed}|{prompt_id}" + ("" if level is None else f"|{float(level)!r}")
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") & _SEED_MASK


class PerPromptSampler:
    """A logits processor that turns greedy decoding into sampling with one generator per row.

    Args:
        params: The effective decoding values (``do_sample`` true).
        seeds: One seed per row of the batch, from :func:`prompt_seed`.
        device: Where the scores are.
    """

    def __init__(self, params: GenParams, seeds: Sequence[int], device: torch.device) -> None:
        from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        self.warpers: list[Any] = []
        if params.temperature is not None and params.temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k:
            self.warpers.append(TopKLogitsWarper(top_k=params.top_k))
        if params.top_p is not None and params.top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=params.top_p))
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        scores = scores.float()
        if scores.isnan().any() or scores.isposinf().any() or (scores == float("-inf")).all(dim=1).any():
            # no distribution to sample from (a damaged model's logits): fail the cell, as multinomial sampling does
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        tiny = torch.finfo(torch.float32).tiny
        noise = torch.stack(
            [torch.rand(scores.shape[1], generator=g, device=scores.device).clamp_(min=tiny) for g in self.generators]
        )
        return scores - torch.log(-torch.log(noise))  # every row draws once per step, finished or not
