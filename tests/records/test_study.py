"""Reproducing the original study: its decoding and groups as presets, its result files read beside ours."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import ROOT, build_tiny, compose_cfg

from degrade.generation.text import effective_params
from degrade.job.runner import json_name, run_job
from degrade.model.groups import resolve_group
from degrade.records.collect import collect

# The study's own file: its fields and types (integer 1-based prompt_id, hub id, task key, prompt + answer in
# output, tokens counting both, its legacy flags). Our own words in the prompts.
PROMPTS = ["Tell me about a dream you had.", "Describe a nightmare.", "Tell me about a dream with water."]


def study_record(pid: int, level: float, rep: int, *, model: str = "google/gemma-3-4b-it") -> dict[str, Any]:
    text = PROMPTS[pid - 1]
    return {
        "timestamp": "2025-05-20 10:00:00",
        "model_name": model,
        "prompt_group": "dreams_it",
        "prompt_id": pid,
        "prompt_text": text,
        "output": f"user\n{text}\nmodel\nI was in a house by the sea. It was quiet, and the water was warm.",
        "std_dev": level,
        "repeat_index": rep,
        "temperature": 1,
        "do_sample": True,
        "param_group_name": "attn_only",
        "seed": 42 + rep,
        "duration": 12,
        "tokens": 41,
        "degradation_method": "mult_gauss",
        "usar_4bit": False,
        "force_run": False,
        "usar_data_parallel": False,
        "entorno": "colab",
    }


def write_study_file(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), *args], capture_output=True, text=True, timeout=600
    )


# --- the protocol as presets -------------------------------------------------------------------------


def test_study_decoding_is_pinned_whatever_the_model_says() -> None:
    cfg = compose_cfg("model=tiny_random", "generation=study")
    model = build_tiny("llama")
    model.generation_config.top_k, model.generation_config.top_p = 5, 0.5  # a model with its own ideas
    params = effective_params(model, cfg.generation).to_dict()
    assert params == {
        "do_sample": True,
        "max_new_tokens": 350,
        "temperature": 1.0,
        "top_k": 64,
        "top_p": 0.95,
        "repetition_penalty": 1.0,
    }
    assert cfg.generation.max_batch_size == 40


def test_the_readme_command_is_the_study_as_it_ran() -> None:
    cfg = compose_cfg(
        "model=gemma3_4b_it",
        "variant=gauss_attn",
        "param_group=study_attn_only",
        "generation=study",
        "experiment.n_rep=10",
    )
    assert cfg.model.source == "google/gemma-3-4b-it" and cfg.model.dtype == "float32"
    assert (cfg.degradation.method, len(cfg.degradation.levels), cfg.degradation.levels[-1]) == ("mult_gauss", 15, 1.4)
    assert cfg.degradation.common_noise is True
    assert [cfg.seed_base + r for r in range(cfg.experiment.n_rep)] == list(range(42, 52))
    assert (cfg.param_group.kinds, cfg.param_group.tower) == (["attn_v"], "all")


def test_study_groups_against_ours_on_a_model_with_a_vision_tower() -> None:
    model = build_tiny("gemma3_vlm")

    def names(group: str) -> list[str]:
        return resolve_group(model, compose_cfg("model=tiny_random_vlm", f"param_group={group}").param_group).names

    vision = [n for n in names("study_attn_only") if "vision" in n]
    assert vision and all(n.endswith("self_attn.v_proj.weight") for n in vision)  # the study's selection
    assert not any("vision" in n for n in names("attn_only"))  # ours: the language model only
    assert sorted(set(names("study_attn_only")) - set(vision)) == sorted(names("attn_only"))
    assert names("study_attn_o") and all(n.endswith("self_attn.o_proj.weight") for n in names("study_attn_o"))
    both = names("study_attn_mlp")
    assert sorted(both) == sorted(names("study_attn_only") + names("mlp_only"))  # no vision MLP
    assert not any("vision" in n and ".mlp." in n for n in both)


# --- the study's files beside ours -------------------------------------------------------------------


def test_a_study_file_reads_into_the_contract_and_is_left_as_it_was(tmp_path: Path) -> None:
    old = write_study_file(
        tmp_path / "old" / "outputs_mult_gauss_gemma-3-4b-it_2025_05_20_dreams.json",
        [study_record(p, lvl, 0) for lvl in (0, 0.5) for p in (1, 2)],
    )
    before = digest(old)
    frame = collect(old)
    assert digest(old) == before
    assert list(frame["prompt_id"]) == ["1", "2", "1", "2"]
    assert set(frame["experiment"]) == {"dreams"} and set(frame["model_variant"]) == {"it"}
    assert set(frame["prompt_group"]) == {"dreams_it"}  # the study's field keeps its value
    assert set(frame["model_name"]) == {"gemma-3-4b-it"}  # the conf/model preset whose source is the hub id
    assert list(frame["level_value"]) == [0.0, 0.0, 0.5, 0.5]
    assert set(frame["output"]) == {"I was in a house by the sea. It was quiet, and the water was warm."}
    assert (frame["output_raw"] == "user\n" + frame["prompt_text"] + "\nmodel\n" + frame["output"]).all()
    assert frame["tokens_out"].isna().all() and set(frame["tokens_out_raw"]) == {41} and set(frame["tokens"]) == {41}
    assert set(frame["n_words"]) == {16} and set(frame["n_sentences"]) == {2}
    assert frame["zipf_frequency"].notna().all() and not frame["loop_truncated"].any()


@pytest.mark.slow
def test_a_study_file_and_a_sweep_collect_into_one_table(tmp_path: Path) -> None:
    old = write_study_file(
        tmp_path / "old" / "outputs_mult_gauss_gemma-3-4b-it_dreams.json",
        [study_record(p, lvl, r) for lvl in (0, 0.5) for r in (0, 1) for p in (1, 2, 3)],
    )
    before = digest(old)
    cfg = compose_cfg("model=tiny_random", "experiment.limit=3", "degradation.levels=[0,0.5]")
    cfg.generation.max_new_tokens = 6
    run_job(cfg, tmp_path / "sweep" / "job")

    frame = collect([old, tmp_path / "sweep"])  # one table, both sources
    assert set(frame["job_dir"]) == {old.as_posix(), (tmp_path / "sweep" / "job").as_posix()}
    assert frame.groupby("model_name").size().to_dict() == {"gemma-3-4b-it": 12, cfg.model.name: 6}
    assert frame["prompt_id"].map(type).eq(str).all()
    assert digest(old) == before


@pytest.mark.slow
def test_report_cli_puts_a_study_file_and_a_sweep_in_one_table(tmp_path: Path) -> None:
    old = write_study_file(
        tmp_path / "old" / "outputs_mult_gauss_gemma-3-4b-it_dreams.json",
        [study_record(p, lvl, r) for lvl in (0, 0.5) for r in (0, 1) for p in (1, 2, 3)],
    )
    before = digest(old)
    cfg = compose_cfg("model=tiny_random", "experiment.limit=3", "degradation.levels=[0,0.5]")
    cfg.generation.max_new_tokens = 6
    run_job(cfg, tmp_path / "sweep" / "job")
    out = tmp_path / "report"
    result = report_cli(str(old), str(tmp_path / "sweep"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    combined = pd.read_parquet(out / "all_records.parquet")
    assert len(combined) == 18 and combined["output_raw"].notna().sum() == 12
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["model_name"]) == {"gemma-3-4b-it", cfg.model.name}
    assert digest(old) == before


@pytest.mark.slow
def test_report_on_a_study_file_alone_writes_beside_it(tmp_path: Path) -> None:
    old = write_study_file(tmp_path / "old" / "outputs_x.json", [study_record(p, 0, 0) for p in (1, 2, 3)])
    before = digest(old)
    result = report_cli(str(old))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the nlp extra adds them" not in result.stdout + result.stderr  # installed: the measures are there
    combined = pd.read_parquet(tmp_path / "old" / "report" / "all_records.parquet")
    assert list(combined["prompt_id"]) == ["1", "2", "3"] and digest(old) == before


@pytest.mark.slow
def test_resume_on_a_study_dir_skips_what_it_ran_with_prompts_from_its_module(tmp_path: Path) -> None:
    module = tmp_path / "prompts.py"
    module.write_text(f'"""The lists."""\ndream_prompts_it = {json.dumps(PROMPTS)}\n', encoding="utf-8")
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment=dreams",
        f"experiment.prompts_file={module}",
        "experiment.prompts_name=dream_prompts_it",
        "param_group=attn_only",
        "degradation.levels=[0]",
        "generation.max_new_tokens=4",
    )
    out = tmp_path / "run"
    old = write_study_file(out / json_name(cfg), [study_record(p, 0, 0, model=cfg.model.name) for p in (1, 2)])
    summary = run_job(cfg, out)
    assert (summary.generated, summary.skipped, summary.records) == (1, 2, 3)
    frame = pd.read_parquet(out / "records.parquet").sort_values("prompt_id")
    assert list(frame["prompt_id"]) == ["1", "2", "3"]
    assert list(frame["output_raw"].notna()) == [True, True, False]
    assert json.loads(old.read_text(encoding="utf-8"))[0]["prompt_id"] == "1"  # the view, rebuilt from the journal
