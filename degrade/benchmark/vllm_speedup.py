"""``vllm_speedup``: wall time of ``model.backend=transformers`` ÷ ``model.backend=vllm``, the same whole sweep.

The sweep has the study's shape: three variants × two levels × the dream prompts, sampled with the
study's decoding (64 new tokens here). Each backend runs it as one ``--multirun`` process; each job's
``metadata.json`` gives its generation seconds and, on vLLM, its seconds handing weights to the engine
(``reload_s``); the records give the tokens. Each sweep's wall time is broken into its parts (:func:`breakdown`).
On a CPU with native bf16 both dtypes are measured. Runs only where vLLM is installed (its own environment).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd

from degrade.benchmark.context import Context, cpu_flags
from degrade.benchmark.jobs import job_meta, run_script
from degrade.benchmark.timing import result
from degrade.records.store import METADATA

VARIANTS = ("gauss_attn", "gauss_mlp", "gauss_embed")
BACKENDS = ("transformers", "vllm")


def available() -> str | None:
    """None when the part can run here, else why not."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed here (bash scripts/install.sh --dev --vllm, in an environment of its own)"
    return None


def sweep(ctx: Context, backend: str, dtype: str, sweep_dir: Path) -> dict[str, Any]:
    """The study-shaped sweep on ``backend`` in ``dtype``: wall time, tokens, and its jobs' step timings."""
    ctx.progress.doing(f"{backend} {dtype}")
    seconds = run_script(
        ctx,
        [
            "--multirun",
            f"variant={','.join(VARIANTS)}",
            "generation=study",
            f"model.backend={backend}",
            f"model.dtype={dtype}",
            *ctx.sizes.vllm_overrides,
            f"hydra.sweep.dir={sweep_dir}",
        ],
    )
    dirs = sorted(p.parent for p in sweep_dir.glob(f"*/{METADATA}"))
    jobs = [job_meta(d)["timings"] for d in dirs]
    tokens = int(sum(pd.read_parquet(d / "records.parquet", columns=["tokens_out"]).tokens_out.sum() for d in dirs))
    cells = sum(j["cells"] for j in jobs)
    generate_s = sum(j["generate_s"] for j in jobs)
    reload_s = sum(j.get("reload_s", 0.0) for j in jobs)
    parts = breakdown(seconds, jobs)
    ctx.progress.step(f"{backend} {dtype}: {seconds:.1f} s, {tokens} tokens in {generate_s:.1f} s of generation")
    ctx.progress.step(f"{backend} {dtype}: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
    return {
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "cells": cells,
        "generate_s": round(generate_s, 3),
        "tokens_per_s": round(tokens / generate_s, 1),
        "reload_s_per_cell": round(reload_s / cells, 3),
        "generate_s_per_cell": round(generate_s / cells, 3),
        "model_load_s": [job_meta(d)["model_load_s"] for d in dirs],
        "breakdown_s": parts,
        "jobs": jobs,
    }


# Where a sweep's wall time goes, from its jobs' metadata timings: each part is the sum over the jobs.
PARTS = {
    "process_start": ("process_start_s",),  # the interpreter, the imports and Hydra, before the first job
    "model_load": ("load_s",),
    "engine_start": ("engine_start_s",),
    "hand_over": ("reload_s",),
    "restore_damage": ("restore_s", "damage_s"),
    "generation": ("generate_s",),
    "writing": ("record_s", "views_s"),
}


def breakdown(wall: float, jobs: list[dict[str, float]]) -> dict[str, float]:
    """``wall`` seconds split into :data:`PARTS` and the rest (between jobs, the launcher, the exit)."""
    parts = {name: sum(j.get(k, 0.0) for j in jobs for k in keys) for name, keys in PARTS.items()}
    parts["other"] = wall - sum(parts.values())
    return {k: round(v, 3) for k, v in parts.items()}


def measure(ctx: Context) -> dict[str, Any]:
    """Each dtype: the Transformers sweep, then the vLLM one; the headline is the first dtype's tokens/s ratio."""
    runs: dict[str, dict[str, Any]] = {}
    dtypes = ctx.sizes.vllm_dtypes
    if "avx512_bf16" in cpu_flags() and "bfloat16" not in dtypes:  # native bf16 here: measure it too
        dtypes = (*dtypes, "bfloat16")
    for dtype in dtypes:
        for backend in BACKENDS:
            runs[f"{backend}/{dtype}"] = sweep(ctx, backend, dtype, ctx.tmp / f"vllm-{backend}-{dtype}")
    ratios = {}
    for dtype in dtypes:
        engine, reference = runs[f"vllm/{dtype}"], runs[f"transformers/{dtype}"]
        ratios[dtype] = {
            "tokens_per_s": round(engine["tokens_per_s"] / reference["tokens_per_s"], 3),
            "wall": round(reference["seconds"] / engine["seconds"], 3),
            "reload_over_generate_per_cell": round(engine["reload_s_per_cell"] / engine["generate_s_per_cell"], 3),
        }
    headline = ratios[dtypes[0]]["wall"]
    return result(
        "vllm_speedup",
        headline,
        {
            "variants": list(VARIANTS),
            "overrides": ["generation=study", *ctx.sizes.vllm_overrides],
            "ratios_by_dtype": ratios,
            "runs": runs,
        },
    )
