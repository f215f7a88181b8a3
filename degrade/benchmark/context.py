"""What every part of the benchmark receives: the sizes to run, the loaded model, a scratch dir."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from degrade.benchmark.progress import Progress
from degrade.model.loading import Loaded


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
    vllm_overrides: tuple[str, ...]
    vllm_dtypes: tuple[str, ...]


FULL = Sizes(
    gen_prompts=8,
    gen_tokens=32,
    gen_pairs=7,
    restore_repeats=15,
    cell_overrides=(),
    multirun_overrides=("experiment.limit=2", "generation.max_new_tokens=8"),
    multirun_repeats=2,
    resume_overrides=(),
    # the variants give a range of 15 levels: two levels keep the part to minutes on a CPU
    vllm_overrides=("generation.max_new_tokens=64", "degradation.range.max=1.0", "degradation.range.steps=2"),
    vllm_dtypes=("float32",),  # add "bfloat16" on a CPU with native bf16 (AVX-512 BF16) or a GPU
)
_SMALL_JOB = ("experiment.limit=8", "generation.max_new_tokens=24", "degradation.levels=[0,0.1]")
QUICK = Sizes(
    gen_prompts=4,
    gen_tokens=16,
    gen_pairs=3,
    restore_repeats=7,
    cell_overrides=_SMALL_JOB,
    multirun_overrides=("experiment.limit=2", "generation.max_new_tokens=8"),
    multirun_repeats=1,
    resume_overrides=_SMALL_JOB,
    vllm_overrides=(
        "experiment.limit=8",
        "generation.max_new_tokens=16",
        "degradation.range.max=0.5",
        "degradation.range.steps=2",
    ),
    vllm_dtypes=("float32",),
)


@dataclass
class Context:
    """The shared state of one benchmark run.

    Attributes:
        sizes: how much each part runs.
        loaded: the embedded model, loaded once in this process (the in-process parts reuse it).
        tmp: a scratch dir; each part writes only below it.
        progress: where parts report their steps.
        commands: every command line a part ran, in order, for the report.
    """

    sizes: Sizes
    loaded: Loaded
    tmp: Path
    progress: Progress
    commands: list[str] = field(default_factory=list)


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> list[str]:
    """The CPU features that decide how fast a model runs here (AVX-512, native bf16, AMX), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return [f for f in SPEED_FLAGS if f in flags]
