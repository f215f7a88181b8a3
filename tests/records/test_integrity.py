"""The journal is the truth, and every record says which configuration made it; force_run keeps every result.

Real jobs on the tiny random model, their files read back from disk: a job dir that lost its journal keeps its
records, a dir whose metadata is lost is not taken for another configuration's, and force_run sets aside the
records with everything made from them, in a dir of its own every time.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.job.runner import json_name, run_job
from degrade.judge.frame import judgments_frame
from degrade.judge.store import JudgmentStore, output_hash
from degrade.records.contract import KEY_FIELDS
from degrade.records.store import RecordStore

BASE = ("model=tiny_random", "experiment.limit=3", "generation.max_new_tokens=2")
FOUR_LEVELS = "degradation.levels=[0,0.1,0.2,0.3]"


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with the hash of its bytes."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in path.rglob("*") if p.is_file()
    }


def journal_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def one_error_line(result) -> str:
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert result.returncode == 2 and "Traceback" not in output and len(errors) == 1, output
    return errors[0]


@pytest.fixture
def twelve(tmp_path: Path) -> Path:
    """A finished job: 4 levels × 3 prompts = 12 records."""
    run_job(compose_cfg(*BASE, FOUR_LEVELS), tmp_path)
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 12
    return tmp_path


# --- the journal is the truth ----------------------------------------------------------------------------


def test_a_dir_left_with_only_its_parquet_keeps_every_record(twelve: Path) -> None:
    """Journal and JSON view deleted, then a rerun with one level: the Parquet's 12 records rebuild the journal."""
    (twelve / "records.jsonl").unlink()
    (twelve / json_name(compose_cfg(*BASE))).unlink()
    summary = run_job(compose_cfg(*BASE, "degradation.levels=[0]"), twelve)
    assert summary.generated == 0
    assert len(pd.read_parquet(twelve / "records.parquet")) == 12
    assert len(journal_lines(twelve)) == 12


@pytest.mark.parametrize("metadata", ["deleted", "unreadable"])
def test_records_of_other_settings_are_refused_when_metadata_cannot_say(twelve: Path, metadata: str) -> None:
    """Without a readable metadata.json the records' own settings_hash still tells another configuration."""
    meta = twelve / "metadata.json"
    if metadata == "deleted":
        meta.unlink()
    else:
        meta.write_bytes(b'{"status": "runn')
    before = tree(twelve)
    result = run_cli(*BASE, "generation.max_new_tokens=3", "degradation.levels=[0]", f"hydra.run.dir={twelve}")
    line = one_error_line(result)
    assert "12 records were made with other settings" in line and "metadata.json" in line and "force_run" in line
    assert tree(twelve) == before


def test_an_unreadable_metadata_is_kept_aside_when_the_records_are_this_runs(twelve: Path) -> None:
    meta = twelve / "metadata.json"
    meta.write_bytes(b"\x00not json")
    summary = run_job(compose_cfg(*BASE, "degradation.levels=[0,0.1,0.2,0.3,0.4]"), twelve)
    assert (summary.generated, summary.skipped) == (3, 12)
    kept = list(twelve.glob("metadata.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"\x00not json"
    written = json.loads(meta.read_text(encoding="utf-8"))
    assert written["status"] == "done"
    assert {r["settings_hash"] for r in journal_lines(twelve)} == {written["settings_hash"]}


# --- force_run keeps every earlier result ----------------------------------------------------------------


def test_two_set_asides_in_one_second_keep_both(tmp_path: Path) -> None:
    """force_run twice within a second: the original journal and the first force_run's are both kept."""
    store = RecordStore(tmp_path, "out.json")
    for _ in range(20):  # until both fall in one second (each takes milliseconds)
        for old in tmp_path.glob("previous-*"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        second = time.strftime("%S")
        (tmp_path / "records.jsonl").write_bytes(b"original\n")
        first = store.set_aside()
        (tmp_path / "records.jsonl").write_bytes(b"first force_run\n")
        again = store.set_aside()
        if time.strftime("%S") == second:
            break
    assert first != again
    kept = sorted((p / "records.jsonl").read_bytes() for p in tmp_path.glob("previous-*"))
    assert kept == [b"first force_run\n", b"original\n"]


def judge_one(job_dir: Path) -> None:
    """One judgment of the job's first record, written by the judge's own store."""
    record = journal_lines(job_dir)[0]
    settings = {"rubric": {"fields": [{"name": "score", "type": "int"}]}}
    judgment = {k: record[k] for k in KEY_FIELDS}
    judgment.update(rubric="coherence", judge_hash="j1", status="ok", ratings={"score": 4}, judge_settings=settings)
    judgment.update(timestamp="2026-01-01T00:00:00+00:00", output_hash=output_hash(record["output"]))
    store = JudgmentStore(job_dir)
    store.append([judgment])
    store.write_views()


def test_force_run_takes_the_judgments_and_the_report_with_the_records(twelve: Path) -> None:
    judge_one(twelve)
    (twelve / "report").mkdir()
    (twelve / "report" / "summary.md").write_text("old\n", encoding="utf-8")
    assert judgments_frame(twelve)["judge_coherence_score"].notna().sum() == 1
    judged = {p.name: p.read_bytes() for p in twelve.glob("judgments.*")}
    assert set(judged) == {"judgments.jsonl", "judgments.json", "judgments.parquet"}

    run_job(compose_cfg(*BASE, FOUR_LEVELS, "force_run=true"), twelve)

    (aside,) = twelve.glob("previous-*")
    assert {p.name: p.read_bytes() for p in aside.glob("judgments.*")} == judged
    assert (aside / "report" / "summary.md").read_text(encoding="utf-8") == "old\n"
    assert not list(twelve.glob("judgments.*")) and not (twelve / "report").exists()
    assert "judge_coherence_score" not in judgments_frame(twelve)  # no old rating on a new output
