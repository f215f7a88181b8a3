"""Batched, left-padded generation with the model's own chat template."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from degrade.generation.interface import Progress, Request, Sample
from degrade.generation.sampling import PerPromptSampler
from degrade.records.contract import GenParams

__all__ = ["Progress", "Request", "Sample", "TextGenerator", "effective_params", "encode", "generate"]

# What Transformers uses when neither the user nor the model's generation config sets a value.
_LIBRARY_DEFAULTS = {"temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}
_SAMPLING_KNOBS = ("temperature", "top_k", "top_p")


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
    """The model's generation config with the effective ``params`` applied.

    Transformers decodes greedily: under sampling, :class:`PerPromptSampler` (a logits processor, see
    :func:`sampler`) draws each token from its row's own generator, so the model's sampling knobs are cleared.
    """
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=False,
        max_new_tokens=params.max_new_tokens,
        repetition_penalty=params.repetition_penalty,
        pad_token_id=pad_id(tokenizer),
        **dict.fromkeys(_SAMPLING_KNOBS),
    )
    if min_new_tokens:  # calibration runs force their length
        config.update(min_new_tokens=min_new_tokens)
    return config


def sampler(params: GenParams, seeds: Sequence[int] | None, device: torch.device) -> list[Any]:
    """The logits processors that sample each row with its own seed (none under greedy decoding).

    Raises:
        ValueError: sampling without a seed per row.
    """
    if not params.do_sample:
        return []
    if seeds is None:
        raise ValueError("sampling needs one seed per prompt (degrade.generation.sampling.prompt_seed)")
    return [PerPromptSampler(params, seeds, device)]


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
        reason = "stop" if stop else "length"
        samples.append(Sample(text.strip(), int(n_in), n_out, duration, reason, tuple(new[:n_out])))
    return samples


@torch.inference_mode()
def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    params: GenParams,
    device: torch.device,
    *,
    seeds: Sequence[int] | None = None,
    min_new_tokens: int = 0,
    progress: Callable[..., Any] | None = None,
) -> list[Sample]:
    """Generate one answer per prompt (already encoded) in a single left-padded batch.

    Under sampling, row ``i`` samples from a generator seeded with ``seeds[i]``: its answer does not
    depend on the batch it is in.
    """
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id(tokenizer), dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention[row, width - len(ids) :] = 1
    start = time.perf_counter()
    from transformers import LogitsProcessorList, StoppingCriteriaList

    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        generation_config=generation_config(model, tokenizer, params, min_new_tokens),
        logits_processor=LogitsProcessorList(sampler(params, seeds, device)),
        stopping_criteria=StoppingCriteriaList([progress] if progress else []),
    )
    return to_samples(model, tokenizer, out, width, [len(p) for p in prompts], time.perf_counter() - start)


class TextGenerator:
    """The :class:`~degrade.generation.interface.Generator` of a Transformers model on text."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device

    def generate(
        self,
        requests: Sequence[Request],
        params: GenParams,
        *,
        min_new_tokens: int = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[Sample]:
        return generate(
            self.model,
            self.tokenizer,
            [r.ids for r in requests],
            params,
            self.device,
            seeds=[r.seed for r in requests],
            min_new_tokens=min_new_tokens,
            progress=progress,
        )
