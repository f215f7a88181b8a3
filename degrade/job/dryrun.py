"""``dry_run=true``: the plan, a time estimate from a short measured calibration, a memory estimate."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import psutil
import torch

from degrade.generation.memory import kv_cache_bytes
from degrade.job.prepare import Prepared, Prompt
from degrade.units import GiB, hms

log = logging.getLogger(__name__)

_CALIBRATION_TOKENS = 16


def estimate(prepared: Prepared, work: dict[Any, list[Prompt]], *, cells: int, max_batch_size: int) -> dict[str, Any]:
    """Measure one short batch and extrapolate; log the plan and return it.

    Args:
        prepared: the job's loaded model, its clean copy, decoding, token ids and generation.
        work: the prompts still to run, per cell.
        cells: the job's cells, run or not.
        max_batch_size: the largest batch generation may use.
    """
    loaded, engine, encoded, params = prepared.loaded, prepared.engine, prepared.encoded, prepared.params
    snapshot_bytes = prepared.snapshot.nbytes
    generations = sum(len(p) for p in work.values())
    batches = sum(-(-len(p) // max_batch_size) for p in work.values() if p)
    largest = max((min(len(p), max_batch_size) for p in work.values()), default=0)
    prompt_len = max(len(ids) for ids in encoded.values())
    max_new = params.max_new_tokens
    seconds_per_step = seconds_prefill = 0.0
    if largest:
        sample = next(p for p in work.values() if len(p) >= largest)[:largest]
        seconds_prefill, seconds_per_step = calibrate(prepared, sample)
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    kv = kv_cache_bytes(loaded.model.config, largest, prompt_len + max_new, loaded.dtype)
    available = (
        torch.cuda.mem_get_info(loaded.device)[1] if loaded.device.type == "cuda" else psutil.virtual_memory().total
    )
    plan = {
        "cells": cells,
        "cells_to_run": sum(1 for p in work.values() if p),
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
        hms(plan["estimated_seconds"]),
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
    if engine is not None:
        plan["engine_memory_share"] = engine.share
        log.info(
            "dry run: the vLLM engine reserves %.0f %% of %s memory (%.1f GiB; model.engine_memory sets it)",
            100 * engine.share,
            engine.device,
            engine.reserved_bytes / GiB,
        )
    return plan


# Calibrations already measured in this process, by (model, batch, prompt width, decoding): the jobs of a
# sweep share a loaded model, so a sweep's dry run measures each shape once.
_MEASURED: dict[tuple, tuple[float, float]] = {}


def calibrate(prepared: Prepared, sample: list[Prompt]) -> tuple[float, float]:
    """Seconds for the prompt pass and for one decoding step of ``sample`` as one batch.

    A first short call takes the one-off setup of a fresh process; two timed lengths then
    separate the prompt pass from the cost of each new token. Measured once per process
    for each generation, batch shape and decoding.
    """
    requests = prepared.requests(sample, 0, None)
    params = prepared.params
    key = (id(prepared.generator), len(requests), max(len(r.ids) for r in requests), params)
    if key in _MEASURED:
        return _MEASURED[key]

    def seconds(tokens: int) -> float:
        start = time.perf_counter()
        prepared.generator.generate(requests, dataclasses.replace(params, max_new_tokens=tokens), min_new_tokens=tokens)
        return time.perf_counter() - start

    seconds(1)
    short, long = seconds(2), seconds(2 + _CALIBRATION_TOKENS)
    step = max(long - short, 0.0) / _CALIBRATION_TOKENS
    _MEASURED[key] = (max(short - 2 * step, 0.0), step)
    return _MEASURED[key]
