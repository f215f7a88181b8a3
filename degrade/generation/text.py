"""Batched, left-padded generation with the model's own chat template."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from degrade.records.contract import GenParams

# What Transformers uses when neither the user nor the model's generation config sets a value.
_LIBRARY_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}
_SAMPLING_KNOBS = ("temperature", "top_k", "top_p")


@dataclass(frozen=True)
class Sample:
    """One generated answer."""

    text: str
    tokens_in: int
    tokens_out: int
    duration: float  # wall seconds of the batch that produced it
    finish_reason: str  # "stop": it ended with an end-of-turn token; "length": max_new_tokens was reached


def set_all_seeds(seed: int) -> None:
    """Seed Python, NumPy and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def effective_params(model: Any, gen: Any) -> GenParams:
    """The values generation will really use: ours, else the model's generation config, else the library's.

    Under greedy decoding the sampling knobs are None: they play no part, so no record lists them.
    """
    model_cfg = getattr(model, "generation_config", None)

    def value(key: str) -> Any:
        ours = getattr(gen, key)
        if ours is None and model_cfg is not None:
            ours = getattr(model_cfg, key, None)
        return _LIBRARY_DEFAULTS.get(key) if ours is None else ours

    sampling = {k: value(k) if gen.do_sample else None for k in _SAMPLING_KNOBS}
    return GenParams(
        do_sample=gen.do_sample,
        max_new_tokens=gen.max_new_tokens,
        repetition_penalty=value("repetition_penalty"),
        **sampling,
    )


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one user turn through the chat template, applied once.

    The template already writes the BOS it wants, so nothing is added on top of it;
    a tokenizer without a template encodes the raw text with its usual special tokens.
    """
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        return list(ids)
    return list(tokenizer(text).input_ids)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generation_config(model: Any, tokenizer: Any, params: GenParams, min_new_tokens: int = 0) -> Any:
    """The model's generation config with the effective ``params`` applied (sampling knobs only when sampling)."""
    config = copy.deepcopy(model.generation_config)
    sampling = {k: getattr(params, k) for k in _SAMPLING_KNOBS} if params.do_sample else {}
    config.update(
        do_sample=params.do_sample,
        max_new_tokens=params.max_new_tokens,
        repetition_penalty=params.repetition_penalty,
        pad_token_id=pad_id(tokenizer),
        **sampling,
    )
    if min_new_tokens:  # calibration runs force their length
        config.update(min_new_tokens=min_new_tokens)
    return config


def to_samples(
    model: Any, tokenizer: Any, out: torch.Tensor, width: int, tokens_in: Sequence[int], duration: float
) -> list[Sample]:
    """Decode the continuation of each row of ``out`` (prompts left-padded to ``width``), up to its first EOS."""
    eos = _eos_ids(model, tokenizer)
    samples = []
    for row, n_in in enumerate(tokens_in):
        new = out[row, width:].tolist()
        stop = next((i + 1 for i, t in enumerate(new) if t in eos), None)
        n_out = stop or len(new)
        text = tokenizer.decode(new[:n_out], skip_special_tokens=True)
        samples.append(Sample(text.strip(), int(n_in), n_out, duration, "stop" if stop else "length"))
    return samples


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


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    params: GenParams,
    device: torch.device,
    *,
    min_new_tokens: int = 0,
    progress: Progress | None = None,
) -> list[Sample]:
    """Generate one answer per prompt (already encoded) in a single left-padded batch."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id(tokenizer), dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    start = time.perf_counter()
    from transformers import StoppingCriteriaList

    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        generation_config=generation_config(model, tokenizer, params, min_new_tokens),
        stopping_criteria=StoppingCriteriaList([progress] if progress else []),
    )
    return to_samples(model, tokenizer, out, width, [len(p) for p in prompts], time.perf_counter() - start)
