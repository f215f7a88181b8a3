"""The judge's rubrics, answer checks, sampling, refusals, and the local backend end to end on the embedded model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import CONF, ROOT, compose_cfg

from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.judge.config import compose_judge_config
from degrade.judge.frame import cohen_kappa, judgments_frame
from degrade.judge.rubric import InvalidAnswer, json_schema, parse_answer
from degrade.judge.runner import judge_run
from degrade.judge.select import select

RUBRICS = sorted(p.stem for p in (CONF / "judge" / "rubric").glob("*.yaml"))


def rubric(name: str):
    return compose_judge_config("run=x", f"judge/rubric={name}").judge.rubric


def test_the_studys_rubrics_compose_with_their_fields() -> None:
    assert set(RUBRICS) >= {"affect", "discourse", "language", "personality", "picture_units", "reasoning"}
    fields = {name: [f.name for f in rubric(name).fields] for name in RUBRICS}
    assert fields["language"] == ["grammar", "syntactic_complexity", "lexical_richness", "coherence", "conciseness"]
    assert fields["reasoning"] == ["knows_method", "applies_method", "answer_correct"]
    assert fields["personality"] == ["openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"]
    assert len(fields["picture_units"]) == 23 and {f.type for f in rubric("picture_units").fields} == {"bool"}
    assert rubric("reasoning").applies_to == ["iq"] and rubric("language").applies_to is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("The grammar is fine.", "not a JSON object"),
        ("[1, 2]", "not an object"),
        ('{"grammar": 4}', '"syntactic_complexity" is missing'),
        ('{"grammar": "4", "syntactic_complexity": 3, "lexical_richness": 3, "coherence": 3, "conciseness": 3}',
         '"grammar" must be an integer'),
        ('{"grammar": 4.5, "syntactic_complexity": 3, "lexical_richness": 3, "coherence": 3, "conciseness": 3}',
         '"grammar" must be an integer'),
        ('{"grammar": 6, "syntactic_complexity": 3, "lexical_richness": 3, "coherence": 3, "conciseness": 3}',
         '"grammar" is 6, outside 1–5'),
        ('{"grammar": true, "syntactic_complexity": 3, "lexical_richness": 3, "coherence": 3, "conciseness": 3}',
         '"grammar" must be an integer'),
    ],
)  # fmt: skip
def test_an_answer_breaking_the_schema_is_refused_never_coerced(text: str, problem: str) -> None:
    with pytest.raises(InvalidAnswer, match=problem):
        parse_answer(text, rubric("language"))


def test_a_valid_answer_in_a_fence_or_prose_is_read_with_its_types() -> None:
    text = 'Sure!\n```json\n{"knows_method": true, "applies_method": false, "answer_correct": true, "x": 1}\n```'
    expected = {"knows_method": True, "applies_method": False, "answer_correct": True}
    assert parse_answer(text, rubric("reasoning")) == expected
    with pytest.raises(InvalidAnswer, match='"answer_correct" must be true or false, not 1'):
        parse_answer('{"knows_method": true, "applies_method": true, "answer_correct": 1}', rubric("reasoning"))
    schema = json_schema(rubric("affect"))
    assert schema["properties"]["valence"] == {"type": "integer", "minimum": -3, "maximum": 3}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("judge.sample=2.5", "judge.sample"),
        ("judge.sample=0", "judge.sample"),
        ("judge.backend.name=foo", "judge.backend.name"),
        ("judge/backend=openai", "judge.backend.model"),
        ("judge.rubric.fields=[]", "judge.rubric.fields"),
        ("judge.rubric.fields.0.min=9", "judge.rubric.fields.grammar"),
        ("judge.backend.json_mode=schema", "judge.backend.json_mode"),  # an openai mode, not a local one
        ("judge.backend.json_mode=grammar", "judge.backend.json_mode"),
    ],
)
def test_bad_input_names_its_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_judge_config("run=x", override)
    assert str(info.value).startswith(key), str(info.value)


def test_cohen_kappa_matches_the_textbook_value() -> None:
    # 50 items: both yes 20, judge yes/rule no 5, judge no/rule yes 10, both no 15 -> po 0.7, pe 0.5, kappa 0.4
    judge = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    rule = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(judge, rule)["kappa"] == pytest.approx(0.4)
    assert cohen_kappa([1, 1], [1, 1])["kappa"] is None  # one label only: chance agreement is 1


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real IQ run of the tiny random model: 4 prompts × 2 levels."""
    out = tmp_path_factory.mktemp("judge") / "run"
    cfg = compose_cfg(
        "model=tiny_random", "experiment=iq", "experiment.limit=4", "generation.max_new_tokens=4",
        "degradation.levels=[0,0.1]",
    )  # fmt: skip
    run_job(cfg, out)
    return out


def test_a_sample_is_per_cell_seeded_and_nested(run_dir) -> None:
    from degrade.records.collect import collect

    records, reasoning = collect(run_dir), rubric("reasoning")
    picked = {n: select(records, reasoning, n, 0) for n in (1, 2, 0.5, None)}
    assert [len(picked[n]) for n in (1, 2, 0.5, None)] == [2, 4, 4, 8]
    ids = {n: {(i.record["level_value"], i.record["prompt_id"]) for i in picked[n]} for n in picked}
    assert ids[1] < ids[2] == ids[0.5] < ids[None]  # a larger sample holds a smaller one
    assert {lv for lv, _ in ids[1]} == {0.0, 0.1}  # one per cell
    assert ids[1] != {(i.record["level_value"], i.record["prompt_id"]) for i in select(records, reasoning, 1, 7)}
    assert select(records, rubric("picture_units"), None, 0) == []  # applies to cookie_theft only


def test_dry_run_prints_calls_tokens_and_time_and_writes_nothing(run_dir, caplog) -> None:
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    caplog.set_level("INFO")
    cfg = compose_judge_config(
        f"run={run_dir}", "judge/rubric=reasoning", "judge/backend=openai", "judge.backend.model=m",
        "judge.dry_run=true", "judge.sample=1",
    )  # fmt: skip
    judge_run(cfg)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("dry run"))
    assert line.startswith("dry run: 2 calls") and "prompt tokens" in line and "completion tokens" in line
    assert "assuming 30 tokens/s per request, 4 at once" in line
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_the_command_refuses_a_dir_without_records_in_one_line(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "judge.py"), f"run={tmp_path}", "judge.sample=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "no records found" in errors[0] and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["constrained", "prompt"])
def test_local_backend_end_to_end_on_the_embedded_model(run_dir, tmp_path, mode) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    overrides = [
        f"run={run}", "judge/rubric=reasoning", "judge.sample=1", "judge.backend.max_tokens=40",
        f"judge.backend.json_mode={mode}",
    ]  # fmt: skip
    summary = judge_run(compose_judge_config(*overrides))
    assert summary.judged == 2 and summary.unanswered == 0
    if mode == "constrained":  # usable by construction: no re-ask, no failure
        assert (summary.ok, summary.retried, summary.failed) == (2, 0, 0)
    table = pd.read_parquet(run / "judgments.parquet")
    assert len(table) == 2 and set(table["status"]) <= {"ok", "failed"}
    assert (table["judge_model"] == "smollm2-135m-instruct").all() and (table["judge_backend"] == "local").all()
    assert table["raw"].str.startswith('{"knows_method":').all()  # the prefill, kept in the raw text
    ok = table[table["status"] == "ok"]
    assert all(isinstance(v, bool) for v in ok["reasoning_answer_correct"])
    assert table[table["status"] == "failed"]["error"].notna().all()
    assert json.loads((run / "judgments.json").read_text())[0]["judge_settings"]["temperature"] == 0
    frame = judgments_frame(run)
    assert frame["judge_reasoning_status"].notna().sum() == 2
    again = judge_run(compose_judge_config(*overrides))  # nothing new: the model is not even loaded
    assert (again.skipped, again.judged) == (2, 0)
