"""Batched, left-padded generation with the model's own chat template."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

GEN_KEYS = ("temperature", "do_sample", "max_new_tokens", "top_k", "top_p", "repetition_penalty")
# What Transformers uses when neither the user nor the model's generation config sets a value.
_LIBRARY_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}


@dataclass(frozen=True)
class Sample:
    """One generated answer."""

    text: str
    tokens_in: int
    tokens_out: int
    duration: float  # wall seconds of the batch that produced it


def set_all_seeds(seed: int) -> None:
    """Seed Python, NumPy and torch (every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def effective_params(model: Any, gen) -> dict[str, Any]:
    """The values generation will really use: ours, else the model's generation config, else the library's."""
    model_cfg = getattr(model, "generation_config", None)
    out: dict[str, Any] = {}
    for key in GEN_KEYS:
        value = getattr(gen, key)
        if value is None and model_cfg is not None:
            value = getattr(model_cfg, key, None)
        out[key] = _LIBRARY_DEFAULTS.get(key) if value is None else value
    return out


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


def batches(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive slices of at most ``size``: 100 items at 40 → 40, 40, 20."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


def pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generation_config(model: Any, tokenizer: Any, params: dict[str, Any]) -> Any:
    """The model's generation config with the effective ``params`` applied (sampling knobs only when sampling)."""
    config = copy.deepcopy(model.generation_config)
    sampling = {k: params[k] for k in ("temperature", "top_k", "top_p")} if params["do_sample"] else {}
    config.update(
        do_sample=params["do_sample"],
        max_new_tokens=params["max_new_tokens"],
        repetition_penalty=params["repetition_penalty"],
        pad_token_id=pad_id(tokenizer),
        **sampling,
    )
    if params.get("min_new_tokens"):  # calibration runs force their length
        config.update(min_new_tokens=params["min_new_tokens"])
    return config


def to_samples(
    model: Any, tokenizer: Any, out: torch.Tensor, width: int, tokens_in: Sequence[int], duration: float
) -> list[Sample]:
    """Decode the continuation of each row of ``out`` (prompts left-padded to ``width``), up to its first EOS."""
    eos = _eos_ids(model, tokenizer)
    samples = []
    for row, n_in in enumerate(tokens_in):
        new = out[row, width:].tolist()
        n_out = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
        text = tokenizer.decode(new[:n_out], skip_special_tokens=True)
        samples.append(Sample(text.strip(), int(n_in), n_out, duration))
    return samples


@torch.inference_mode()
def generate(
    model: Any, tokenizer: Any, prompts: Sequence[list[int]], params: dict[str, Any], device: torch.device
) -> list[Sample]:
    """Generate one answer per prompt (already encoded) in a single left-padded batch."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id(tokenizer), dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    start = time.perf_counter()
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        generation_config=generation_config(model, tokenizer, params),
    )
    return to_samples(model, tokenizer, out, width, [len(p) for p in prompts], time.perf_counter() - start)
