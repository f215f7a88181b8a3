"""``multirun_speedup``: three separate processes ÷ one three-job ``--multirun`` of the same jobs, wall time."""

from __future__ import annotations

from pathlib import Path
from statistics import median
from typing import Any

from degrade.benchmark.context import Context
from degrade.benchmark.jobs import job_meta, run_script
from degrade.benchmark.timing import result
from degrade.records.store import METADATA

METHODS = ("mult_gauss", "ablation", "uni_quant")


def separate_runs(ctx: Context, root: Path, label: str) -> list[dict[str, Any]]:
    """The three jobs as three fresh processes, one after another, each in its own dir.

    A job dir belongs to one configuration, so each method gets a dir of its own (a second
    method in the same dir would be refused).
    """
    runs = []
    for method in METHODS:
        job_dir = root / method
        ctx.progress.doing(f"{label}: separate {method}")
        seconds = run_script(ctx, [f"hydra.run.dir={job_dir}", f"degradation={method}", *ctx.sizes.multirun_overrides])
        ctx.progress.step(f"{label}: separate {method} {seconds:.1f} s")
        runs.append({"method": method, "seconds": round(seconds, 3), **job_meta(job_dir)})
    return runs


def one_multirun(ctx: Context, sweep_dir: Path, label: str) -> dict[str, Any]:
    """The same three jobs as one ``--multirun``: one process, one model load."""
    ctx.progress.doing(f"{label}: one --multirun")
    seconds = run_script(
        ctx,
        [
            "--multirun",
            f"degradation={','.join(METHODS)}",
            *ctx.sizes.multirun_overrides,
            f"hydra.sweep.dir={sweep_dir}",
        ],
    )
    ctx.progress.step(f"{label}: one --multirun {seconds:.1f} s")
    dirs = sorted(p.parent for p in sweep_dir.glob(f"*/{METADATA}"))
    if len(dirs) != len(METHODS):
        raise RuntimeError(f"--multirun in {sweep_dir} left {len(dirs)} job dirs, not {len(METHODS)}")
    jobs = sorted(({"dir": d.name, **job_meta(d)} for d in dirs), key=lambda j: j["start_time"])  # run order
    return {"seconds": round(seconds, 3), "jobs": jobs}


def measure(ctx: Context) -> dict[str, Any]:
    """Alternate the two sides (separate, multirun, separate, …), every round in fresh dirs; medians."""
    rounds = []
    for index in range(ctx.sizes.multirun_repeats):
        label = f"round {index + 1}/{ctx.sizes.multirun_repeats}"
        separate = separate_runs(ctx, ctx.tmp / f"separate-{index}", label)
        rounds.append(
            {
                "separate": separate,
                "separate_total_s": round(sum(s["seconds"] for s in separate), 3),
                "multirun": one_multirun(ctx, ctx.tmp / f"multirun-{index}", label),
            }
        )
    separate_s = median([r["separate_total_s"] for r in rounds])
    multi_s = median([r["multirun"]["seconds"] for r in rounds])
    return result(
        "multirun_speedup",
        separate_s / multi_s,
        {
            "overrides": list(ctx.sizes.multirun_overrides),
            "levels": "each preset's own (mult_gauss 4, ablation 4, uni_quant 5)",
            "repeats": ctx.sizes.multirun_repeats,
            "median_separate_total_s": round(separate_s, 3),
            "median_multirun_s": round(multi_s, 3),
            "rounds": rounds,
        },
    )
