"""``resume_skip_share``: re-running a finished default job ÷ running it, each a fresh process."""

from __future__ import annotations

from typing import Any

from degrade.benchmark.context import Context
from degrade.benchmark.jobs import job_meta, run_script
from degrade.benchmark.timing import result


def measure(ctx: Context) -> dict[str, Any]:
    """The job from scratch, then the same command on the same dir (every record already there)."""
    overrides = ctx.sizes.resume_overrides
    job_dir = ctx.tmp / "resume"
    args = [f"hydra.run.dir={job_dir}", *overrides]
    ctx.progress.doing("first run")
    first_s = run_script(ctx, args)
    first = job_meta(job_dir)  # read now: the rerun rewrites metadata.json
    ctx.progress.step(f"first run {first_s:.1f} s ({first['generated']} generations)")
    ctx.progress.doing("rerun")
    again_s = run_script(ctx, args)
    again = job_meta(job_dir)
    ctx.progress.step(f"rerun {again_s:.1f} s ({again['generated']} generations)")
    if again["generated"]:
        raise RuntimeError(f"the rerun in {job_dir} generated {again['generated']} records; it should skip them all")
    return result(
        "resume_skip_share",
        again_s / first_s,
        {
            "overrides": list(overrides) or ["(defaults)"],
            "first": {"seconds": round(first_s, 3), **first},
            "rerun": {"seconds": round(again_s, 3), **again},
            # starting Python, imports, composing the config: what the job's own total_s does not see
            "rerun_outside_job_s": round(again_s - again["timings"]["total_s"], 2),
            "repeats": 1,
        },
    )
