"""experiment=lm_eval: lm-evaluation-harness scores a local task on the damaged model, one record per document."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, compose_cfg

from degrade.analysis.report import write_report
from degrade.errors import ConfigError
from degrade.job.runner import run_job

LOCAL = ROOT / "tests" / "lm_eval_task"  # a task of ten capitals: capitals.yaml, its documents in capitals.jsonl
TASK = ["experiment=lm_eval", "experiment.tasks=[capitals]", f"experiment.include_path={LOCAL}"]
TINY = [*TASK, "model=tiny_random", "degradation.levels=[0,1.0]"]
DOCS = [json.loads(line) for line in (LOCAL / "capitals.jsonl").read_text().splitlines()]


def _run(out: Path, *overrides: str) -> pd.DataFrame:
    run_job(compose_cfg(*overrides), out)
    return pd.read_parquet(out / "records.parquet")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("lm_eval")
    return out, _run(out, *TINY)


def test_every_document_is_a_record_with_its_target_response_and_metrics(tiny) -> None:
    _, frame = tiny
    assert len(frame) == 2 * len(DOCS)
    clean = frame[frame.level_value == 0].set_index("prompt_id")
    assert list(clean.index) == [f"capitals/{i}" for i in range(len(DOCS))]
    for i, doc in enumerate(DOCS):
        record = clean.loc[f"capitals/{i}"]
        assert record.prompt_text == f"Question: {doc['question']}\nAnswer:" and record.prompt_category == "capitals"
        assert list(record.answers) == [doc["choices"][doc["answer"]]]  # the target, as text
        assert record.output in doc["choices"]  # the most likely choice
        metrics = json.loads(record.task_metrics)
        assert set(metrics) == {"acc", "acc_norm"} and metrics["acc_norm"] == record.acc_norm
        assert record.correct == metrics["acc"] == (record.output == record.answers[0])
    assert set(frame.finish_reason) == {"lm_eval"} and (frame.tokens_out == 0).all()


def test_the_records_agree_with_lm_eval_run_alone(tiny) -> None:
    """lm-eval on the clean model, alone: its choice, acc and acc_norm of every document are the level-0 records'."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from degrade.model import loading

    _, frame = tiny
    loaded = loading.load(compose_cfg(*TINY).model, "cpu")
    alone = simple_evaluate(
        model=HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=4),
        tasks=["capitals"],
        task_manager=TaskManager(include_path=str(LOCAL), include_defaults=False),
        bootstrap_iters=0,
        log_samples=True,
    )
    clean = frame[frame.level_value == 0].set_index("prompt_id")
    for sample in alone["samples"]["capitals"]:
        record = clean.loc[f"capitals/{sample['doc_id']}"]
        likelihoods = [r[0] for r in sample["filtered_resps"]]
        assert record.output == sample["doc"]["choices"][likelihoods.index(max(likelihoods))]
        assert (record.correct, record.acc_norm) == (sample["acc"], sample["acc_norm"])
    assert clean.correct.mean() == pytest.approx(alone["results"]["capitals"]["acc,none"])


def test_damage_changes_the_likelihoods_and_the_report_reads_accuracy(tiny, tmp_path) -> None:
    out, frame = tiny
    by_level = frame.pivot(index="prompt_id", columns="level_value", values="output")
    assert (by_level[0.0] != by_level[1.0]).any()  # the damaged weights are the ones lm-eval scored
    summary = pd.read_csv(write_report(out, tmp_path / "report")["summary_csv"])
    assert summary.accuracy.tolist() == frame.groupby("level_value").correct.mean().tolist()
    assert "acc_norm" in summary and "accuracy_capitals" in summary


def test_a_resumed_job_scores_only_the_new_documents_as_a_fresh_job_does(tmp_path) -> None:
    first = _run(tmp_path / "resumed", *TINY, "experiment.limit=4")
    assert len(first) == 8 and first.prompt_id.str.removeprefix("capitals/").astype(int).max() == 3
    before = (tmp_path / "resumed" / "records.jsonl").read_text(encoding="utf-8")
    resumed = _run(tmp_path / "resumed", *TINY, "experiment.limit=6")
    after = (tmp_path / "resumed" / "records.jsonl").read_text(encoding="utf-8")
    assert after.startswith(before) and len(after.splitlines()) == 12  # kept, and 2 documents × 2 cells added
    fresh = _run(tmp_path / "fresh", *TINY, "experiment.limit=6")
    columns = ["prompt_id", "level_value", "output", "correct", "acc_norm"]
    key = ["prompt_id", "level_value"]
    pd.testing.assert_frame_equal(
        resumed[columns].sort_values(key).reset_index(drop=True), fresh[columns].sort_values(key).reset_index(drop=True)
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["experiment.tasks=[no_such_task]"], "experiment.tasks: no_such_task: lm-eval has no such task"),
        (["experiment.include_path=/nonexistent"], "experiment.include_path: /nonexistent: no such directory"),
        (["experiment.num_fewshot=-1"], "experiment.num_fewshot: -1; must be null or an integer ≥ 0"),
        (["experiment.fidelity.enabled=true"], "experiment.fidelity.enabled: true: not built for experiment.tasks"),
        (["experiment.tasks=[]"], "experiment.tasks: empty; give lm-eval task names"),
    ],
)
def test_bad_task_settings_are_one_line(overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compose_cfg(*TASK, *overrides)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_embedded_model_knows_the_capitals_until_it_is_damaged(tmp_path, embedded_dir) -> None:
    frame = _run(tmp_path, *TASK, "degradation.levels=[0,0.8]")
    accuracy = frame.groupby("level_value").correct.mean()
    assert accuracy[0.0] >= 0.7 and accuracy[0.8] < accuracy[0.0]
