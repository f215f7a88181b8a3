"""Sweeps: the study's five presets, one model load per multirun, the submitit launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

# The original study's five variants (docs/study.md): variant → (method, group, first level, last level, steps)
STUDY = {
    "gauss_attn": ("mult_gauss", "study_attn_only", 0.0, 1.4, 15),
    "gauss_mlp": ("mult_gauss", "mlp_only", 0.0, 0.5, 11),
    "gauss_embed": ("mult_gauss", "embed_only", 0.0, 1.0, 21),
    "ablation_attn": ("ablation", "study_attn_only", 0.0, 0.8, 17),
    "quant_attn": ("uni_quant", "study_attn_only", 1024.0, 4.0, 9),
}


@pytest.mark.parametrize("variant", sorted(STUDY))
def test_study_variant_is_a_one_word_preset(variant: str) -> None:
    method, group, first, last, steps = STUDY[variant]
    cfg = compose_cfg(f"variant={variant}")
    levels = cfg.degradation.levels
    assert (cfg.degradation.method, cfg.param_group.name, cfg.degradation.name) == (method, group, variant)
    assert (levels[0], levels[-1], len(levels)) == pytest.approx((first, last, steps))
    if method == "uni_quant":
        assert levels == [1024, 512, 256, 128, 64, 32, 16, 8, 4]
    else:
        assert levels == pytest.approx([first + i * (last - first) / (steps - 1) for i in range(steps)])


def _metadata(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/metadata.json")}


def _tiny_sweep(sweep: Path, *overrides: str):
    result = run_cli(
        "--multirun",
        *overrides,
        "model=tiny_random",
        "experiment.limit=2",
        "generation.max_new_tokens=4",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.slow
def test_sequential_multirun_loads_the_model_once(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    result = _tiny_sweep(sweep, "degradation=mult_gauss,ablation,uni_quant", "param_group=attn_only,mlp_only")
    meta = _metadata(sweep)
    assert len(meta) == 6
    assert sorted(m["model_cache_hit"] for m in meta.values()) == [False] + [True] * 5
    assert all(m["model_load_s"] == 0 for m in meta.values() if m["model_cache_hit"])
    assert result.stdout.count("loaded from random:llama") == 1
    # Each job left the shared model clean: the next jobs' snapshots of a group are the same clean weights.
    clean = {}
    for m in meta.values():
        clean.setdefault(m["param_group"]["name"], set()).add(m["model"]["group_fingerprint"])
    assert sorted(clean) == ["attn_only", "mlp_only"] and all(len(v) == 1 for v in clean.values())


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    _tiny_sweep(sweep, "hydra/launcher=submitit_local", "degradation=mult_gauss,ablation")
    jobs = sorted(p.parent.name for p in sweep.glob("*/records.parquet"))
    assert [j.split(",")[0] for j in jobs] == ["degradation=ablation", "degradation=mult_gauss"]
    for job, method in zip(jobs, ["ablation", "mult_gauss"]):
        levels = compose_cfg(f"degradation={method}").degradation.levels
        frame = pd.read_parquet(sweep / job / "records.parquet")
        assert len(frame) == 2 * len(levels)  # experiment.limit=2 prompts at every level
        assert sorted(frame.level_value.unique()) == sorted(levels)
        assert (frame.tokens_out <= 4).all()


def test_slurm_launcher_preset_asks_for_one_gpu_per_job() -> None:
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from degrade.config.compose import register_configs

    register_configs()  # the schemas the YAMLs extend, as the command registers them (alone, no other test did)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_gpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    # What docs/resume-and-clusters.md promises: one GPU, 8 CPUs, 64 GB and 12 h per job, at most 8 array tasks
    # at once, requeued.
    asked = ("gpus_per_node", "tasks_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism")
    assert [launcher[k] for k in asked] == [1, 1, 8, 64, 720, 8]
    assert launcher.max_num_timeout == 2


def test_slurm_cpu_preset_asks_for_no_gpu_and_collects_every_job() -> None:
    from conftest import CONF
    from hydra import compose, initialize_config_dir

    from degrade.config.compose import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_cpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    # degrade's launcher: a cancelled job is a failed job of the summary, not a traceback (tests/cli/test_slurm.py)
    assert launcher._target_ == "hydra_plugins.degrade_submitit.launchers.SlurmLauncher"
    asked = ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "max_num_timeout")
    assert [launcher[k] for k in asked] == [None, 2, 8, 720, 2]
