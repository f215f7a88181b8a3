"""Benchmark degrade on the embedded SmolLM2: five ratios against their targets, written as JSON.

    python scripts/bench.py --out bench.json            # the full run (~5½ min on 2 idle CPU cores)
    python scripts/bench.py --out bench.json --quick    # smaller sizes (~2 min); ratios not comparable

In-process parts (generation, restore, the cells of the default job) compose the config
with Hydra as the tests do; process-level parts (multirun, resume) run ``scripts/run.py``
as a user would, each a fresh process. Paired measurements are interleaved (A B A B …,
after a warm-up) and summarised by their medians, so drift on the machine hits both sides.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

import torch  # noqa: E402
import transformers  # noqa: E402

from degrade import damage, generation, loading, runner  # noqa: E402
from degrade.config import compose_config  # noqa: E402
from degrade.params import resolve_group  # noqa: E402
from degrade.restore import Snapshot  # noqa: E402
from degrade.store import METADATA, RecordStore  # noqa: E402

RUN = [sys.executable, str(ROOT / "scripts" / "run.py")]
METHODS = ("mult_gauss", "ablation", "uni_quant")


@dataclass(frozen=True)
class Sizes:
    """How much each measurement runs; ``--quick`` shrinks all of them."""

    gen_prompts: int
    gen_tokens: int
    gen_pairs: int
    restore_repeats: int
    cell_overrides: tuple[str, ...]
    multirun_overrides: tuple[str, ...]
    multirun_repeats: int
    resume_overrides: tuple[str, ...]


FULL = Sizes(
    gen_prompts=8,
    gen_tokens=32,
    gen_pairs=7,
    restore_repeats=15,
    cell_overrides=(),
    multirun_overrides=("experiment.limit=2", "generation.max_new_tokens=8"),
    multirun_repeats=2,
    resume_overrides=(),
)
QUICK = Sizes(
    gen_prompts=4,
    gen_tokens=16,
    gen_pairs=3,
    restore_repeats=7,
    cell_overrides=("experiment.limit=8", "generation.max_new_tokens=24", "degradation.levels=[0,0.1]"),
    multirun_overrides=("experiment.limit=2", "generation.max_new_tokens=8"),
    multirun_repeats=1,
    resume_overrides=("experiment.limit=8", "generation.max_new_tokens=24", "degradation.levels=[0,0.1]"),
)

TARGETS = {
    "generate_efficiency": (">=", 0.95),
    "restore_vs_copy": (">=", 0.8),
    "cell_overhead_share": ("<=", 0.05),
    "multirun_speedup": (">=", 1.5),
    "resume_skip_share": ("<=", 0.05),
}


def result(name: str, ratio: float, raw: dict[str, Any]) -> dict[str, Any]:
    op, value = TARGETS[name]
    met = ratio >= value if op == ">=" else ratio <= value
    return {"ratio": round(ratio, 4), "target": f"{op} {value}", "met": met, "raw": raw}


def _busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def foreign_cpu(raw: dict[str, Any]) -> Iterator[None]:
    """Record in ``raw`` how much CPU other processes took while the block ran (0 on a quiet machine)."""
    start, busy, own = time.perf_counter(), _busy_s(), _own_s()
    yield
    wall = time.perf_counter() - start
    foreign = max(0.0, (_busy_s() - busy) - (_own_s() - own))
    raw["foreign_cpu_s"] = round(foreign, 2)
    raw["foreign_cpu_share"] = round(foreign / (wall * (os.cpu_count() or 1)), 3)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# --- generate_efficiency ----------------------------------------------------------------------------------------


def hand_batch(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded input ids and attention mask, built independently of degrade.generation."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return ids, mask


def raw_config(model: Any, pad: int, tokens: int) -> Any:
    """Greedy, fixed length: the model's generation config with exactly what degrade sets for greedy."""
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0, pad_token_id=pad
    )
    return config


def bench_generate(loaded: loading.Loaded, sizes: Sizes) -> dict[str, Any]:
    """degrade.generation.generate vs raw model.generate on one batch, interleaved, medians."""
    cfg = compose_config(f"generation.max_new_tokens={sizes.gen_tokens}")
    model, tok, n = loaded.model, loaded.tokenizer, sizes.gen_tokens
    params = {**generation.effective_params(model, cfg.generation), "min_new_tokens": n}
    encoded = [generation.encode(tok, p.text) for p in cfg.experiment.selected[: sizes.gen_prompts]]
    pad = generation.pad_id(tok)
    ids, mask = hand_batch(encoded, pad)
    config = raw_config(model, pad, n)

    def ours() -> list[generation.Sample]:
        return generation.generate(model, tok, encoded, params, loaded.device)

    @torch.inference_mode()
    def raw() -> torch.Tensor:
        return model.generate(
            input_ids=ids.to(loaded.device), attention_mask=mask.to(loaded.device), generation_config=config
        )

    ours(), raw()  # warm-up
    t_ours, t_raw, same = [], [], True
    for _ in range(sizes.gen_pairs):
        seconds, samples = timed(ours)
        t_ours.append(seconds)
        seconds, out = timed(raw)
        t_raw.append(seconds)
        same &= [s.text for s in samples] == [
            tok.decode(row[ids.shape[1] :], skip_special_tokens=True).strip() for row in out.tolist()
        ]
    tokens_ours = sum(s.tokens_out for s in samples)
    tokens_raw = int(out[:, ids.shape[1] :].numel())
    ours_tps, raw_tps = tokens_ours / median(t_ours), tokens_raw / median(t_raw)
    return result(
        "generate_efficiency",
        ours_tps / raw_tps,
        {
            "prompts": len(encoded),
            "prompt_width": int(ids.shape[1]),
            "max_new_tokens": n,
            "tokens_degrade": tokens_ours,
            "tokens_raw": tokens_raw,
            "repeats": sizes.gen_pairs,
            "seconds_degrade": [round(t, 4) for t in t_ours],
            "seconds_raw": [round(t, 4) for t in t_raw],
            "median_s_degrade": round(median(t_ours), 4),
            "median_s_raw": round(median(t_raw), 4),
            "tokens_per_s_degrade": round(ours_tps, 2),
            "tokens_per_s_raw": round(raw_tps, 2),
            "same_text": same,
        },
    )


# --- restore_vs_copy --------------------------------------------------------------------------------------------


def bench_restore_group(loaded: loading.Loaded, group_name: str, repeats: int) -> dict[str, Any]:
    """Snapshot.restore() vs dst.copy_(src) of the same bytes as one contiguous tensor."""
    group = resolve_group(loaded.model, compose_config(f"param_group={group_name}").param_group)
    snapshot = Snapshot(loaded.model, group.names)
    # Where restore copies from (CPU, pinned under CUDA) to where the weights live, as one tensor.
    cuda = loaded.device.type == "cuda"
    src = torch.cat([s.reshape(-1) for s in snapshot.saved if isinstance(s, torch.Tensor)])
    src = src.pin_memory() if cuda else src
    dst = torch.empty(src.shape, dtype=src.dtype, device=loaded.device)

    def flat_copy() -> None:
        dst.copy_(src, non_blocking=cuda)
        if cuda:
            torch.cuda.synchronize()

    snapshot.restore(), flat_copy()  # warm-up: first touch of every page
    t_restore, t_copy = [], []
    for _ in range(repeats):
        t_restore.append(timed(snapshot.restore)[0])
        t_copy.append(timed(flat_copy)[0])
    nbytes = snapshot.nbytes
    return {
        "param_group": group_name,
        "tensors": len(group.names),
        "bytes": nbytes,
        "copy_bytes": src.numel() * src.element_size(),
        "repeats": repeats,
        "seconds_restore": [round(t, 5) for t in t_restore],
        "seconds_copy": [round(t, 5) for t in t_copy],
        "restore_bytes_per_s": round(nbytes / median(t_restore)),
        "copy_bytes_per_s": round(nbytes / median(t_copy)),
        "ratio": round(median(t_copy) / median(t_restore), 4),
    }


def bench_restore(loaded: loading.Loaded, sizes: Sizes) -> dict[str, Any]:
    groups = [bench_restore_group(loaded, g, sizes.restore_repeats) for g in ("mlp_only", "all")]
    return result("restore_vs_copy", groups[0]["ratio"], {"headline_group": "mlp_only (the default)", "groups": groups})


# --- cell_overhead_share ----------------------------------------------------------------------------------------


@dataclass
class Event:
    label: str
    start: float
    end: float


def _wrap(fn: Callable, label: str, events: list[Event]) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            events.append(Event(label, start, time.perf_counter()))

    return wrapper


@contextmanager
def instrumented(targets: list[tuple[Any, str, str]], events: list[Event]) -> Iterator[None]:
    """Time every call of ``owner.attr`` (labelled) while the block runs; put everything back after."""
    saved = [(owner, attr, vars(owner).get(attr)) for owner, attr, _ in targets]
    for owner, attr, label in targets:
        setattr(owner, attr, _wrap(getattr(owner, attr), label, events))
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


OVERHEAD = ("restore", "damage", "fingerprint", "build_records", "store_append", "write_views")


def cell_windows(events: list[Event], n_cells: int) -> list[dict[str, float]]:
    """Per cell: its wall time (restore start → views end) and the seconds of each timed step inside it."""
    restores = [e for e in events if e.label == "restore"][:n_cells]
    views = [e for e in events if e.label == "write_views"][:n_cells]
    cells = []
    for r, v in zip(restores, views):
        inside = [e for e in events if r.start <= e.start and e.end <= v.end]
        row = {"cell_s": v.end - r.start}
        for label in (*OVERHEAD, "generate", "model_generate"):
            row[label] = sum(e.end - e.start for e in inside if e.label == label)
        cells.append(row)
    return cells


def bench_cells(loaded: loading.Loaded, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    """Run the default job's real cells through the Job machinery, timing each step the runner takes."""
    cfg = compose_config(*sizes.cell_overrides)
    events: list[Event] = []
    targets = [
        (Snapshot, "restore", "restore"),
        (damage, "apply", "damage"),
        (runner, "fingerprint", "fingerprint"),
        (runner.Job, "record", "build_records"),
        (RecordStore, "append", "store_append"),
        (RecordStore, "write_views", "write_views"),
        (generation, "generate", "generate"),
        (loaded.model, "generate", "model_generate"),
    ]
    with instrumented(targets, events):
        seconds, summary = timed(lambda: runner.run_job(cfg, tmp / "cells"))
    cells = cell_windows(events, len(runner.cells(cfg)))
    totals = {k: sum(c[k] for c in cells) for k in cells[0]}
    overhead = sum(totals[k] for k in OVERHEAD)
    totals["other"] = totals["cell_s"] - overhead - totals["generate"]
    return result(
        "cell_overhead_share",
        overhead / totals["cell_s"],
        {
            "overrides": list(sizes.cell_overrides) or ["(defaults)"],
            "cells": len(cells),
            "prompts_per_cell": len(cfg.experiment.selected),
            "max_new_tokens": cfg.generation.max_new_tokens,
            "levels": list(cfg.degradation.levels),
            "records": summary.records,
            "job_seconds": round(seconds, 3),
            "overhead_s": round(overhead, 4),
            "totals_s": {k: round(v, 4) for k, v in totals.items()},
            "per_cell_s": [{k: round(v, 4) for k, v in c.items()} for c in cells],
        },
    )


# --- process-level: multirun_speedup, resume_skip_share --------------------------------------------------------


def run_process(args: list[str], commands: list[str]) -> dict[str, Any]:
    """Run ``scripts/run.py args`` in a fresh process from the repo root: wall time and the jobs' "done" lines."""
    cmd = [*RUN, *args]
    commands.append(shlex.join(cmd))
    seconds, proc = timed(lambda: subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900))
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    done = [line.split("] ", 1)[1] for line in proc.stdout.splitlines() if "] done:" in line]
    job_s = sum(float(m.group(1)) for d in done if (m := re.search(r" in ([\d.]+) s ", d)))
    return {"seconds": round(seconds, 3), "jobs_s": round(job_s, 1), "done": done}


def job_meta(job_dir: Path) -> dict[str, Any]:
    meta = json.loads((job_dir / METADATA).read_text())
    return {k: meta.get(k) for k in ("records", "generated", "model_load_s", "model_cache_hit")}


def separate_runs(common: list[str], tmp: Path, commands: list[str]) -> list[dict[str, Any]]:
    """The three jobs as three fresh processes, one after another."""
    runs = []
    for method in METHODS:
        job_dir = tmp / method
        runs.append(
            {
                "method": method,
                **run_process([f"hydra.run.dir={job_dir}", f"degradation={method}", *common], commands),
                **job_meta(job_dir),
            }
        )
    return runs


def one_multirun(common: list[str], sweep_dir: Path, commands: list[str]) -> dict[str, Any]:
    """The same three jobs as one --multirun: one process, one model load."""
    run = run_process(
        ["--multirun", f"degradation={','.join(METHODS)}", *common, f"hydra.sweep.dir={sweep_dir}"], commands
    )
    run["jobs"] = [{"dir": d.name, **job_meta(d)} for d in sorted(p.parent for p in sweep_dir.glob(f"*/{METADATA}"))]
    return run


def bench_multirun(sizes: Sizes, tmp: Path, commands: list[str]) -> dict[str, Any]:
    """Three fresh processes vs one three-job --multirun of the same jobs, alternated, medians."""
    common, rounds = list(sizes.multirun_overrides), []
    for index in range(sizes.multirun_repeats):
        separate = separate_runs(common, tmp / f"separate-{index}", commands)
        rounds.append(
            {
                "separate": separate,
                "separate_total_s": round(sum(s["seconds"] for s in separate), 3),
                "multirun": one_multirun(common, tmp / f"multirun-{index}", commands),
            }
        )
    separate_s = median([r["separate_total_s"] for r in rounds])
    multi_s = median([r["multirun"]["seconds"] for r in rounds])
    return result(
        "multirun_speedup",
        separate_s / multi_s,
        {
            "overrides": common,
            "levels": "each preset's own (mult_gauss 4, ablation 4, uni_quant 5)",
            "repeats": sizes.multirun_repeats,
            "median_separate_total_s": round(separate_s, 3),
            "median_multirun_s": round(multi_s, 3),
            "rounds": rounds,
        },
    )


def bench_resume(sizes: Sizes, tmp: Path, commands: list[str]) -> dict[str, Any]:
    """A job from scratch, then the same command on the same dir (everything already there)."""
    args = [f"hydra.run.dir={tmp / 'resume'}", *sizes.resume_overrides]
    first = run_process(args, commands)
    again = run_process(args, commands)
    return result(
        "resume_skip_share",
        again["seconds"] / first["seconds"],
        {
            "overrides": list(sizes.resume_overrides) or ["(defaults)"],
            "first": first,
            "rerun": again,
            "rerun_outside_job_s": round(again["seconds"] - again["jobs_s"], 2),
            "repeats": 1,
            "records": job_meta(tmp / "resume")["records"],
        },
    )


# --- the run ----------------------------------------------------------------------------------------------------

NOTES = [
    "Wall-clock timings (time.perf_counter) on whatever else the machine runs. raw.foreign_cpu_share is the CPU "
    "other processes took during that part, as a share of all cores (from /proc/stat less this process tree); "
    "load averages at start and end are in `machine`. Above ~0.1 the figures are not trustworthy: torch's two "
    "intra-op threads wait for a preempted partner at every parallel region, so many small operations (restore's "
    "one copy_ per parameter, decoding steps) slow down far more than one large one. The paired in-process ratios "
    "are interleaved A B A B after a warm-up and use medians; the process-level ones run once each.",
    "generate_efficiency: degrade's side is degrade.generation.generate as the runner calls it (batch tensors built, "
    "generation config deep-copied, model.generate, decode up to EOS); the raw side is model.generate alone on "
    "input_ids/attention_mask built once by hand, with a config made once. Both greedy with min_new_tokens = "
    "max_new_tokens, so both emit prompts × max_new_tokens tokens; same_text checks that the outputs agree.",
    "restore_vs_copy: Snapshot.restore() (one copy_ per parameter) vs one dst.copy_(src) of a contiguous tensor "
    "with the same bytes; the headline is param_group=mlp_only, param_group=all is reported beside it.",
    "cell_overhead_share: the real Job machinery on the default job (full run; in the same process, after the "
    "model is loaded) with Snapshot.restore, damage.apply, "
    "fingerprint, Job.record, RecordStore.append and RecordStore.write_views wrapped in timers; overhead = the sum "
    "of those inside each cell, the cell = restore start to the end of its write_views. The wrapped calls add a few "
    "microseconds each. 'other' is seeding, batching and logging; 'generate' includes decoding.",
    "multirun_speedup: each process pays interpreter start, imports, Hydra composition and the model load (from the "
    "converted safetensors cache, warm in the page cache after the in-process parts). The jobs use each preset's own "
    "levels, because a single sweep cannot give uni_quant (n ≥ 2) and the others (σ, p) different level lists. "
    "The saving is fixed per extra job (start, imports, model load), so the speedup falls toward 1 as the jobs' own "
    "work (damage, fingerprint, generation) grows. Full runs alternate the two sides twice and take medians.",
    "resume_skip_share: both runs are fresh processes with the same command and hydra.run.dir (the full run uses "
    "the default job, what `python scripts/run.py` runs). The rerun loads no model: it starts Python, imports "
    "torch and the library, composes the config, reads the journal and rebuilds the views; jobs_s is what the job "
    "itself logged, rerun_outside_job_s the rest (mostly imports). That cost is fixed, so the share falls as the "
    "job grows and misses the target for jobs shorter than ~20 × the rerun.",
    "--quick shrinks every size (fewer prompts and tokens), so its ratios, above all cell_overhead_share and "
    "resume_skip_share, are not comparable with a full run's.",
]


def machine(loaded: loading.Loaded) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(loaded.device),
        "device_name": torch.cuda.get_device_name(loaded.device)
        if loaded.device.type == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "load_average_start": os.getloadavg(),
    }


def run(sizes: Sizes, quick: bool) -> dict[str, Any]:
    start = time.perf_counter()
    cfg = compose_config()
    load_s, loaded = timed(lambda: loading.load(cfg.model, cfg.device))
    commands: list[str] = []
    out: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "machine": machine(loaded),
        "model": {"name": cfg.model.name, "source": loaded.source, "load_s": round(load_s, 3)},
    }
    parts: dict[str, Callable[[Path], dict[str, Any]]] = {
        "generate_efficiency": lambda tmp: bench_generate(loaded, sizes),
        "restore_vs_copy": lambda tmp: bench_restore(loaded, sizes),
        "cell_overhead_share": lambda tmp: bench_cells(loaded, sizes, tmp),
        "multirun_speedup": lambda tmp: bench_multirun(sizes, tmp, commands),
        "resume_skip_share": lambda tmp: bench_resume(sizes, tmp, commands),
    }
    with tempfile.TemporaryDirectory(prefix="degrade-bench-") as tmp:
        for name, part in parts.items():
            contention: dict[str, Any] = {}
            with foreign_cpu(contention):
                seconds, out[name] = timed(lambda part=part: part(Path(tmp)))
            out[name]["raw"].update(part_wall_s=round(seconds, 1), **contention)
    out["machine"]["load_average_end"] = os.getloadavg()
    out["commands"] = [shlex.join([sys.executable, *sys.argv]), *commands]
    out["notes"] = NOTES
    out["wall_s"] = round(time.perf_counter() - start, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~2 min); ratios not comparable")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = run(QUICK if args.quick else FULL, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for name in TARGETS:
        entry = report[name]
        print(
            f"{name:20s} {entry['ratio']:8.4f}  target {entry['target']:7s}  {'met' if entry['met'] else 'MISSED':6s}"
            f"  (other processes' CPU: {entry['raw']['foreign_cpu_share']:.0%})"
        )
    print(f"wall {report['wall_s']:.0f} s → {args.out}")


if __name__ == "__main__":
    main()
