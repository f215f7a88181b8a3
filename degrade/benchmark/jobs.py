"""Running ``scripts/run.py`` as a user would, and reading what a job says about itself in ``metadata.json``."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from degrade.benchmark.context import Context
from degrade.benchmark.timing import timed
from degrade.paths import SCRIPTS_DIR
from degrade.records.store import METADATA

RUN = [sys.executable, str(SCRIPTS_DIR / "run.py")]
# What the benchmark keeps from a job's metadata: how it ended, its size, its model load and its step timings.
META_KEYS = ("status", "error", "start_time", "records", "generated", "model_load_s", "model_cache_hit", "timings")


def job_meta(job_dir: Path) -> dict[str, Any]:
    """The figures a finished job wrote to its ``metadata.json`` (missing ones as None).

    Raises:
        RuntimeError: the job did not end with status ``done``.
    """
    meta = json.loads((job_dir / METADATA).read_text(encoding="utf-8"))
    figures = {k: meta.get(k) for k in META_KEYS}
    if figures["status"] != "done":
        raise RuntimeError(f"job {job_dir} ended with status {figures['status']}: {figures['error']}")
    return figures


def run_script(ctx: Context, args: list[str]) -> float:
    """Run ``scripts/run.py args`` in a fresh process (from the scratch dir); its wall seconds.

    Raises:
        RuntimeError: the command exited non-zero (its last output is in the message).
    """
    cmd = [*RUN, *args]
    ctx.commands.append(shlex.join(cmd))
    seconds, proc = timed(
        lambda: subprocess.run(cmd, cwd=ctx.tmp, capture_output=True, text=True, timeout=1800, check=False)
    )
    if proc.returncode != 0:
        # the first line (what the table shows) names the command and the child's last word
        last = next((line for line in reversed((proc.stdout + proc.stderr).splitlines()) if line.strip()), "")
        raise RuntimeError(
            f"scripts/run.py {shlex.join(args)} exited {proc.returncode}: {last.strip()}\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return seconds
