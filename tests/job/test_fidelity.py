"""experiment.fidelity: KL to the clean model and top-1 agreement in every record, from real jobs on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.analysis.report import write_report
from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.job.settings import record_settings, settings_hash

TINY = ["model=tiny_random", "generation.max_new_tokens=5", "experiment.fidelity.enabled=true"]
SWEEP = ["experiment.limit=3", "experiment.n_rep=2", "param_group=all"]  # all: enough damage to move a top token


def _run(out: Path, *overrides: str) -> pd.DataFrame:
    run_job(compose_cfg(*TINY, *overrides), out)
    return pd.read_parquet(out / "records.parquet")


def _references(out: Path) -> dict:
    return json.loads((out / "fidelity_reference.json").read_text(encoding="utf-8"))["references"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("fidelity")
    return out, _run(out, *SWEEP, "degradation.levels=[0,0.1,1.0]")


def test_level_zero_is_exactly_the_clean_model(sweep) -> None:
    _, frame = sweep
    clean = frame[frame.level_value == 0]
    assert len(clean) == 6
    assert (clean.kl_to_clean == 0.0).all() and (clean.top1_agreement == 1.0).all()


def test_kl_rises_and_agreement_falls_with_the_level(sweep) -> None:
    _, frame = sweep
    by_level = frame.groupby("level_value")[["kl_to_clean", "top1_agreement"]].mean()
    assert by_level.kl_to_clean.is_monotonic_increasing and by_level.kl_to_clean[1.0] > 10 * by_level.kl_to_clean[0.1]
    assert (frame[frame.level_value > 0].kl_to_clean > 0).all()
    assert by_level.top1_agreement[1.0] < 1.0
    # the repetitions draw other noise: their KL differs
    damaged = frame[frame.level_value == 1.0].pivot(index="prompt_id", columns="repeat_index", values="kl_to_clean")
    assert (damaged[0] != damaged[1]).all()


def test_damage_first_or_clean_already_done_measures_the_same(sweep, tmp_path) -> None:
    _, frame = sweep
    columns = ["prompt_id", "repeat_index", "level_value", "kl_to_clean", "top1_agreement"]
    expected = frame[columns].sort_values(columns[:3]).reset_index(drop=True)
    # the first cell is damaged (the clean side must come from the restored weights, not the damaged ones) …
    backwards = _run(tmp_path / "backwards", *SWEEP, "degradation.levels=[1.0,0.1,0]")
    pd.testing.assert_frame_equal(backwards[columns].sort_values(columns[:3]).reset_index(drop=True), expected)
    # … and a rerun that adds levels to a dir whose clean level is done starts at a damaged cell
    _run(tmp_path / "added", *SWEEP, "degradation.levels=[0]")
    added = _run(tmp_path / "added", *SWEEP, "degradation.levels=[0,0.1,1.0]")
    pd.testing.assert_frame_equal(added[columns].sort_values(columns[:3]).reset_index(drop=True), expected)


def test_the_reference_is_the_clean_greedy_answer_and_counts_the_positions(sweep) -> None:
    out, frame = sweep
    references = _references(out)
    clean = frame[(frame.level_value == 0) & (frame.repeat_index == 0)]
    for record in clean.itertuples():
        held = references[record.prompt_id]
        assert held["prompt_hash"] == record.prompt_hash
        assert held["text"] == record.output  # greedy: the level-0 answer is the text both models read
        assert len(held["ids"]) == record.tokens_out
    positions = frame.set_index("prompt_id").fidelity_tokens
    assert (positions == pd.Series({k: len(v["ids"]) for k, v in references.items()})[positions.index]).all()


def test_the_report_plots_and_tests_them_as_measures(sweep, tmp_path) -> None:
    out, frame = sweep
    paths = write_report(out, tmp_path / "report")
    summary = pd.read_csv(paths["summary_csv"])
    assert summary.kl_to_clean.tolist() == pytest.approx(frame.groupby("level_value").kl_to_clean.mean().tolist())
    assert {p.name for p in paths["plots"]} >= {"kl_to_clean.png", "top1_agreement.png"}
    stats = pd.read_csv(paths["stats_csv"])
    kl, agreement = (stats[stats.measure == m].set_index("level_value") for m in ("kl_to_clean", "top1_agreement"))
    assert kl.loc[0.0, "mean"] == 0.0 and agreement.loc[0.0, "mean"] == 1.0
    # lower is better for KL and higher for agreement: both are tested in their direction of decline, and both break
    assert kl.spearman_rho.iloc[0] > 0 and kl.spearman_p.iloc[0] < 0.05
    assert agreement.spearman_rho.iloc[0] < 0 and agreement.spearman_p.iloc[0] < 0.05
    assert kl.critical_how.iloc[0] != "not reached"


def test_a_resumed_job_measures_new_prompts_as_a_fresh_job_does(tmp_path) -> None:
    resumed, fresh = tmp_path / "resumed", tmp_path / "fresh"
    _run(resumed, "experiment.limit=2", "degradation.levels=[0,1.0]")
    first = _references(resumed)
    frame = _run(resumed, "experiment.limit=3", "degradation.levels=[0,1.0]")
    assert len(frame) == 6 and frame.kl_to_clean.notna().all()
    assert {k: v for k, v in _references(resumed).items() if k in first} == first  # kept, not made again
    alone = _run(fresh, "experiment.limit=3", "degradation.levels=[0,1.0]")
    columns = ["kl_to_clean", "top1_agreement", "fidelity_tokens"]
    key = ["prompt_id", "level_value"]
    pd.testing.assert_frame_equal(
        frame.sort_values(key)[key + columns].reset_index(drop=True),
        alone.sort_values(key)[key + columns].reset_index(drop=True),
    )


def test_force_run_sets_the_references_aside_with_the_records(tmp_path) -> None:
    _run(tmp_path, "experiment.limit=1", "degradation.levels=[0]")
    _run(tmp_path, "experiment.limit=1", "degradation.levels=[0]", "force_run=true")
    (previous,) = tmp_path.glob("previous-*")
    assert (previous / "fidelity_reference.json").is_file() and (tmp_path / "fidelity_reference.json").is_file()


def test_an_unreadable_reference_file_is_kept_aside(tmp_path) -> None:
    _run(tmp_path, "experiment.limit=1", "degradation.levels=[0]")
    (tmp_path / "fidelity_reference.json").write_text("{not json", encoding="utf-8")
    frame = _run(tmp_path, "experiment.limit=2", "degradation.levels=[0]")
    assert frame.kl_to_clean.notna().all()
    (aside,) = tmp_path.glob("fidelity_reference.json.unreadable-*")
    assert aside.read_text(encoding="utf-8") == "{not json"


def test_off_by_default_leaves_the_fields_null_and_the_settings_hash_alone(tmp_path) -> None:
    cfg = compose_cfg(*TINY[:2], "experiment.limit=1", "degradation.levels=[0]")
    run_job(cfg, tmp_path)
    frame = pd.read_parquet(tmp_path / "records.parquet")
    assert frame[["kl_to_clean", "top1_agreement", "fidelity_tokens"]].isna().all().all()
    assert not any(k.startswith("experiment.fidelity") for k in record_settings(cfg))  # old job dirs keep their hash
    on = compose_cfg(*TINY)
    longer = compose_cfg(*TINY, "experiment.fidelity.max_new_tokens=9")
    hashes = {settings_hash(record_settings(c)) for c in (cfg, on, longer)}
    assert len(hashes) == 3  # the measure, and the length of the answer it reads, shape the records


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["experiment.fidelity.max_new_tokens=0"], "experiment.fidelity.max_new_tokens: 0; must be null"),
        (["degradation=activation_noise"], "experiment.fidelity.enabled: true: not built for degradation=activation"),
        (["model.backend=vllm"], "experiment.fidelity.enabled: true: not built for model.backend=vllm"),
    ],
)
def test_what_it_is_not_built_for_is_refused_in_one_line(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_cfg("experiment.fidelity.enabled=true", *overrides)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_embedded_model_reads_its_own_level_zero_answers(tmp_path, embedded_dir) -> None:
    run_job(
        compose_cfg(
            "experiment.limit=2",
            "degradation.levels=[0,0.2]",
            "generation.max_new_tokens=12",
            "experiment.fidelity.enabled=true",
        ),
        tmp_path,
    )
    frame = pd.read_parquet(tmp_path / "records.parquet")
    references = _references(tmp_path)
    clean = frame[frame.level_value == 0]
    assert [references[p]["text"] for p in clean.prompt_id] == clean.output.tolist()
    assert all(len(t) > 20 for t in clean.output)  # real text, not a run of one token
    assert (clean.kl_to_clean == 0.0).all() and (clean.top1_agreement == 1.0).all()
    damaged = frame[frame.level_value == 0.2]
    assert (damaged.kl_to_clean > 0.01).all() and (damaged.top1_agreement < 1.0).all()


def test_jobs_of_one_process_share_the_clean_side_only_for_the_same_model(tmp_path, monkeypatch) -> None:
    from degrade.job import fidelity

    levels = "degradation.levels=[0,1.0]"
    _run(tmp_path / "mlp", "experiment.limit=2", levels)
    shared = _run(tmp_path / "attn", "experiment.limit=2", levels, "param_group=attn")  # reuses mlp's clean side
    qwen = _run(tmp_path / "qwen", "experiment.limit=2", levels, "model.random_arch=qwen2")  # another model: not
    assert (qwen[qwen.level_value == 0].kl_to_clean == 0).all() and (qwen.level_value == 0).sum() == 2
    monkeypatch.setattr(fidelity, "_SHARED", fidelity.SharedClean())  # as a new process would start
    alone = _run(tmp_path / "alone", "experiment.limit=2", levels, "param_group=attn")
    columns = ["prompt_id", "level_value", "kl_to_clean", "top1_agreement"]
    pd.testing.assert_frame_equal(shared[columns], alone[columns])
    assert _references(tmp_path / "attn") == _references(tmp_path / "alone")
