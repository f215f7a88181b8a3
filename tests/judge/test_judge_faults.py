"""The judge against servers and dirs that misbehave: every test a real HTTP server (chat_server.py) and real files.

A dir it cannot write, a file for ``run=`` and a second judge on the same dir are refused before the first
call; a reply that is not a chat completion is a failed judgment with its text kept; ``timeout_s`` bounds a
whole request; the key is never printed or stored; a judgment belongs to the output it rated.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from chat_server import Reply, completion, serve
from conftest import ROOT, compose_cfg

from degrade.errors import DegradeError
from degrade.job.runner import run_job
from degrade.judge.config import compose_judge_config
from degrade.judge.frame import judgments_frame
from degrade.judge.runner import judge_run

ANSWER = '{"knows_method": true, "applies_method": false, "answer_correct": true}'
SECRET = "sk-echo-0123456789abcdef"


@pytest.fixture(scope="module")
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
    import shutil

    shutil.copytree(iq_run, tmp_path / "run")
    return tmp_path / "run"


def overrides(run: Path, url: str, *more: str) -> list[str]:
    return [
        f"run={run}", "judge/rubric=reasoning", "judge/backend=openai", "judge.backend.model=test-judge",
        f"judge.backend.base_url={url}", "judge.backend.backoff_s=0.01", "judge.backend.concurrency=1", *more,
    ]  # fmt: skip


def judge(run: Path, server, *more: str):
    return judge_run(compose_judge_config(*overrides(run, server.url, *more)))


def command(run: Path, url: str, *more: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "judge.py"), *overrides(run, url, *more)]


def judge_cli(run: Path, url: str, *more: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``scripts/judge.py`` as a user runs it, ``env`` added to the environment."""
    environ = {**os.environ, **(env or {})}
    return subprocess.run(command(run, url, *more), cwd=ROOT, capture_output=True, text=True, timeout=300, env=environ)


def files(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if "[ERROR]" in line]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` made unwritable: its mode for a user, the immutable attribute for root (whom modes do not stop)."""
    root = os.geteuid() == 0
    if root:
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    else:
        path.chmod(0o555)
        made = True
    try:
        try:
            (path / ".probe").write_bytes(b"")
            (path / ".probe").unlink()
            writable = True
        except OSError:
            writable = False
        if not made or writable:
            pytest.skip("this filesystem cannot make a dir read-only for this user")
        yield
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        else:
            path.chmod(0o755)


# --- 12. it never pays for a call it cannot keep ------------------------------------------------------------


def test_a_dir_it_cannot_write_is_refused_before_any_call(run_dir) -> None:
    server = serve(lambda body: ANSWER)
    before = files(run_dir)
    with read_only(run_dir):
        done = judge_cli(run_dir, server.url)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert f"run: {run_dir} is not writable" in line, line
    assert "Traceback" not in done.stdout + done.stderr
    assert server.requests == [] and files(run_dir) == before


def test_run_given_a_file_is_refused_before_any_call(run_dir) -> None:
    server = serve(lambda body: ANSWER)
    before = files(run_dir)
    done = judge_cli(run_dir / "records.jsonl", server.url)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert f"run: {run_dir / 'records.jsonl'} is a file" in line, line
    assert "Traceback" not in done.stdout + done.stderr
    assert server.requests == [] and files(run_dir) == before


def test_a_second_judge_on_a_dir_being_judged_stops_before_any_call(run_dir) -> None:
    server = serve(lambda body: ANSWER)
    server.gate = threading.Event()  # the first judge's first request waits until the second has come and gone
    cmd = command(run_dir, server.url, "judge.backend.batch_size=1", "judge.backend.api_key_env=JUDGE_TEST_KEY")
    env = {**os.environ, "JUDGE_TEST_KEY": "first-judge-key"}
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while not server.requests and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.requests, "the first judge sent no request"
        second = judge_cli(
            run_dir, server.url, "judge.backend.batch_size=1", "judge.backend.api_key_env=JUDGE_TEST_KEY",
            env={"JUDGE_TEST_KEY": "second-judge-key"},
        )  # fmt: skip
        server.gate.set()
        assert first.wait(timeout=120) == 0
    finally:
        server.gate.set()
        first.kill()
    assert second.returncode == 2, second.stdout + second.stderr
    [line] = errors(second)
    assert f"run: {run_dir} is being written by another process" in line, line
    assert {r["auth"] for r in server.requests} == {"Bearer first-judge-key"}  # the second paid for nothing
    assert len(server.requests) == 6
    journal = [json.loads(line) for line in (run_dir / "judgments.jsonl").read_text().splitlines()]
    assert len({(j["prompt_id"], j["level_value"]) for j in journal}) == len(journal) == 6


# --- 13. a malformed reply is a failed judgment, not a crash ------------------------------------------------


def test_replies_that_are_not_chat_completions_are_failed_judgments_with_their_text(run_dir) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    server = serve(lambda body: ANSWER)
    server.script = [
        Reply("this is not json"),
        Reply('{"object": "chat.completion"}'),  # no choices
        Reply('{"choices": []}'),
        nested,  # the answer itself nested past any parser's depth
        Reply('{"error": {"message": "slow down"}}', status=429, headers={"Retry-After": "-1"}),
        ANSWER,
        Reply('{"error": {"message": "slow down"}}', status=429, headers={"Retry-After": "nan"}),
        ANSWER,
    ]
    summary = judge(run_dir, server, "judge.backend.batch_size=1", "judge.invalid_retries=0")
    assert (summary.ok, summary.failed, summary.unanswered) == (2, 4, 0)
    table = pd.read_parquet(run_dir / "judgments.parquet")
    failed = table[table["status"] == "failed"]
    assert failed["raw"].tolist() == ["this is not json", '{"object": "chat.completion"}', '{"choices": []}', nested]
    assert failed["error"].tolist()[:3] == [
        "the server's reply is not a chat completion: not JSON",
        "the server's reply is not a chat completion: no choices",
        "the server's reply is not a chat completion: no choices",
    ]
    assert failed["error"].tolist()[3] == "the reply is not a JSON object"
    assert table[table["status"] == "ok"]["transport_retries"].tolist() == [1, 1]  # each 429 waited, then answered

    server.script = [Reply('{"choices": ' + nested + "}")]  # the whole reply nested too deep to read
    again = judge(run_dir, server, "judge.retry_failed=true", "judge.invalid_retries=0", "judge.backend.batch_size=1")
    assert (again.judged, again.ok, again.failed) == (4, 3, 1)
    table = pd.read_parquet(run_dir / "judgments.parquet")
    assert table[table["status"] == "failed"]["raw"].tolist() == ['{"choices": ' + nested + "}"]


# --- 14. timeout_s is a deadline ----------------------------------------------------------------------------


def test_timeout_s_bounds_a_whole_request_against_a_server_trickling_bytes(run_dir) -> None:
    server = serve(lambda body: Reply(completion(ANSWER), per_byte_s=0.05))  # a reply takes ~20 s, a byte at a time
    start = time.monotonic()
    summary = judge(
        run_dir, server, "judge.sample=1", "judge.backend.timeout_s=1", "judge.backend.retries=1",
        "judge.backend.concurrency=2",
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert (summary.judged, summary.unanswered) == (0, 2)
    assert len(server.requests) == 4  # two records, each tried twice
    assert elapsed < 6, f"two rounds of 1 s requests took {elapsed:.1f} s"
    assert "no complete reply within 1 s" in summary.errors[-1]
    assert not (run_dir / "judgments.jsonl").exists() or not (run_dir / "judgments.jsonl").read_bytes()


# --- 15. the key never leaves the environment ---------------------------------------------------------------


def test_a_server_echoing_the_key_gets_it_on_no_console_and_in_no_file(run_dir) -> None:
    echoing = completion('{"knows_method": true, "applies_method": true, "answer_correct": true, "note": "{auth}"}')
    server = serve(lambda body: Reply(echoing))
    server.script = [Reply('{"error": {"message": "bad key {auth}"}}', status=500)]
    done = judge_cli(
        run_dir, server.url, "judge.backend.api_key_env=JUDGE_TEST_KEY", "judge.backend.retries=0",
        env={"JUDGE_TEST_KEY": SECRET},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert {r["auth"] for r in server.requests} == {f"Bearer {SECRET}"}  # sent, as it must be
    assert SECRET not in done.stdout + done.stderr
    assert "bad key Bearer [redacted]" in done.stdout  # the server's words, the key blacked out
    assert not [p for p, data in files(run_dir).items() if SECRET.encode() in data]
    raws = pd.read_parquet(run_dir / "judgments.parquet")["raw"]
    assert len(raws) == 5 and raws.str.contains("Bearer [redacted]", regex=False).all()


def test_credentials_in_base_url_are_never_printed(run_dir) -> None:
    server = serve(lambda body: Reply('{"error": {"message": "who is {auth}?"}}', status=403))
    url = server.url.replace("http://", "http://judge:url-secret-42@")
    done = judge_cli(run_dir, url, "judge.sample=1")
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = errors(done)
    assert "403" in line and "[redacted]@127.0.0.1" in line and "who is Basic [redacted]?" in line, line
    basic = base64.b64encode(b"judge:url-secret-42").decode()  # how the client sent them
    assert server.requests[0]["auth"] == f"Basic {basic}"
    assert "url-secret-42" not in done.stdout + done.stderr and basic not in done.stdout + done.stderr


def test_an_error_raised_with_the_key_says_it_redacted(run_dir, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    server = serve(lambda body: Reply('{"error": {"message": "forbidden for {auth}"}}', status=403))
    with pytest.raises(DegradeError) as info:
        judge(run_dir, server, "judge.backend.api_key_env=JUDGE_TEST_KEY")
    assert SECRET not in str(info.value) and "forbidden for Bearer [redacted]" in str(info.value)


# --- 16. judgments follow the outputs they rated ------------------------------------------------------------


def test_a_record_with_a_new_output_is_judged_again_and_never_joined_to_the_old_rating(run_dir) -> None:
    def verdict(body):  # calls the new output wrong, every other one right
        wrong = "a new answer" in body["messages"][-1]["content"]
        return json.dumps({"knows_method": True, "applies_method": True, "answer_correct": not wrong})

    server = serve(verdict)
    judge(run_dir, server)
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    changed = json.loads(lines[0])
    changed["output"] = "a new answer"
    (run_dir / "records.jsonl").write_text("\n".join([json.dumps(changed), *lines[1:]]) + "\n")

    frame = judgments_frame(run_dir)
    row = frame[frame["output"] == "a new answer"].iloc[0]
    assert pd.isna(row["judge_reasoning_status"]) and pd.isna(row["judge_reasoning_answer_correct"])
    assert (frame[frame["output"] != "a new answer"]["judge_reasoning_status"] == "ok").all()

    before = len(server.requests)
    again = judge(run_dir, server)
    assert (again.judged, again.skipped, len(server.requests)) == (1, 5, before + 1)
    frame = judgments_frame(run_dir)
    assert frame[frame["output"] == "a new answer"]["judge_reasoning_answer_correct"].tolist() == [0]
    assert frame["judge_reasoning_answer_correct"].sum() == 5 and len(frame) == 6
