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
from conftest import ROOT, build_tiny, compose_cfg, run_cli

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


def release_record(pid: int, level: float, rep: int, *, task: str = "math_it", model: str = "google/gemma-3-4b-it"):
    """A record as the study's released code wrote it: level_value beside std_dev, the task in config_name
    (prompt_group is its first word), the decoding in gen_params only, load_4bit without usar_4bit."""
    text = PROMPTS[pid - 1]
    return {
        "timestamp": "2025-10-20T10:00:00.123456",
        "model_name": model,
        "config_name": f"{task}__quant_attn",
        "prompt_group": task.split("_")[0],
        "prompt_id": pid,
        "prompt_text": text,
        "output": f"user\n{text}\nmodel\nI was in a house by the sea. It was quiet, and the water was warm.",
        "std_dev": level,
        "level_value": level,
        "level_index": 0,
        "repeat_index": rep,
        "param_group_name": "attn_only",
        "degradation_method": "uni_quant",
        "seed": 42 + rep,
        "gen_params": {"temperature": 1.0, "do_sample": True, "max_new_tokens": 350},
        "duration": 0.5,
        "tokens": 41,
        "tokens_out": 41,
        "tokens_in": 9,
        "model_variant": "it",
        "device": "cuda:0",
        "dtype": "float32",
        "load_4bit": False,
        "restore_strategy": "subset_in_memory",
        "batch_size_effective": 25,
        "vram_usage_percent": 61.5,
        "image_used": False,
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
    cfg = compose_cfg("model=gemma3_4b_it", "variant=gauss_attn", "generation=study", "experiment.n_rep=10")
    assert cfg.model.source == "google/gemma-3-4b-it" and cfg.model.dtype == "float32"
    assert (cfg.degradation.method, len(cfg.degradation.levels), cfg.degradation.levels[-1]) == ("mult_gauss", 15, 1.4)
    assert cfg.degradation.common_noise is True
    assert [cfg.seed_base + r for r in range(cfg.experiment.n_rep)] == list(range(42, 52))
    assert (cfg.param_group.kinds, cfg.param_group.tower) == (["attn_v"], "all")  # the study's group, unasked


# variant → what its group damages on a model with a vision tower, as the study's script selected it
STUDY_GROUPS = {
    "gauss_attn": ("study_attn_only", "self_attn.v_proj.weight", True),
    "gauss_mlp": ("mlp_only", "mlp.", False),
    "gauss_embed": ("embed_only", "embed_tokens.weight", False),
    "ablation_attn": ("study_attn_only", "self_attn.v_proj.weight", True),
    "quant_attn": ("study_attn_only", "self_attn.v_proj.weight", True),
}


def test_the_five_variants_in_one_command_each_damage_their_own_group(tmp_path: Path) -> None:
    """One --multirun of the five: a param_group typed on it would give every job one group (the V projections
    for gauss_mlp too); each variant carries the study's own instead."""
    done = run_cli(
        "--multirun", f"variant={','.join(STUDY_GROUPS)}", "model=tiny_random_vlm", "generation=study",
        "experiment.n_rep=10", "dry_run=true", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = [line for line in done.stdout.splitlines() if " job: " in line or line.startswith("job: ")]
    assert len(jobs) == 5
    for variant, (group, _, _) in STUDY_GROUPS.items():
        assert sum(f"({variant}) on param_group {group}," in line for line in jobs) == 1, jobs
    model = build_tiny("gemma3_vlm")
    for variant, (group, suffix, vision) in STUDY_GROUPS.items():
        cfg = compose_cfg("model=tiny_random_vlm", f"variant={variant}", "generation=study")
        names = resolve_group(model, cfg.param_group).names
        assert cfg.param_group.name == group and names and all(suffix in n for n in names), (variant, names)
        assert any("vision" in n for n in names) is vision
    assert compose_cfg("variant=gauss_attn", "param_group=attn_only").param_group.tower == "language"  # ours


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


def test_the_released_codes_files_read_into_the_contract(tmp_path: Path) -> None:
    """Its files were taken for ours: the prompt stayed in output, the text measures were null."""
    old = write_study_file(
        tmp_path / "results" / "outputs_uni_quant_gemma-3-4b-it_math_it.json",
        [release_record(p, lvl, 0) for lvl in (1024, 4) for p in (1, 2)],
    )
    before = digest(old)
    frame = collect(old)
    assert digest(old) == before
    assert set(frame["experiment"]) == {"math"} and set(frame["prompt_group"]) == {"math"}
    assert list(frame["prompt_id"]) == ["1", "2", "1", "2"] and list(frame["level_value"]) == [1024, 1024, 4, 4]
    assert set(frame["output"]) == {"I was in a house by the sea. It was quiet, and the water was warm."}
    assert frame["output_raw"].str.startswith("user\n").all()
    assert frame["tokens_out"].isna().all() and set(frame["tokens_out_raw"]) == {41} and set(frame["tokens_in"]) == {9}
    assert frame["zipf_frequency"].notna().all() and frame["type_lemma_ratio"].notna().all()
    # One decoding, said the same way in every field: the top-level pair from gen_params, usar_4bit from load_4bit.
    assert set(frame["temperature"]) == {1.0} and frame["do_sample"].all()
    decoded = {(g["temperature"], g["do_sample"], g["max_new_tokens"]) for g in frame["gen_params"]}
    assert decoded == {(1.0, True, 350)}
    assert (frame["usar_4bit"] == frame["load_4bit"]).all() and not frame["usar_4bit"].any()
    assert set(frame["model_name"]) == {"gemma-3-4b-it"}


def test_a_dir_of_the_studys_files_reads_like_the_files(tmp_path: Path) -> None:
    """Its results/ dir: one file per task (math_it, lang_it, cookie_theft_it), no job dir; ids from 1 in each."""
    results = tmp_path / "results"
    for task in ("math_it", "lang_it", "cookie_theft_it"):
        write_study_file(
            results / f"outputs_uni_quant_gemma-3-4b-it_{task}.json",
            [release_record(p, 4, 0, task=task) for p in (1, 2)],
        )
    frame = collect(results)
    assert frame.groupby("experiment")["prompt_id"].apply(list).to_dict() == {
        "cookie_theft": ["1", "2"],  # its prompt_group says only "cookie"
        "lang": ["1", "2"],
        "math": ["1", "2"],
    }
    assert set(frame["job_dir"]) == {
        f"outputs_uni_quant_gemma-3-4b-it_{t}.json" for t in ("cookie_theft_it", "lang_it", "math_it")
    }


def test_a_local_path_model_name_joins_ours_by_an_option(tmp_path: Path) -> None:
    local = "/content/drive/MyDrive/models/gemma-3-4b-it"
    old = write_study_file(tmp_path / "outputs_x_dreams_it.json", [release_record(1, 4, 0, model=local)])
    assert set(collect(old)["model_name"]) == {local}
    assert set(collect(old, legacy_models={"": "gemma-3-4b-it"})["model_name"]) == {"gemma-3-4b-it"}
    assert set(collect(old, legacy_models={local: "gemma3"})["model_name"]) == {"gemma3"}
    assert set(collect(old, legacy_models={"/elsewhere": "gemma3"})["model_name"]) == {local}


def test_report_options_refuse_bad_values_in_one_line(tmp_path: Path) -> None:
    old = write_study_file(tmp_path / "outputs_x_dreams_it.json", [release_record(1, 4, 0)])
    for option, named in ((["--stats", "thesis"], "--stats thesis"), (["--legacy-model", "/p="], "--legacy-model /p=")):
        done = report_cli(str(old), *option)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "report").exists()


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


# --- the judge as the thesis ran it --------------------------------------------------------------------


def test_the_study_rubrics_rate_from_0_to_5_and_ask_22_picture_questions() -> None:
    from degrade.judge.config import compose_judge_config

    def rubric(name: str):
        return compose_judge_config("run=x", f"judge/rubric={name}").judge.rubric

    for name in ("study_math", "study_lang", "study_text"):
        assert {(f.type, f.min, f.max) for f in rubric(name).fields} == {("int", 0, 5)}, name
    assert rubric("study_math").show_answers and rubric("study_lang").show_answers
    assert not rubric("study_text").show_answers and not rubric("language").show_answers
    picture = rubric("study_picture")
    assert len(picture.fields) == 22 and {f.type for f in picture.fields} == {"bool"}
    assert all(f.description.endswith("?") for f in picture.fields)  # each field is its question
    assert [f.min for f in rubric("language").fields] == [1] * 5  # today's rubric keeps its name and scale


def test_the_judge_sees_the_expected_answer_where_the_rubric_shows_it(tmp_path: Path) -> None:
    """A real run of answered items, judged over HTTP: the judge reads each item's accepted answers."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "judge"))
    from chat_server import serve

    from degrade.judge.config import compose_judge_config
    from degrade.judge.runner import judge_run

    answers = tmp_path / "answers.yaml"
    answers.write_text('"1": ["42", "forty-two"]\n"2": ["7"]\n', encoding="utf-8")
    module = tmp_path / "prompts.py"
    module.write_text('math_prompts_it = ["Six times seven?", "Fourteen halved?"]\n', encoding="utf-8")
    cfg = compose_cfg(
        "model=tiny_random", "experiment=iq", "experiment.name=math", f"experiment.prompts_file={module}",
        "experiment.prompts_name=math_prompts_it", f"experiment.answers_file={answers}", "degradation.levels=[0]",
        "generation.max_new_tokens=4",
    )  # fmt: skip
    run_job(cfg, tmp_path / "run")
    server = serve(lambda body: '{"understanding": 3, "method": 2, "correctness": 0}')
    for rubric in ("study_math", "study_text"):
        judge_run(
            compose_judge_config(
                f"run={tmp_path / 'run'}",
                f"judge/rubric={rubric}",
                "judge/backend=openai",
                "judge.backend.model=j",
                f"judge.backend.base_url={server.url}",
                "judge.backend.concurrency=1",
            )  # fmt: skip
        )
    shown = [r["body"]["messages"][-1]["content"] for r in server.requests]
    math_turns = [s for s in shown if "Six times seven?" in s or "Fourteen halved?" in s]
    assert any("The expected answer:\n42 / forty-two" in s for s in math_turns)
    assert any("The expected answer:\n7\n" in s for s in math_turns)
    assert sum("The expected answer" in s for s in shown) == 2  # study_text shows none


# --- the docs against the study's code ---------------------------------------------------------------


def test_the_study_page_states_what_the_studys_code_does() -> None:
    page = " ".join((ROOT / "docs" / "study.md").read_text(encoding="utf-8").split())  # lines joined
    assert "50 items: 25 math, 15 language, 3 logic, 5 factual, 2 creativity" in page
    assert "65 items across" not in page and "math (24 items)" not in page
    assert "`math_prompts_it`" in page and "`language_prompts_it`" in page and "deprecated" in page
    assert "experiment.name=math" in page and "experiment.name=lang" in page
    assert "outputs_mult_gauss_gemma-3-4b-it_dreams_it.json" in page
    assert "damage depended on what had run before it" not in page  # it reseeded every cell
    assert "reseeded" in page and "--stats study" in page and "--legacy-model" in page
    five = "--multirun variant=gauss_attn,gauss_mlp,gauss_embed,ablation_attn,quant_attn"
    command = page[page.index(five) : page.index("```", page.index(five))]
    assert "param_group" not in command  # each variant's own group
    assert "level_value, level_index" in page  # the released code's fields, beside the first script's


def test_the_records_page_names_every_method_of_the_registry() -> None:
    from degrade.methods import METHODS

    line = next(
        row for row in (ROOT / "docs" / "records.md").read_text(encoding="utf-8").splitlines()
        if row.startswith("| `degradation_method` |")
    )  # fmt: skip
    assert sorted(m for m in METHODS if f"`{m}`" in line) == sorted(METHODS)
