"""``dry_run=true``: the plan, a time estimate from a short measured calibration, a memory estimate."""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil
import torch

from degrade import generation

log = logging.getLogger(__name__)

_CALIBRATION_TOKENS = 16
GiB = 1024**3


def kv_cache_bytes(config: Any, batch: int, seq_len: int, dtype: torch.dtype) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``seq_len`` tokens."""
    text = getattr(config, "text_config", None) or config
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", 0)
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", 1)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", 0)
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    return 2 * layers * kv_heads * head_dim * seq_len * batch * torch.tensor([], dtype=dtype).element_size()


def estimate(
    job, loaded, snapshot_bytes: int, todo: dict, encoded: dict[str, list[int]], params: dict[str, Any]
) -> dict[str, Any]:
    """Measure one short batch and extrapolate; log the plan and return it."""
    cfg = job.cfg
    generations = sum(len(p) for p in todo.values())
    batches = sum(-(-len(p) // cfg.generation.max_batch_size) for p in todo.values() if p)
    largest = max((min(len(p), cfg.generation.max_batch_size) for p in todo.values()), default=0)
    prompt_len = max(len(ids) for ids in encoded.values())
    max_new = params["max_new_tokens"]
    seconds_per_step = seconds_prefill = 0.0
    if largest:
        seconds_prefill, seconds_per_step = _calibrate(loaded, [encoded[p.id] for p in job.prompts][:largest], params)
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    kv = kv_cache_bytes(loaded.model.config, largest, prompt_len + max_new, loaded.dtype)
    available = (
        torch.cuda.mem_get_info(loaded.device)[1] if loaded.device.type == "cuda" else psutil.virtual_memory().total
    )
    plan = {
        "cells": len(job.cells),
        "cells_to_run": sum(1 for p in todo.values() if p),
        "generations": generations,
        "batches": batches,
        "largest_batch": largest,
        "max_new_tokens_total": generations * max_new,
        "seconds_per_batch_step": round(seconds_per_step, 4),
        "seconds_per_prefill": round(seconds_prefill, 4),
        "estimated_seconds": round(batches * (seconds_prefill + max_new * seconds_per_step), 1),
        "memory_gib": {
            "weights": round(weights / GiB, 3),
            "snapshot": round(snapshot_bytes / GiB, 3),
            "kv_cache_at_largest_batch": round(kv / GiB, 3),
            "total": round((weights + snapshot_bytes + kv) / GiB, 3),
            "available": round(available / GiB, 1),
        },
    }
    mem = plan["memory_gib"]
    log.info(
        "dry run: %d cells (%d to run), %d generations in %d batches (largest %d), at most %d new tokens",
        plan["cells"],
        plan["cells_to_run"],
        generations,
        batches,
        largest,
        plan["max_new_tokens_total"],
    )
    log.info(
        "dry run: estimated time %s (calibration at batch %d: %.3f s per prompt pass, %.3f s per new token "
        "step; every answer taken to max_new_tokens)",
        _hms(plan["estimated_seconds"]),
        largest,
        seconds_prefill,
        seconds_per_step,
    )
    log.info(
        "dry run: memory %.2f GiB = weights %.2f + snapshot %.2f + KV cache %.2f (of %.1f GiB on %s)",
        mem["total"],
        mem["weights"],
        mem["snapshot"],
        mem["kv_cache_at_largest_batch"],
        mem["available"],
        loaded.device,
    )
    return plan


def _calibrate(loaded, sample: list[list[int]], params: dict[str, Any]) -> tuple[float, float]:
    """Seconds for the prompt pass and for one decoding step of ``sample`` as one batch.

    A first short call takes the one-off setup of a fresh process; two timed lengths then
    separate the prompt pass from the cost of each new token.
    """

    def seconds(tokens: int) -> float:
        start = time.perf_counter()
        generation.generate(
            loaded.model,
            loaded.tokenizer,
            sample,
            {**params, "max_new_tokens": tokens, "min_new_tokens": tokens},
            loaded.device,
        )
        return time.perf_counter() - start

    seconds(1)
    short, long = seconds(2), seconds(2 + _CALIBRATION_TOKENS)
    step = max(long - short, 0.0) / _CALIBRATION_TOKENS
    return max(short - 2 * step, 0.0), step


def _hms(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
