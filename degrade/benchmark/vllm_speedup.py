"""``vllm_speedup``: generation tokens/s of ``model.backend=vllm`` ÷ ``model.backend=transformers``, same sweep.

The sweep has the study's shape: three variants × two levels × the dream prompts, sampled with the
study's decoding (64 new tokens here). Each backend runs it as one ``--multirun`` process; each job's
``metadata.json`` gives its generation seconds and, on vLLM, its seconds handing weights to the engine
(``reload_s``); the records give the tokens. Runs only where vLLM is installed (its own environment).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pandas as pd

from degrade.benchmark.context import Context
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
    ctx.progress.step(f"{backend} {dtype}: {seconds:.1f} s, {tokens} tokens in {generate_s:.1f} s of generation")
    return {
        "seconds": round(seconds, 3),
        "tokens": tokens,
        "cells": cells,
        "generate_s": round(generate_s, 3),
        "tokens_per_s": round(tokens / generate_s, 1),
        "reload_s_per_cell": round(reload_s / cells, 3),
        "generate_s_per_cell": round(generate_s / cells, 3),
        "model_load_s": [job_meta(d)["model_load_s"] for d in dirs],
        "jobs": jobs,
    }


def measure(ctx: Context) -> dict[str, Any]:
    """Each dtype: the Transformers sweep, then the vLLM one; the headline is the first dtype's tokens/s ratio."""
    runs: dict[str, dict[str, Any]] = {}
    for dtype in ctx.sizes.vllm_dtypes:
        for backend in BACKENDS:
            runs[f"{backend}/{dtype}"] = sweep(ctx, backend, dtype, ctx.tmp / f"vllm-{backend}-{dtype}")
    ratios = {}
    for dtype in ctx.sizes.vllm_dtypes:
        engine, reference = runs[f"vllm/{dtype}"], runs[f"transformers/{dtype}"]
        ratios[dtype] = {
            "tokens_per_s": round(engine["tokens_per_s"] / reference["tokens_per_s"], 3),
            "wall": round(reference["seconds"] / engine["seconds"], 3),
            "reload_over_generate_per_cell": round(engine["reload_s_per_cell"] / engine["generate_s_per_cell"], 3),
        }
    headline = ratios[ctx.sizes.vllm_dtypes[0]]["tokens_per_s"]
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
