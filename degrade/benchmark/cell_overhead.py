"""``cell_overhead_share``: restore + damage + record writing ÷ the whole default job, from its own timings."""

from __future__ import annotations

from typing import Any

from degrade.benchmark.context import Context
from degrade.benchmark.jobs import job_meta
from degrade.benchmark.timing import result, timed
from degrade.config.compose import compose_config
from degrade.job.runner import run_job

# The job's own step timings (metadata.json) that are not generation: the cost of a cell around it.
OVERHEAD = ("restore_s", "damage_s", "record_s", "views_s")
STEPS = (*OVERHEAD, "generate_s")


def overhead_share(timings: dict[str, float]) -> float:
    """The share of a job's ``total_s`` spent restoring, damaging and writing records (steps it lacks count 0)."""
    return sum(timings.get(k, 0.0) for k in OVERHEAD) / timings["total_s"]


def measure(ctx: Context) -> dict[str, Any]:
    """Run the default job in this process, on the model already loaded, and read its metadata timings."""
    overrides = ctx.sizes.cell_overrides
    cfg = compose_config(*overrides)
    job_dir = ctx.tmp / "cells"
    ctx.progress.step(f"the job: {len(cfg.degradation.levels)} levels × {len(cfg.experiment.selected)} prompts")
    ctx.progress.doing("the job")
    wall, summary = timed(lambda: run_job(cfg, job_dir))
    meta = job_meta(job_dir)
    timings = meta["timings"]
    overhead = sum(timings.get(k, 0.0) for k in OVERHEAD)
    return result(
        "cell_overhead_share",
        overhead_share(timings),
        {
            "overrides": list(overrides) or ["(defaults)"],
            "cells": timings.get("cells", 0),
            "prompts_per_cell": len(cfg.experiment.selected),
            "max_new_tokens": cfg.generation.max_new_tokens,
            "levels": list(cfg.degradation.levels),
            "records": meta["records"],
            "model_cache_hit": meta["model_cache_hit"],
            "model_load_s": meta["model_load_s"],
            "timings": timings,
            "overhead_s": round(overhead, 4),
            # seeding, batching, logging, the metadata and param_group files, the job's start
            "other_s": round(timings["total_s"] - sum(timings.get(k, 0.0) for k in STEPS), 4),
            "job_wall_s": round(wall, 3),
            "job_summary_s": round(summary.seconds, 3),
        },
    )
