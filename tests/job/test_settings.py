"""A job dir belongs to one configuration: changed settings are refused, added levels and edited prompts resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.errors import DegradeError
from degrade.job.runner import run_job

BASE = ("model=tiny_random", "experiment.limit=2", "degradation.levels=[0,0.2]", "generation.max_new_tokens=2")


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the hash of its bytes."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in path.rglob("*") if p.is_file()
    }


@pytest.fixture
def finished(tmp_path) -> Path:
    run_job(compose_cfg(*BASE), tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("override", "change"),
    [
        ("generation.max_new_tokens=3", "generation.max_new_tokens: 2 → 3"),
        ("degradation=ablation", 'degradation.method: "mult_gauss" → "ablation"'),
        ("param_group=attn", 'param_group.name: "mlp_only" → "attn"'),
        ("generation=sampling", "generation.do_sample: false → true"),
        ("seed=7", "seed: 42 → 7"),
    ],
)
def test_changed_settings_are_refused_and_the_dir_is_untouched(finished: Path, override: str, change: str) -> None:
    before = tree(finished)
    with pytest.raises(DegradeError) as caught:
        run_job(compose_cfg(*BASE, override), finished)
    message = str(caught.value)
    assert change in message and "force_run=true" in message and "\n" not in message
    assert tree(finished) == before


def test_a_rerun_with_nothing_to_do_keeps_the_model_facts(finished: Path) -> None:
    before = json.loads((finished / "metadata.json").read_text())
    summary = run_job(compose_cfg(*BASE), finished)
    after = json.loads((finished / "metadata.json").read_text())
    assert (summary.generated, summary.skipped) == (0, 4)
    assert after["model"] == before["model"] and after["param_group"] == before["param_group"]
    assert after["status"] == "done"


def test_an_added_level_resumes_and_runs_only_that_level(finished: Path) -> None:
    summary = run_job(compose_cfg(*BASE[:2], "degradation.levels=[0,0.2,0.4]", BASE[3]), finished)
    frame = pd.read_parquet(finished / "records.parquet")
    assert (summary.generated, summary.skipped) == (2, 4)
    assert frame.groupby("level_value").size().to_dict() == {0.0: 2, 0.2: 2, 0.4: 2}


def test_force_run_takes_new_settings_and_keeps_the_old_files(finished: Path) -> None:
    old = (finished / "records.jsonl").read_bytes()
    run_job(compose_cfg(*BASE[:3], "generation.max_new_tokens=3", "force_run=true"), finished)
    kept = list(finished.glob("previous-*/records.jsonl"))
    assert len(kept) == 1 and kept[0].read_bytes() == old
    meta = json.loads((finished / "metadata.json").read_text())
    assert meta["settings"]["generation.max_new_tokens"] == 3 and meta["status"] == "done"


def test_an_edited_prompt_runs_again_and_the_others_do_not(finished: Path, caplog) -> None:
    caplog.set_level("INFO", logger="degrade")
    summary = run_job(compose_cfg(*BASE, "experiment.prompts.0.text=Describe a dream about a lighthouse."), finished)
    assert (summary.generated, summary.skipped) == (2, 2)  # the edited prompt, at both levels
    assert "1 prompts changed since their records were written" in caplog.text
    frame = pd.read_parquet(finished / "records.parquet")
    first = frame[frame.prompt_id == frame.prompt_id.iloc[0]]
    assert first.prompt_hash.nunique() == 2 and len(first) == 4  # old records stay, new ones beside them


def test_other_weights_under_the_same_source_are_refused(tmp_path, embedded_dir) -> None:
    from degrade.model.tiny import build_random_model

    source, run = tmp_path / "model", tmp_path / "run"
    args = (*BASE[1:], "model=tiny_random", f"model.source={source}", "model.name=mine")
    for seed in (3, 4):  # the first model runs in its own process; then the same dir holds other weights
        model, tokenizer = build_random_model("qwen2", tokenizer_dir=embedded_dir, seed=seed)
        model.save_pretrained(source)
        tokenizer.save_pretrained(source)
        if seed == 3:
            result = run_cli(*args, f"hydra.run.dir={run}")
            assert result.returncode == 0, result.stdout + result.stderr
    before = tree(run)
    with pytest.raises(DegradeError, match="holds records of other weights"):
        run_job(compose_cfg(*args, "degradation.levels=[0,0.2,0.4]"), run)
    assert tree(run) == before


@pytest.mark.parametrize("same", [True, False], ids=["same-weights", "other-weights"])
def test_a_dir_holding_the_older_sum_print_is_still_checked(finished: Path, same: bool) -> None:
    """metadata.json of a job dir written before the digest holds the group's sum print: it is compared the old way."""
    from degrade.model import loading
    from degrade.model.groups import resolve_group
    from degrade.model.restore import Snapshot, legacy_fingerprint

    cfg = compose_cfg(*BASE)
    model = loading.load(cfg.model, "cpu").model
    clean = legacy_fingerprint(Snapshot(model, resolve_group(model, cfg.param_group).names).clean_tensors)
    meta = json.loads((finished / "metadata.json").read_text())
    meta["model"]["weights_fingerprint"] = clean if same else f"{int(clean, 16) ^ 1:016x}"
    (finished / "metadata.json").write_text(json.dumps(meta))
    added = compose_cfg(*BASE[:2], "degradation.levels=[0,0.2,0.4]", BASE[3])
    if same:
        assert run_job(added, finished).generated == 2
    else:
        before = tree(finished)
        with pytest.raises(DegradeError, match="holds records of other weights"):
            run_job(added, finished)
        assert tree(finished) == before


def test_a_sampled_dir_of_the_batch_wide_sampler_is_refused(tmp_path: Path, monkeypatch) -> None:
    """Sampled records made before each prompt had its own seed differ from today's: such a dir is not continued."""
    from degrade.job import runner

    real = runner.record_settings

    def before_per_prompt_seeds(cfg, semantic=None):
        return {k: v for k, v in real(cfg, semantic).items() if k != "generation.sampler"}

    sampled = (*BASE, "generation=sampling")
    with monkeypatch.context() as patch:
        patch.setattr(runner, "record_settings", before_per_prompt_seeds)
        run_job(compose_cfg(*sampled), tmp_path)
    before = tree(tmp_path)
    with pytest.raises(DegradeError) as caught:
        run_job(compose_cfg(*sampled[:2], "degradation.levels=[0,0.2,0.4]", *sampled[3:]), tmp_path)
    assert 'generation.sampler: "—" → "per-prompt seeds"' in str(caught.value)
    assert tree(tmp_path) == before
    assert "generation.sampler" not in real(compose_cfg(*BASE))  # greedy records did not change: not keyed


# --- a score follows its answers ---------------------------------------------------------------------------

# qwen2's random weights decode to words (llama's to blanks), so an answer can be made to match an output.
IQ = (
    "model=tiny_random",
    "model.random_arch=qwen2",
    "experiment=iq",
    "experiment.limit=2",
    "generation.max_new_tokens=6",
)


def frame_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "records.parquet").sort_values(["level_value", "prompt_id"], ignore_index=True)


@pytest.fixture
def iq_run(tmp_path) -> Path:
    run_job(compose_cfg(*IQ, "degradation.levels=[0]"), tmp_path)
    return tmp_path


def first_word(out: Path) -> str:
    return frame_of(out).output[0].split()[0]


def test_changed_answers_rescore_the_stored_outputs(iq_run: Path, caplog) -> None:
    word, old = first_word(iq_run), frame_of(iq_run)
    assert list(old.correct) == [0, 0]
    caplog.set_level("INFO", logger="degrade")
    summary = run_job(compose_cfg(*IQ, "degradation.levels=[0]", f"experiment.prompts.0.answers=[{word}]"), iq_run)
    new, meta = frame_of(iq_run), json.loads((iq_run / "metadata.json").read_text())
    assert summary.generated == 0 and "rescored 2 records from their stored outputs, 1 of them" in caplog.text
    assert list(new.correct) == [1, 0] and list(new.answers[0]) == [word]
    assert list(new.output) == list(old.output)  # scored again, not generated again
    assert set(new.settings_hash) == {meta["settings_hash"]} != set(old.settings_hash)
    kept = list(iq_run.glob("previous-*/records.jsonl"))  # the journal it replaced
    assert len(kept) == 1 and {json.loads(line)["correct"] for line in kept[0].read_text().splitlines()} == {0}


def test_an_answers_file_then_a_level_gives_one_answer_key(iq_run: Path, tmp_path_factory) -> None:
    """The answers file rescores the earlier level; the added level is scored with it too: one key, one hash."""
    word = first_word(iq_run)
    answers = tmp_path_factory.mktemp("answers") / "answers.yaml"
    answers.write_text(f"iq_01: [{word}]\n", encoding="utf-8")
    cfg = compose_cfg(*IQ, "degradation.levels=[0,0.2]", f"experiment.answers_file={answers}")
    summary = run_job(cfg, iq_run)
    frame = frame_of(iq_run)
    assert (summary.generated, summary.skipped) == (2, 2)
    assert {tuple(a) for a in frame[frame.prompt_id == "iq_01"].answers} == {(word,)}
    assert frame.correct[0] == 1 and frame.settings_hash.nunique() == 1


def test_turning_on_info_units_rescores_instead_of_refusing(finished: Path) -> None:
    assert frame_of(finished).info_units.isna().all()
    summary = run_job(compose_cfg(*BASE, "experiment.info_units=true"), finished)
    assert summary.generated == 0 and frame_of(finished).info_units.notna().all()


def test_a_record_rescored_unchanged_keeps_its_scores(iq_run: Path) -> None:
    """What rescoring computes is what the job wrote: a record scored again from its output is the same record."""
    from degrade.job.rescore import record_scores
    from degrade.scoring.semantic import Semantic

    cfg = compose_cfg(*IQ)
    answers = {p.id: p.answers for p in cfg.experiment.prompts}
    for record in (json.loads(line) for line in (iq_run / "records.jsonl").read_text().splitlines()):
        scores = record_scores(record["output"], answers[record["prompt_id"]], False, Semantic(), record["prompt_text"])
        assert {k: record[k] for k in scores} == scores


# --- a level is given once -----------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", ["[0.1,0.1]", "[0,-0.0]"])
def test_a_level_given_twice_is_refused_in_one_line(finished: Path, levels: str) -> None:
    before = tree(finished)
    result = run_cli(*BASE[:2], f"degradation.levels={levels}", BASE[3], f"hydra.run.dir={finished}")
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert result.returncode == 2 and "Traceback" not in output, output
    assert len(errors) == 1 and "degradation.levels" in errors[0] and "given more than once" in errors[0]
    assert tree(finished) == before
