"""The judge rates the records of the original study's result files: judgments beside each file, the file only read.

A real chat-completions server (tests/judge/chat_server.py) answers; the files have the fields and types of
the study's released code (our own words in the prompts and outputs).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from chat_server import serve
from conftest import ROOT

from degrade.errors import ConfigError
from degrade.judge.config import compose_judge_config
from degrade.judge.frame import add_judgments, judgments_frame
from degrade.judge.runner import judge_run
from degrade.records.collect import collect

ANSWER = json.dumps(
    {"grammar": 4, "syntactic_complexity": 3, "lexical_richness": 3, "coherence": 5, "conciseness": 4, "notes": ""}
)
NAME = "outputs_uni_quant_gemma-3-4b-it_2025_10_20_dreams_it.json"
TEXTS = ["Tell me about a dream you had.", "Describe a nightmare."]


def study_file(path: Path, levels: tuple[float, ...] = (1024, 4)) -> Path:
    """A result file as the study's released code wrote it: 2 prompts × the levels, prompt + answer in output."""
    records = [
        {
            "timestamp": "2025-10-20T10:00:00.123456",
            "model_name": "google/gemma-3-4b-it",
            "config_name": "dreams_it__quant_attn",
            "prompt_group": "dreams",
            "prompt_id": pid,
            "prompt_text": text,
            "output": f"user\n{text}\nmodel\nI walked along a beach at night {level:g} times. The sea was warm.",
            "std_dev": level,
            "level_value": level,
            "level_index": index,
            "repeat_index": 0,
            "param_group_name": "attn_only",
            "degradation_method": "uni_quant",
            "seed": 42,
            "gen_params": {"temperature": 1.0, "do_sample": True, "max_new_tokens": 350},
            "duration": 0.5,
            "tokens": 41,
        }
        for index, level in enumerate(levels)
        for pid, text in enumerate(TEXTS, start=1)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def judge(run: Path, url: str):
    return judge_run(
        compose_judge_config(
            f"run={run}",
            "judge/rubric=study_text",
            "judge/backend=openai",
            "judge.backend.model=test-judge",
            f"judge.backend.base_url={url}",
            "judge.backend.concurrency=1",
        )  # fmt: skip
    )


def state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_a_study_file_is_judged_beside_itself_and_left_untouched(tmp_path) -> None:
    file = study_file(tmp_path / "old" / NAME)
    before = state(file)
    server = serve(lambda body: ANSWER)

    done = judge(file, server.url)

    assert (done.ok, done.failed, done.unanswered) == (4, 0, 0)
    assert state(file) == before
    home = tmp_path / "old" / NAME.replace(".json", ".judgments")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted([NAME, home.name])
    lines = (home / "judgments.jsonl").read_text().splitlines()
    assert len(lines) == 4
    # The judge saw the answer alone: the study's output echoes the prompt, which the record cuts off.
    assert all("user\n" not in r["messages"][-1]["content"] for r in (q["body"] for q in server.requests))

    # Nothing is paid twice: the same file, or the dir holding it, finds every judgment.
    for run in (file, tmp_path / "old", tmp_path):
        again = judge(run, server.url)
        assert (again.skipped, again.judged) == (4, 0), run
    assert len(server.requests) == 4
    assert state(file) == before

    # The report's join, from the file, from its dir, and from several paths at once.
    for frame in (judgments_frame(file), judgments_frame(tmp_path / "old"), judgments_frame(tmp_path)):
        assert frame["judge_study_text_coherence"].tolist() == [5] * 4
    other = study_file(tmp_path / "other" / NAME, levels=(8,))
    joined = add_judgments(collect([file, other]), [file, other])
    rated = joined.groupby("level_value")["judge_study_text_grammar"].apply(lambda s: s.notna().sum()).to_dict()
    assert rated == {4.0: 2, 8.0: 0, 1024.0: 2}


def test_the_report_over_a_judged_study_file_and_a_dir_shows_its_ratings(tmp_path) -> None:
    file = study_file(tmp_path / "old" / NAME)
    judge(file, serve(lambda body: ANSWER).url)
    other = study_file(tmp_path / "more" / NAME.replace("2025_10_20", "2025_10_21"), levels=(16,))
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), str(file), str(other.parent), "--out", "rep"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_parquet(tmp_path / "rep" / "all_records.parquet")) == 6
    # a plot per rating the judge gave, drawn from the four records it rated
    assert (tmp_path / "rep" / "judge_study_text_coherence.png").exists()
    assert "judge_study_text_coherence" in (tmp_path / "rep" / "stats.md").read_text()


@pytest.mark.parametrize("name", ["records.jsonl", "outputs_x.json"])
def test_a_file_of_a_job_dir_is_refused_with_its_dir_named(tmp_path, name) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "records.jsonl").write_text("")
    (job / name).write_text("[]")
    with pytest.raises(ConfigError) as err:
        judge(job / name, "http://127.0.0.1:9")
    assert str(err.value) == f"run: {job / name} is a file of the job dir {job}; give the dir (judgments go in it)"
    assert sorted(p.name for p in job.iterdir()) == sorted({"records.jsonl", name})
