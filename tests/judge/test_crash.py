"""A judge killed at any instant, then run again: every record judged exactly once, no journaled judgment paid twice.

The real command in a child process, judging against the real local server (chat_server.py), is killed with
SIGKILL: from outside while a batch is in flight, and from inside (``DEGRADE_FAULT``, see
degrade/records/journal.py) halfway through a journal append and between a view's write and its rename.
The same command then runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from chat_server import serve
from conftest import ROOT, compose_cfg

from degrade.job.runner import run_job

ANSWER = '{"knows_method": true, "applies_method": false, "answer_correct": true}'
RECORDS = 6


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


def command(run: Path, url: str) -> list[str]:
    return [
        sys.executable, str(ROOT / "scripts" / "judge.py"), f"run={run}", "judge/rubric=reasoning",
        "judge/backend=openai", "judge.backend.model=m", f"judge.backend.base_url={url}",
        "judge.backend.batch_size=3", "judge.backend.concurrency=1",
    ]  # fmt: skip


def split_journal(run: Path) -> tuple[list[dict], bytes]:
    """The complete judgments of the journal, and the bytes after its last newline."""
    path = run / "judgments.jsonl"
    data = path.read_bytes() if path.exists() else b""
    *lines, tail = data.split(b"\n")
    return [json.loads(line) for line in lines], tail


@dataclass(frozen=True)
class Kill:
    """One instant a judge is killed at, and how many judgments the journal holds then."""

    name: str
    fault: str | None = None  # DEGRADE_FAULT: the process SIGKILLs itself there
    at_request: int | None = None  # SIGKILL from outside once the server has received this many requests
    journaled: int = 0
    torn: bool = False


# Two batches of three: the first journaled, then the second's first call out; half the second batch's three
# lines written (one whole, then half of the next); all journaled, the JSON view written but not renamed.
KILLS = [
    Kill("batch-in-flight", at_request=4, journaled=3),
    Kill("torn-append", fault="judgments-append:2", journaled=4, torn=True),
    Kill("view-rename", fault="judgments-views:1", journaled=RECORDS),
]


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS, ids=[k.name for k in KILLS])
def test_a_killed_judge_resumes_and_judges_every_record_exactly_once(iq_run, tmp_path, kill: Kill) -> None:
    run = Path(shutil.copytree(iq_run, tmp_path / "run"))
    server = serve(lambda body: ANSWER, delay=0.2)
    env = {**os.environ, "DEGRADE_FAULT": kill.fault or ""}
    log = tmp_path / "killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command(run, server.url), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if kill.at_request is not None:
        deadline = time.monotonic() + 120
        while len(server.requests) < kill.at_request and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    status = proc.wait(timeout=120)
    assert status == -signal.SIGKILL, log.read_text()

    judged, torn = split_journal(run)
    journaled = len(judged)
    assert journaled == kill.journaled and bool(torn) == kill.torn
    if kill.name == "view-rename":
        assert (run / ".judgments.json.tmp").exists() and not (run / "judgments.json").exists()
    paid = len(server.requests)

    done = subprocess.run(command(run, server.url), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{journaled} already judged, {RECORDS - journaled} to judge" in done.stdout
    assert len(server.requests) - paid == RECORDS - journaled  # a call only for what the journal lacked

    judgments, tail = split_journal(run)
    keys = [(j["prompt_id"], j["level_value"], j["rubric"], j["judge_hash"]) for j in judgments]
    assert tail == b"" and len(keys) == len(set(keys)) == RECORDS
    assert [p.read_bytes() for p in run.glob("judgments.jsonl.torn-*")] == ([torn] if kill.torn else [])
    assert len(json.loads((run / "judgments.json").read_text())) == RECORDS
    assert len(pd.read_parquet(run / "judgments.parquet")) == RECORDS
    assert not list(run.glob(".judgments.*.tmp"))
