"""Whole jobs: the real embedded model through the CLI, tiny models in-process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.job.runner import run_job
from degrade.records.contract import FIELDS, GenParams

OLD_FIELDS = [
    "timestamp",
    "model_name",
    "prompt_group",
    "prompt_id",
    "prompt_text",
    "output",
    "std_dev",
    "repeat_index",
    "temperature",
    "do_sample",
    "param_group_name",
    "seed",
    "duration",
    "tokens",
    "degradation_method",
    "usar_4bit",
]


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory, embedded_dir) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("embedded") / "run"
    args = ["experiment.limit=4", "degradation.levels=[0,0.4]", "generation.max_new_tokens=24", f"hydra.run.dir={out}"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, args


@pytest.mark.slow
def test_embedded_json_and_parquet_hold_the_same_records(embedded_run) -> None:
    out, _ = embedded_run
    records = json.loads((out / "outputs_mult_gauss_smollm2-135m-instruct_dreams.json").read_text(encoding="utf-8"))
    frame = pd.read_parquet(out / "records.parquet")
    assert len(records) == len(frame) == 2 * 4
    assert list(frame.columns) == list(FIELDS)
    assert set(OLD_FIELDS) <= set(records[0])
    from_json = pd.DataFrame(records)
    for column in ["prompt_id", "output", "level_value", "repeat_index", "tokens_out", "weights_fingerprint"]:
        assert from_json[column].tolist() == frame[column].tolist(), column
    assert frame["gen_params"].tolist() == from_json["gen_params"].tolist()
    assert frame["level_value"].dtype == "float64" and frame["tokens_out"].dtype == "int64"


@pytest.mark.slow
def test_embedded_records_say_what_happened(embedded_run) -> None:
    out, _ = embedded_run
    frame = pd.read_parquet(out / "records.parquet")
    assert (frame.std_dev == frame.level_value).all() and (frame.degrad_level == frame.level_value).all()
    assert (frame.tokens == frame.tokens_out).all() and frame.tokens_out.between(1, 24).all()
    assert (frame.tokens_in > 20).all()  # the chat template's system and user turns
    assert not frame.output.str.contains("<|im_start|>", regex=False).any()
    assert not any(p in o for p, o in zip(frame.prompt_text, frame.output))
    assert set(frame.experiment_id) == {"mult_gauss|smollm2-135m-instruct|dreams"}
    # greedy: the sampling knobs played no part, so no record lists them
    assert frame.gen_params.iloc[0] == {
        "do_sample": False,
        "max_new_tokens": 24,
        "temperature": None,
        "top_k": None,
        "top_p": None,
        "repetition_penalty": 1.0,
    }
    assert frame.temperature.isna().all()
    # how each answer ended: "length" exactly when it used all 24 tokens
    assert set(frame.finish_reason) <= {"stop", "length"}
    assert ((frame.finish_reason == "length") == (frame.tokens_out == 24)).all()
    clean = frame[frame.level_value == 0].set_index("prompt_id").output
    damaged = frame[frame.level_value == 0.4].set_index("prompt_id").output
    assert (clean != damaged[clean.index]).mean() >= 0.75
    assert frame[frame.level_value == 0].weights_fingerprint.nunique() == 1
    assert set(frame[frame.level_value == 0].weights_fingerprint) != set(
        frame[frame.level_value == 0.4].weights_fingerprint
    )


@pytest.mark.slow
def test_embedded_metadata_and_resume(embedded_run) -> None:
    out, args = embedded_run
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["config_hash"]) == 64 and meta["records"] == 8
    assert meta["param_group"]["name"] == "mlp_only" and meta["param_group"]["count"] == 90
    assert meta["versions"]["transformers"] and meta["model"]["weights_fingerprint"]
    assert meta["status"] == "done" and meta["settings"]["generation.max_new_tokens"] == 24
    assert meta["timings"]["cells"] == 2 and meta["timings"]["generate_s"] < meta["timings"]["total_s"]
    frame = pd.read_parquet(out / "records.parquet")
    assert set(frame.settings_hash) == {meta["settings_hash"]}
    before = (out / "records.jsonl").read_bytes()
    again = run_cli(*args)
    assert again.returncode == 0
    assert "8 generations, 0 to run" in again.stdout
    assert (out / "records.jsonl").read_bytes() == before


def test_journal_lines_hold_exactly_the_contract_fields(tmp_path) -> None:
    cfg = compose_cfg(
        "model=tiny_random", "experiment.limit=2", "degradation.levels=[0,0.2]", "generation.max_new_tokens=2"
    )
    run_job(cfg, tmp_path)
    lines = (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    for line in lines:
        record = json.loads(line)
        assert list(record) == list(FIELDS)
        assert set(record["gen_params"]) == {f.name for f in dataclasses.fields(GenParams)}


def test_tiny_job_in_process_counts_and_seeds(tmp_path) -> None:
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment.limit=3",
        "experiment.n_rep=2",
        "degradation=ablation",
        "degradation.levels=[0,0.5]",
        "generation.max_new_tokens=4",
    )
    summary = run_job(cfg, tmp_path)
    frame = pd.read_parquet(tmp_path / "records.parquet")
    assert summary.records == len(frame) == 2 * 2 * 3
    assert sorted(frame.groupby(["level_index", "repeat_index"]).size().tolist()) == [3, 3, 3, 3]
    assert set(frame.seed) == {42, 43} and (frame.seed == 42 + frame.repeat_index).all()
    assert frame.level_index.tolist() == [0] * 6 + [1] * 6


def test_local_save_pretrained_dir_is_a_source(tmp_path, embedded_dir) -> None:
    from degrade.model.tiny import build_random_model

    model, tokenizer = build_random_model("qwen2", tokenizer_dir=embedded_dir, seed=3)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    cfg = compose_cfg(
        "model=tiny_random",
        f"model.source={tmp_path / 'model'}",
        "model.name=my-qwen",
        "experiment.limit=2",
        "degradation.levels=[0]",
        "generation.max_new_tokens=3",
    )
    run_job(cfg, tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "metadata.json").read_text())
    assert meta["model"]["source"] == str((tmp_path / "model").resolve())
    frame = pd.read_parquet(tmp_path / "run" / "records.parquet")
    assert set(frame.model_name) == {"my-qwen"} and len(frame) == 2


def test_group_matching_nothing_fails_before_generation(tmp_path) -> None:
    result = run_cli("model=tiny_random", "param_group=vision", "experiment.limit=2", f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "param_group=vision: matches no parameter of this model" in output and "Traceback" not in output
    assert not (tmp_path / "records.jsonl").exists()


def test_perplexity_once_per_level_and_grows_with_damage(tmp_path) -> None:
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment.limit=2",
        "experiment.n_rep=2",
        "experiment.perplexity.enabled=true",
        "degradation=ablation",
        "degradation.levels=[0,0.9]",
        "generation.max_new_tokens=2",
    )
    run_job(cfg, tmp_path)
    frame = pd.read_parquet(tmp_path / "records.parquet")
    per_level = frame.groupby("level_value").perplexity.agg(["nunique", "first"])
    assert per_level["nunique"].tolist() == [1, 1]  # the same value on every record of a level
    assert per_level["first"][0.9] != per_level["first"][0.0]


def test_perplexity_without_text_is_refused() -> None:
    from degrade.errors import ConfigError

    with pytest.raises(ConfigError, match="experiment.perplexity.text: empty"):
        compose_cfg("experiment.perplexity.enabled=true", "experiment.perplexity.text=''")


@pytest.mark.slow
def test_cookie_theft_on_the_tiny_vlm_end_to_end(tmp_path) -> None:
    from PIL import Image, ImageDraw

    picture = tmp_path / "kitchen.png"
    image = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(image).rectangle([10, 40, 40, 80], fill="brown")
    image.save(picture)
    result = run_cli(
        "experiment=cookie_theft",
        "degradation=uni_quant",
        "model=tiny_random_vlm",
        f"experiment.image.path={picture}",
        "experiment.limit=2",
        "generation.max_new_tokens=4",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    frame = pd.read_parquet(tmp_path / "run" / "records.parquet")
    assert len(frame) == 2 * 5 and frame.image_used.all() and set(frame.image_filename) == {"kitchen.png"}
    assert frame.info_units.notna().all() and frame.correct.isna().all()
    assert sorted(frame.level_value.unique()) == [0, 4, 16, 64, 256]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["experiment=cookie_theft", "experiment.image.path=/nonexistent/picture.png"],
            "model smollm2-135m-instruct is text-only",
        ),
        (
            ["experiment=cookie_theft", "model=tiny_random_vlm", "experiment.image.path=/nonexistent/picture.png"],
            "experiment.image.path: /nonexistent/picture.png: no such file",
        ),
        (["experiment=cookie_theft", "model=tiny_random_vlm"], "experiment.image.path: missing"),
    ],
)
def test_image_mistakes_are_one_line(tmp_path, args: list[str], needle: str) -> None:
    result = run_cli(*args, f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and needle in output and "Traceback" not in output


def test_a_processs_start_is_timed_in_its_first_job_only(tmp_path) -> None:
    """metadata.json's timings split a sweep's wall time: the process's start (imports, Hydra) goes to its first job."""
    sweep = tmp_path / "sweep"
    args = ["--multirun", "model=tiny_random", "experiment.limit=1", "generation.max_new_tokens=2"]
    done = run_cli(*args, "degradation.levels=[0]", "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stdout + done.stderr
    timings = [json.loads(p.read_text())["timings"] for p in sweep.glob("*/metadata.json")]
    second, first = sorted(timings, key=lambda t: t["process_start_s"])
    assert first["process_start_s"] > 0.5  # the interpreter and the imports of torch, Transformers and Hydra
    assert second["process_start_s"] == 0
    assert first["engine_start_s"] == second["engine_start_s"] == 0  # no serving engine on this backend
