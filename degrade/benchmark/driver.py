"""Run the benchmark's parts in order and gather one report: ratios, raw timings, machine, commands, notes."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

from degrade.benchmark import (
    bf16_drift,
    cell_overhead,
    generate_efficiency,
    multirun_speedup,
    restore_vs_copy,
    resume_skip,
    vllm_speedup,
)
from degrade.benchmark.context import Context, Sizes, cpu_flags
from degrade.benchmark.notes import NOTES
from degrade.benchmark.progress import Progress
from degrade.benchmark.timing import foreign_cpu, timed
from degrade.config.compose import compose_config
from degrade.model import loading

# In-process parts first (they share the model loaded here), then the ones that start processes.
PARTS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "generate_efficiency": generate_efficiency.measure,
    "restore_vs_copy": restore_vs_copy.measure,
    "cell_overhead_share": cell_overhead.measure,
    "bf16_speed": bf16_drift.measure,
    "multirun_speedup": multirun_speedup.measure,
    "resume_skip_share": resume_skip.measure,
    "vllm_speedup": vllm_speedup.measure,
}
# Parts that need something not every environment has: why they cannot run here, or None.
REQUIRES: dict[str, Callable[[], str | None]] = {"vllm_speedup": vllm_speedup.available}


def machine(loaded: loading.Loaded) -> dict[str, Any]:
    """What the figures were measured on."""
    on_cuda = loaded.device.type == "cuda"
    name = torch.cuda.get_device_name(loaded.device) if on_cuda else platform.processor() or platform.machine()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cpu_flags": cpu_flags(),
        "platform": platform.platform(),
        "device": str(loaded.device),
        "device_name": name,
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "load_average_start": os.getloadavg(),
    }


def run_part(name: str, measure: Callable[[Context], dict[str, Any]], ctx: Context) -> dict[str, Any]:
    """One part, with its wall time and the CPU other processes took meanwhile; a failure is kept, not raised."""
    contention: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        with ctx.progress.part(name), foreign_cpu(contention):
            entry = measure(ctx)
    except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others' figures
        entry = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0], "raw": {}}
        ctx.progress.line(f"{name}: {entry['error']}")
    else:
        verdict = "met" if entry["met"] else "MISSED"
        ctx.progress.line(f"{name} = {entry['ratio']:.4f} (target {entry['target']}, {verdict})")
    entry["raw"].update(part_wall_s=round(time.perf_counter() - start, 1), **contention)
    return entry


def run(sizes: Sizes, *, quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Load the embedded model once, run every part (or those named in ``only``), return the report."""
    start = time.perf_counter()
    with Progress() as progress:
        progress.line("loading the embedded model")
        cfg = compose_config()
        load_s, loaded = timed(lambda: loading.load(cfg.model, cfg.device))
        progress.line(f"model loaded in {load_s:.1f} s")
        report: dict[str, Any] = {
            "mode": "quick" if quick else "full",
            "machine": machine(loaded),
            "model": {"name": cfg.model.name, "source": loaded.source, "load_s": round(load_s, 3)},
        }
        with tempfile.TemporaryDirectory(prefix="degrade-bench-") as tmp:
            ctx = Context(sizes, loaded, Path(tmp), progress)
            for name, measure in PARTS.items():
                if only is not None and name not in only:
                    continue
                missing = REQUIRES.get(name, lambda: None)()
                if missing:
                    progress.line(f"{name}: skipped, {missing}")
                    continue
                report[name] = run_part(name, measure, ctx)
    report["machine"]["load_average_end"] = os.getloadavg()
    report["commands"] = [shlex.join([sys.executable, *sys.argv]), *ctx.commands]
    report["notes"] = NOTES
    report["wall_s"] = round(time.perf_counter() - start, 1)
    return report
