"""The openai backend against a real HTTP server speaking the chat-completions protocol (tests/judge/chat_server.py).

Scripted answers: 429, 500, a dropped connection, malformed JSON and schema-breaking answers; the
key from the environment and never written; response_format refused and dropped. Kills and resumes are
in test_crash.py, misbehaving servers and dirs in test_judge_faults.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from chat_server import DROP, serve
from conftest import ROOT, compose_cfg

from degrade.job.runner import run_job
from degrade.judge.config import compose_judge_config
from degrade.judge.frame import agreement, judgments_frame
from degrade.judge.runner import judge_run

ANSWER = '{"knows_method": true, "applies_method": false, "answer_correct": true}'


@pytest.fixture(scope="session")
def iq_run(tmp_path_factory) -> Path:
    """A real IQ run of the tiny random model: 3 prompts × 2 levels (6 records)."""
    out = tmp_path_factory.mktemp("iq") / "run"
    cfg = compose_cfg(
        "model=tiny_random", "experiment=iq", "experiment.limit=3", "generation.max_new_tokens=4",
        "degradation.levels=[0,0.1]",
    )  # fmt: skip
    run_job(cfg, out)
    return out


@pytest.fixture
def run_dir(iq_run, tmp_path) -> Path:
    shutil.copytree(iq_run, tmp_path / "run")
    return tmp_path / "run"


def judge(run: Path, server, *overrides: str):
    cfg = compose_judge_config(
        f"run={run}", "judge/rubric=reasoning", "judge/backend=openai", "judge.backend.model=test-judge",
        f"judge.backend.base_url={server.url}", "judge.backend.backoff_s=0.01", "judge.backend.concurrency=1",
        *overrides,
    )  # fmt: skip
    return judge_run(cfg)


def journal(run: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(run.rglob("judgments.jsonl")) for line in p.read_text().splitlines()]


def test_429_500_dropped_connection_and_bad_answers_are_retried_then_recorded(run_dir) -> None:
    server = serve(lambda body: ANSWER)
    server.script = [429, 500, DROP, "not json at all", ANSWER]  # first record: 3 transport retries, 1 re-ask
    server.script += ['{"knows_method": 3}', "```json\n{broken", '{"knows_method": true}']  # second: fails
    summary = judge(run_dir, server, "judge.backend.batch_size=1")  # one record at a time: the script's order
    assert (summary.ok, summary.failed, summary.retried, summary.unanswered) == (5, 1, 1, 0)
    table = pd.read_parquet(run_dir / "judgments.parquet")
    assert len(table) == 6 and set(table["rubric"]) == {"reasoning"}
    first = table[table["raw_previous"].map(len) == 1].iloc[0]
    assert (first["status"], first["attempts"], first["transport_retries"]) == ("ok", 2, 3)
    assert list(first["raw_previous"]) == ["not json at all"]
    failed = table[table["status"] == "failed"].iloc[0]
    assert failed["raw"] == '{"knows_method": true}' and failed["error"] == '"applies_method" is missing'
    assert list(failed["raw_previous"]) == ['{"knows_method": 3}', "```json\n{broken"]
    assert pd.isna(failed["reasoning_answer_correct"])  # never coerced, never guessed
    ok = table[table["status"] == "ok"]
    assert ok["reasoning_answer_correct"].tolist() == [True] * 5
    assert ok["reasoning_applies_method"].tolist() == [False] * 5
    # The re-ask shows the judge its answer and what was wrong with it.
    reask = server.requests[4]["body"]["messages"]
    assert reask[-2] == {"role": "assistant", "content": "not json at all"}
    assert "not a JSON object" in reask[-1]["content"]
    assert len(server.requests) == 5 + 3 + 4
    assert json.loads((run_dir / "judgments.json").read_text())[0]["rubric"] == "reasoning"

    before = len(server.requests)
    again = judge(run_dir, server)
    assert (again.skipped, again.judged, len(server.requests)) == (6, 0, before)  # nothing judged twice
    retried = judge(run_dir, server, "judge.retry_failed=true")
    assert (retried.judged, retried.ok, len(server.requests)) == (1, 1, before + 1)
    assert (pd.read_parquet(run_dir / "judgments.parquet")["status"] == "ok").all()


def test_key_from_the_environment_is_sent_and_never_written(run_dir, monkeypatch) -> None:
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("JUDGE_TEST_KEY", secret)
    server = serve(lambda body: ANSWER, delay=0.3)  # answers take a while: the streams overlap even on a busy CPU
    judge(run_dir, server, "judge.backend.api_key_env=JUDGE_TEST_KEY", "judge.backend.concurrency=3")
    assert {r["auth"] for r in server.requests} == {f"Bearer {secret}"}
    assert 1 < server.max_in_flight <= 3
    assert not [p for p in run_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_response_format_is_requested_and_dropped_when_the_server_refuses_it(run_dir) -> None:
    server = serve(lambda body: ANSWER)
    judge(run_dir, server, "judge.sample=1")
    schema = server.requests[0]["body"]["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["knows_method", "applies_method", "answer_correct"]
    assert server.requests[0]["body"]["temperature"] == 0

    refusing = serve(lambda body: ANSWER)
    refusing.refuse_response_format = True
    summary = judge(run_dir, refusing, "judge.retry_failed=true", "judge.seed=1", "judge.sample=0.9")
    assert summary.ok == 6 - 2  # 3 of 3 per cell (0.9 rounds up), less the 2 judged above
    assert "response_format" in refusing.requests[0]["body"]
    assert all("response_format" not in r["body"] for r in refusing.requests[1:])


def test_a_server_that_keeps_failing_records_nothing_and_the_command_exits_1(run_dir) -> None:
    server = serve(lambda body: 503)
    cmd = [
        sys.executable, str(ROOT / "scripts" / "judge.py"), f"run={run_dir}", "judge/rubric=reasoning",
        "judge/backend=openai", "judge.backend.model=m", f"judge.backend.base_url={server.url}",
        "judge.backend.retries=1", "judge.backend.backoff_s=0.01", "judge.sample=1",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 records got no answer from the server (last: gave up after 1 retries: 503" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert len(server.requests) == 4 and not journal(run_dir)


def test_agreement_with_the_rule_based_correct(run_dir) -> None:
    records = pd.read_parquet(run_dir / "records.parquet")
    correct = {(p, o): c for p, o, c in zip(records["prompt_text"], records["output"], records["correct"])}
    first = records["prompt_text"].iloc[0]

    def rule_like(body):  # agrees with the rules except on the first prompt (at both levels)
        prompt, output = body["messages"][1]["content"].removeprefix("The prompt:\n").split("\n\nThe answer:\n", 1)
        verdict = bool(correct[prompt, output]) != (prompt == first)
        return json.dumps({"knows_method": True, "applies_method": True, "answer_correct": verdict})

    judge(run_dir, serve(rule_like))
    frame = judgments_frame(run_dir)
    assert len(frame) == 6 and str(frame["judge_reasoning_answer_correct"].dtype) == "Int64"
    assert (frame["judge_reasoning_status"] == "ok").all()
    result = agreement(frame)
    assert result["n"] == 6 and result["observed"] == pytest.approx(4 / 6)
    assert set(result["by_level"]) == {0.0, 0.1}


def test_the_report_plots_the_ratings_and_states_the_agreement(run_dir) -> None:
    from degrade.analysis.report import write_report

    judge(run_dir, serve(lambda body: ANSWER))
    paths = write_report(run_dir)
    names = {p.name for p in paths["plots"]}
    assert {"judge_reasoning_answer_correct.png", "judge_reasoning_knows_method.png"} <= names
    summary = paths["summary_md"].read_text(encoding="utf-8")
    rule_yes = int(pd.read_parquet(run_dir / "records.parquet")["correct"].sum())
    assert f"on 6 records, observed {rule_yes / 6:.0%}" in summary  # the judge said correct on all 6
    stats = pd.read_csv(paths["stats_csv"])
    assert "judge_reasoning_answer_correct" in set(stats["measure"])
