"""Durability and bad input: real SIGKILLs at several instants, resume, force_run, memory policy, bad input.

See docs/records.md (journal, views, resume) and docs/configuration.md (memory policy, bad input). Most runs are real
subprocesses of ``scripts/run.py`` on the tiny random model; the records are read back from disk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from conftest import ROOT, compose_cfg, run_cli

from degrade.config.schema import MemoryConfig
from degrade.errors import DegradeError, MemoryCritical
from degrade.generation import text
from degrade.generation.memory import MemoryPolicy, is_out_of_memory
from degrade.job.runner import json_name, run_job
from degrade.records import jobdir
from degrade.records.contract import prompt_hash, to_table
from degrade.records.contract import record_key as key
from degrade.records.jobdir import LOCK
from degrade.records.store import RecordStore

# The small job of most tests: 2 cells × 6 prompts = 12 records in 6 batches of 2.
SMALL = {
    "model": "tiny_random",
    "experiment.limit": "6",
    "degradation.levels": "[0,0.5]",
    "generation.max_batch_size": "2",
    "generation.max_new_tokens": "8",
}
N_RECORDS = 12
JSON_VIEW = "outputs_mult_gauss_tiny-random-llama_dreams.json"
SECRET = "hf_secret_test_value"


# --- helpers ---------------------------------------------------------------------------------


def job_args(out: Path, changes: dict[str, str] | None = None) -> list[str]:
    """The small job's command-line overrides, with ``changes`` applied, and its run dir."""
    return [f"{k}={v}" for k, v in {**SMALL, **(changes or {})}.items()] + [f"hydra.run.dir={out}"]


def small_cfg(*extra: str, batch: int = 8):
    """The small job composed in-process (batches of up to ``batch``), plus ``extra`` overrides."""
    return compose_cfg(
        "model=tiny_random",
        "experiment.limit=6",
        "degradation.levels=[0,0.5]",
        f"generation.max_batch_size={batch}",
        "generation.max_new_tokens=4",
        *extra,
    )


def split_journal(out: Path) -> tuple[list[dict[str, Any]], bytes]:
    """The complete records of ``out``'s journal, and the bytes after its last newline (a torn line)."""
    path = out / "records.jsonl"
    raw = path.read_bytes() if path.exists() else b""
    complete = raw[: raw.rfind(b"\n") + 1]
    return [json.loads(line) for line in complete.splitlines()], raw[len(complete) :]


def journal(out: Path) -> list[dict[str, Any]]:
    records, tail = split_journal(out)
    assert tail == b"", f"the journal ends with a torn line: {tail[:80]!r}"
    return records


def result_bytes(out: Path) -> dict[str, bytes]:
    """Every result file of a job dir: not Hydra's own (``.hydra/``, the log), not the lock."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log" and p.name != LOCK
    }


def assert_complete(out: Path, n: int = N_RECORDS, max_batch: int = 2, old: int = 0) -> list[dict[str, Any]]:
    """Every expected record exactly once, and both views hold exactly the journal's records.

    The first ``old`` records come from the original study's file and lack the measured fields.
    """
    records = journal(out)
    keys = [key(r) for r in records]
    assert len(keys) == len(set(keys)) == n, f"{len(keys)} records, {len(set(keys))} distinct, {n} expected"
    assert json.loads((out / JSON_VIEW).read_text(encoding="utf-8")) == records
    table = pq.read_table(out / "records.parquet")
    assert table.to_pylist() == [{c: r.get(c) for c in table.column_names} for r in records]
    for r in records[old:]:
        assert 0 < r["vram_usage_percent"] <= 100 and 1 <= r["batch_size_effective"] <= max_batch, r
    assert not list(out.glob(".*.tmp")), "a temporary view file was left behind"
    assert json.loads((out / "metadata.json").read_text())["records"] == n
    return records


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """One ``[ERROR]`` line naming every fragment, and no traceback."""
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, output
    assert "Traceback" not in output, output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``scripts/run.py`` started in the background, its output discarded."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The small job run to the end through the CLI, with a (fake) HF_TOKEN in its environment."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run_cli(*job_args(out), env={"HF_TOKEN": SECRET})
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@pytest.fixture
def finished_copy(finished, tmp_path) -> Path:
    """A copy of the finished job dir that a test may run into."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


# --- 1. kill anywhere, then run the same command again -----------------------------------------


@dataclass(frozen=True)
class Kill:
    """One instant at which a running job is killed, and what the kill must have left on disk."""

    name: str
    fault: str | None = None  # DEGRADE_FAULT: the process SIGKILLs itself at that point
    after_seconds: float | None = None  # signal it this long after the start
    after_lines: int | None = None  # signal it once the journal has this many complete lines
    settle: float = 0.0  # then wait this long (so that the signal lands inside the next batch)
    sig: int = signal.SIGKILL
    changes: tuple[tuple[str, str], ...] = ()  # overrides of the small job, for this instant
    left: Callable[[Path, list, bytes], bool] = lambda out, before, tail: True


SLOW = (("generation.max_new_tokens", "32"),)  # batches slow enough to be caught in the middle
KILLS = [
    Kill("early", after_seconds=1.0, left=lambda out, before, tail: not (out / "records.jsonl").exists()),
    Kill("mid-run", after_lines=2, changes=SLOW, left=lambda out, before, tail: 2 <= len(before) < N_RECORDS),
    Kill(
        "view-rename",
        fault="views:2",  # the first cell's Parquet view, written but not renamed
        left=lambda out, before, tail: (
            len(before) == 6 and (out / ".records.parquet.tmp").exists() and not (out / "records.parquet").exists()
        ),
    ),
    Kill(
        "final-views",
        fault="views:3",  # every record journaled, the views still one cell behind
        left=lambda out, before, tail: len(before) == N_RECORDS and len(json.loads((out / JSON_VIEW).read_text())) == 6,
    ),
    Kill(
        "torn-append",
        fault="append:3",  # halfway through the third batch's write
        left=lambda out, before, tail: tail != b"" and len(before) in (4, 5),
    ),
    # Ctrl-C during a batch: not a SIGKILL, so the views are rebuilt at exit and match the journal at once.
    Kill(
        "ctrl-c",
        after_lines=2,
        settle=0.03,
        sig=signal.SIGINT,
        changes=SLOW,
        left=lambda out, before, tail: (
            2 <= len(before) < N_RECORDS and tail == b"" and json.loads((out / JSON_VIEW).read_text()) == before
        ),
    ),
]


def interrupt(out: Path, kill: Kill, args: list[str]) -> int:
    """Run the job and send ``kill.sig`` at ``kill``'s instant; return its exit status."""
    if kill.fault:
        return run_cli(*args, env={"DEGRADE_FAULT": kill.fault}, timeout=120).returncode
    proc, start = cli(*args), time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 120:
        if kill.after_seconds is not None and time.monotonic() - start >= kill.after_seconds:
            break
        if kill.after_lines is not None and len(split_journal(out)[0]) >= kill.after_lines:
            break
        time.sleep(0.01)
    time.sleep(kill.settle)
    assert proc.poll() is None, "the job ended before it could be interrupted"
    proc.send_signal(kill.sig)
    return proc.wait(timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS, ids=[k.name for k in KILLS])
def test_killed_job_resumes_with_every_record_once(tmp_path: Path, kill: Kill) -> None:
    """Killed at ``kill``, the same command finishes the job; what was written before is kept as it was."""
    out = tmp_path / "run"
    args = job_args(out, dict(kill.changes))
    status = interrupt(out, kill, args)
    assert status == (-signal.SIGKILL if kill.sig == signal.SIGKILL else 130)  # Ctrl-C: the shell's 128 + 2
    before, tail = split_journal(out)
    assert kill.left(out, before, tail), f"the kill landed elsewhere: {len(before)} lines, tail {tail[:40]!r}"

    again = run_cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{N_RECORDS} generations, {N_RECORDS - len(before)} to run" in again.stdout, again.stdout
    records = assert_complete(out)
    assert records[: len(before)] == before, "records written before the kill changed"
    torn = list(out.glob("records.jsonl.torn-*"))
    if tail:
        assert [p.read_bytes() for p in torn] == [tail], "the torn bytes were not kept aside byte for byte"
    else:
        assert torn == []


@pytest.mark.slow
def test_ctrl_c_right_after_a_journal_write_leaves_views_matching_the_journal(tmp_path: Path, monkeypatch) -> None:
    """A Ctrl-C that lands just after a batch reached the journal: the views rebuilt at exit still hold it."""
    real, calls = RecordStore._append_bytes, []

    def append_then_interrupt(self, payload: bytes) -> None:
        real(self, payload)
        calls.append(len(payload))
        if len(calls) == 2:  # the signal arrives while the second batch's fsync returns
            raise KeyboardInterrupt

    monkeypatch.setattr(RecordStore, "_append_bytes", append_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_job(small_cfg(batch=2), tmp_path)
    records = journal(tmp_path)
    assert len(records) == 4
    assert len(json.loads((tmp_path / JSON_VIEW).read_text(encoding="utf-8"))) == len(records), (
        "the JSON view written at exit lacks records that are in the journal"
    )
    assert json.loads((tmp_path / "metadata.json").read_text())["records"] == len(records)


# --- 2. RecordStore: torn lines, unreadable lines, unreadable views, the original study's file ----------


def fake_records(n: int) -> list[dict[str, Any]]:
    """``n`` minimal records of one cell (the key fields and an output)."""
    return [
        {
            "experiment": "dreams",
            "model_name": "m",
            "degradation_method": "mult_gauss",
            "param_group_name": "mlp_only",
            "level_value": 0.0,
            "repeat_index": 0,
            "prompt_id": f"p{i}",
            "prompt_text": f"prompt {i}",
            "prompt_hash": prompt_hash(f"prompt {i}"),
            "output": f"answer é {i}",
            "batch_size_effective": 1,
        }
        for i in range(n)
    ]


def lines_of(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def test_torn_last_line_is_kept_aside_byte_for_byte(tmp_path: Path) -> None:
    records = fake_records(4)
    complete = lines_of(records[:3])
    torn = lines_of(records[3:])[:37]
    (tmp_path / "records.jsonl").write_bytes(complete + torn)
    store = RecordStore(tmp_path, "out.json")
    assert store.load() == 3
    assert store.records == records[:3]
    assert (tmp_path / "records.jsonl").read_bytes() == complete
    aside = list(tmp_path.glob("records.jsonl.torn-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == torn
    store.append(records[3:])  # the next append starts on a line of its own
    assert journal(tmp_path) == records


def test_complete_last_record_without_newline_is_kept(tmp_path: Path) -> None:
    records = fake_records(3)
    (tmp_path / "records.jsonl").write_bytes(lines_of(records)[:-1])
    store = RecordStore(tmp_path, "out.json")
    assert store.load() == 3
    assert (tmp_path / "records.jsonl").read_bytes() == lines_of(records)
    assert not list(tmp_path.glob("records.jsonl.torn-*"))


def test_dry_load_of_a_torn_journal_changes_nothing(tmp_path: Path) -> None:
    data = lines_of(fake_records(3)) + b'{"prompt_id": "p3", "out'
    (tmp_path / "records.jsonl").write_bytes(data)
    assert RecordStore(tmp_path, "out.json").load(repair=False) == 3
    assert (tmp_path / "records.jsonl").read_bytes() == data and os.listdir(tmp_path) == ["records.jsonl"]


@pytest.mark.parametrize(
    "line",
    [b'{"prompt_id": "p2", "output": garbage', b"null", b"[1, 2]", b'{"prompt_id": "p2"}'],
    ids=["not-json", "null", "array", "not-a-record"],
)
def test_unreadable_middle_line_stops_and_changes_nothing(tmp_path: Path, line: bytes) -> None:
    """Any line that is not a record (JSON or not) is an error naming it; the journal stays as it was."""
    lines = lines_of(fake_records(5)).splitlines(keepends=True)
    lines[2] = line + b"\n"
    data = b"".join(lines)
    (tmp_path / "records.jsonl").write_bytes(data)
    store = RecordStore(tmp_path, "out.json")
    with pytest.raises(DegradeError, match=r"records\.jsonl: line 3 is unreadable"):
        store.load()
    assert (tmp_path / "records.jsonl").read_bytes() == data
    assert os.listdir(tmp_path) == ["records.jsonl"]


@pytest.mark.parametrize("view", ["out.json", "records.parquet"])
def test_unreadable_view_is_kept_aside_and_rebuilt(tmp_path: Path, view: str) -> None:
    records = fake_records(4)
    store = RecordStore(tmp_path, "out.json")
    store.append(records)
    store.write_views()
    broken = (tmp_path / view).read_bytes()[:-25]  # truncated, as by a crash of a non-atomic writer
    (tmp_path / view).write_bytes(broken)

    store = RecordStore(tmp_path, "out.json")
    assert store.load() == 4
    aside = list(tmp_path.glob(f"{view}.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == broken
    store.write_views()
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8")) == records
    assert pq.read_table(tmp_path / "records.parquet").column("prompt_id").to_pylist() == [f"p{i}" for i in range(4)]


def old_study_records(cfg, prompt_ids: list[str]) -> list[dict[str, Any]]:
    """Records as the original study wrote them: its own fields only, the level in ``std_dev``."""
    texts = {p.id: p.text for p in cfg.experiment.prompts}
    return [
        {
            "timestamp": "2025-03-01 12:00:00",
            "model_name": cfg.model.name,
            "prompt_group": "dreams",
            "prompt_id": pid,
            "prompt_text": texts[pid],
            "output": f"old answer {pid}" + " and on" * i,
            "std_dev": 0.0,
            "repeat_index": 0,
            "temperature": 1.0,
            "do_sample": True,
            "param_group_name": cfg.param_group.name,
            "seed": 42,
            "duration": 3.5,
            "tokens": 17,
            "degradation_method": "mult_gauss",
            "usar_4bit": False,
            "entorno": "colab",
            "force_run": False,
            "usar_data_parallel": False,
        }
        for i, pid in enumerate(prompt_ids)
    ]


@pytest.mark.slow
def test_original_study_json_seeds_the_journal_and_its_prompts_are_skipped(tmp_path: Path) -> None:
    cfg = small_cfg()
    old = old_study_records(cfg, ["dreams_01", "dreams_02", "dreams_03"])
    (tmp_path / json_name(cfg)).write_text(json.dumps(old), encoding="utf-8")

    summary = run_job(cfg, tmp_path)
    assert (summary.generated, summary.skipped, summary.records) == (N_RECORDS - 3, 3, N_RECORDS)
    records = journal(tmp_path)
    assert [{k: r[k] for k in old[0]} for r in records[:3]] == old  # every old field kept as it was
    assert [r["level_value"] for r in records[:3]] == [0.0] * 3 and {r["experiment"] for r in records} == {"dreams"}
    new = records[3:]
    assert len({key(r) for r in records}) == N_RECORDS
    first_cell = [r for r in new if r["level_value"] == 0]
    assert sorted(r["prompt_id"] for r in first_cell) == ["dreams_04", "dreams_05", "dreams_06"]
    assert {r["batch_size_effective"] for r in first_cell} == {3}  # not padded with the old prompts
    assert len(json.loads((tmp_path / json_name(cfg)).read_text(encoding="utf-8"))) == N_RECORDS


@pytest.mark.slow
def test_kill_while_importing_the_study_json_loses_no_old_record(tmp_path: Path) -> None:
    """A SIGKILL halfway through seeding the journal from the study's JSON costs none of its records."""
    out = tmp_path / "run"
    out.mkdir()
    ids = [f"dreams_0{i}" for i in range(1, 7)]
    old = old_study_records(small_cfg(), ids)
    (out / JSON_VIEW).write_text(json.dumps(old), encoding="utf-8")
    args = job_args(out)
    assert run_cli(*args, env={"DEGRADE_FAULT": "append:1"}).returncode == -signal.SIGKILL
    assert 0 < len(split_journal(out)[0]) < 6, "the kill did not land inside the import"

    again = run_cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    n_old = sum(r.get("entorno") == "colab" for r in journal(out))  # journaled first, before any new one
    records = assert_complete(out, old=n_old)
    kept = {r["prompt_id"]: r["output"] for r in records if r.get("entorno") == "colab"}
    assert kept == {r["prompt_id"]: r["output"] for r in old}, "old records were lost"
    assert f"{N_RECORDS} generations, 6 to run" in again.stdout


# --- 3. only missing prompts, never padded; 4. force_run -------------------------------------------


@pytest.mark.slow
def test_resume_generates_only_the_missing_prompts_in_unpadded_batches(tmp_path: Path) -> None:
    cfg = small_cfg()
    run_job(cfg, tmp_path)
    records = journal(tmp_path)
    dropped = [r for r in records if r["level_value"] == 0.5][1:4]
    kept = [r for r in records if r not in dropped]
    (tmp_path / "records.jsonl").write_bytes(lines_of(kept))
    (tmp_path / JSON_VIEW).write_text(json.dumps(kept), encoding="utf-8")  # the views as they were then
    pq.write_table(to_table(kept), tmp_path / "records.parquet")

    summary = run_job(cfg, tmp_path)
    assert (summary.generated, summary.skipped) == (3, N_RECORDS - 3)
    after = assert_complete(tmp_path, max_batch=8)
    assert after[: len(kept)] == kept
    new = after[len(kept) :]
    assert sorted(key(r) for r in new) == sorted(key(r) for r in dropped)
    assert all(r["batch_size_effective"] <= 3 for r in new)


def test_records_in_the_json_view_but_not_the_journal_are_added_not_lost(tmp_path: Path) -> None:
    """The view can be ahead of the journal (an interrupted write or import): its records come back."""
    records = fake_records(5)
    (tmp_path / "out.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "records.jsonl").write_bytes(lines_of(records[:2]))
    assert RecordStore(tmp_path, "out.json").load(repair=False) == 5
    assert (tmp_path / "records.jsonl").read_bytes() == lines_of(records[:2])  # a dry load writes nothing
    assert RecordStore(tmp_path, "out.json").load() == 5
    assert [json.loads(line) for line in (tmp_path / "records.jsonl").read_bytes().splitlines()] == records


@pytest.mark.slow
def test_force_run_keeps_old_files_aside_and_recomputes_everything(tmp_path: Path) -> None:
    run_job(small_cfg(), tmp_path)
    old = {
        name: (tmp_path / name).read_bytes()
        for name in ("records.jsonl", JSON_VIEW, "records.parquet", "metadata.json", "param_group.json")
    }
    old_times = {r["timestamp"] for r in journal(tmp_path)}
    time.sleep(1.1)  # new timestamps (second resolution) tell the recomputed records apart

    summary = run_job(small_cfg("force_run=true"), tmp_path)
    assert (summary.generated, summary.skipped) == (N_RECORDS, 0)
    aside = list(tmp_path.glob("previous-*"))
    assert len(aside) == 1 and {p.name: p.read_bytes() for p in aside[0].iterdir()} == old
    records = assert_complete(tmp_path, max_batch=8)
    assert not old_times & {r["timestamp"] for r in records}


# --- 5. a re-run sweep finds its job dirs ------------------------------------------------------


@pytest.mark.slow
def test_rerun_sweep_resumes_each_job_in_its_own_dir(tmp_path: Path) -> None:
    common = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=4"]
    args = ["--multirun", "degradation=mult_gauss,ablation", *common, f"hydra.sweep.dir={tmp_path}"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    names = {",".join(sorted([f"degradation={m}", *common])) for m in ("mult_gauss", "ablation")}
    dirs = {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert dirs == names
    journals = {d: (tmp_path / d / "records.jsonl").read_bytes() for d in names}
    assert all(len(journal(tmp_path / d)) == 4 * 2 for d in names)  # 4 default levels × 2 prompts

    second = run_cli(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("8 generations, 0 to run") == 2, second.stdout
    assert "cell " not in second.stdout
    assert {p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")} == names
    assert {d: (tmp_path / d / "records.jsonl").read_bytes() for d in names} == journals


# --- 6. memory policy --------------------------------------------------------------------------


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_loses_no_prompt(tmp_path: Path, monkeypatch, caplog) -> None:
    real, refused = text.generate, []

    def small_memory(model, tokenizer, prompts, params, device, **options):
        if len(prompts) > 2:
            refused.append(len(prompts))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, tokenizer, prompts, params, device, **options)

    monkeypatch.setattr(text, "generate", small_memory)
    with caplog.at_level(logging.WARNING):
        summary = run_job(small_cfg(batch=8), tmp_path)
    assert refused and refused[0] == 6  # the first batch was the whole cell
    assert "out of memory at batch size 6" in caplog.text
    assert summary.generated == N_RECORDS
    records = assert_complete(tmp_path, max_batch=2)
    assert {r["batch_size_effective"] for r in records} <= {1, 2}


def memory_policy(*readings: float, size: int = 8) -> MemoryPolicy:
    """A policy for batches of up to ``size`` that reads ``readings`` in turn instead of real memory."""
    it = iter(readings)
    return MemoryPolicy(
        MemoryConfig(critical_percent=95, warn_percent=90, grow_below_percent=40),
        torch.device("cpu"),
        size,
        usage=lambda device: next(it),
    )


def test_memory_policy_grows_back_below_the_threshold() -> None:
    policy = memory_policy(10.0, 10.0, 10.0, 60.0)
    policy.on_out_of_memory(8)
    policy.on_out_of_memory(4)
    assert policy.size == 2
    sizes = []
    for _ in range(3):
        policy.after_batch(policy.read())
        sizes.append(policy.size)
    assert sizes == [4, 8, 8]  # doubling, never past max_batch_size
    policy.on_out_of_memory(8)
    policy.after_batch(policy.read())  # 60 %: between the thresholds, nothing changes
    assert policy.size == 4


def test_memory_policy_warns_and_pauses(monkeypatch, caplog) -> None:
    import degrade.generation.memory

    pauses: list[float] = []
    monkeypatch.setattr(degrade.generation.memory.time, "sleep", pauses.append)
    policy = memory_policy(92.5, size=4)
    policy.on_out_of_memory(4)
    with caplog.at_level(logging.WARNING, logger="degrade.generation.memory"):
        policy.after_batch(policy.read())
    assert pauses == [1]
    assert "memory at 92.5 %" in caplog.text and "pausing 1 s" in caplog.text
    assert policy.size == 2  # no growth while memory is high


def test_memory_policy_stops_above_critical(monkeypatch) -> None:
    import degrade.generation.memory

    monkeypatch.setattr(degrade.generation.memory.time, "sleep", lambda s: pytest.fail("paused instead of stopping"))
    policy = memory_policy(96.0)
    with pytest.raises(MemoryCritical, match=r"memory\.critical_percent=95") as err:
        policy.after_batch(policy.read())
    assert err.value.exit_code == 3


def test_out_of_memory_on_one_prompt_gives_up_with_advice() -> None:
    with pytest.raises(DegradeError, match="single prompt"):
        memory_policy().on_out_of_memory(1)


@pytest.mark.parametrize(
    ("exc", "oom"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), True),
        (MemoryError(), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("shape '[2, 3]' is invalid for input of size 5"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_out_of_memory(exc: BaseException, oom: bool) -> None:
    assert is_out_of_memory(exc) is oom


@pytest.mark.slow
def test_critical_memory_stops_with_code_3_and_keeps_the_first_batch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(
        *job_args(out), "memory.grow_below_percent=0.1", "memory.warn_percent=0.5", "memory.critical_percent=1"
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert_one_error_line(result, "memory.critical_percent=1", "run the same command")
    assert_complete(out, n=2)


# --- 7. dry run --------------------------------------------------------------------------------


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_writes_no_record(tmp_path: Path) -> None:
    result = run_cli(*job_args(tmp_path / "run"), "dry_run=true")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "12 generations, 12 to run" in out and "dry run: 2 cells (2 to run), 12 generations in 6 batches" in out
    assert "estimated time" in out and "GiB" in out and "dry run: memory" in out
    assert result_bytes(tmp_path / "run") == {}  # Hydra's .hydra/ and log only


@pytest.mark.slow
def test_dry_run_on_an_interrupted_dir_changes_no_byte(finished_copy: Path) -> None:
    lines = (finished_copy / "records.jsonl").read_bytes().splitlines(keepends=True)
    (finished_copy / "records.jsonl").write_bytes(b"".join(lines[:7]) + lines[7][:50])  # a torn 8th line
    (finished_copy / JSON_VIEW).write_bytes((finished_copy / JSON_VIEW).read_bytes()[:-10])  # unreadable view
    pq.write_table(to_table([json.loads(line) for line in lines[:6]]), finished_copy / "records.parquet")  # last cell's
    before = result_bytes(finished_copy)

    result = run_cli(*job_args(finished_copy), "dry_run=true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 generations, 5 to run" in result.stdout
    assert "dry run: 2 cells (1 to run), 5 generations in 3 batches" in result.stdout
    assert result_bytes(finished_copy) == before


# --- 8. bad input ------------------------------------------------------------------------------

BAD = {  # overrides of the small job → what its one error line must say
    "unknown-method": (
        {"degradation.method": "shuffle"},
        [
            "degradation.method",
            "'shuffle'",
            "allowed: ablation, activation_noise, add_gauss, bit_flip, minifloat, mult_gauss, "
            "neuron_ablation, none, prune_magnitude, rtn, uni_quant",
        ],
    ),
    "unknown-kind": ({"param_group.kinds": "[mlp_up,ffn]"}, ["param_group.kinds", "ffn", "allowed: ", "mlp_gate"]),
    "level-outside-domain": (
        {"degradation": "ablation", "degradation.levels": "[0,1.5]"},
        ["degradation.levels", "1.5", "0 ≤ p ≤ 1"],
    ),
    "max-new-tokens-0": ({"generation.max_new_tokens": "0"}, ["generation.max_new_tokens", "0", "≥ 1"]),
    "image-on-text-model": ({"experiment": "cookie_theft"}, ["experiment.image.enabled", "text-only", "multimodal"]),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_value_fails_in_one_line_and_keeps_results(finished_copy: Path, case: str) -> None:
    changes, fragments = BAD[case]
    before = result_bytes(finished_copy)
    result = run_cli(*job_args(finished_copy, changes))
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_error_line(result, *fragments)
    assert result_bytes(finished_copy) == before


@pytest.mark.parametrize("group", ["degradation", "param_group"])
def test_unknown_preset_is_one_line_listing_the_options(finished_copy: Path, group: str) -> None:
    before = result_bytes(finished_copy)
    result = run_cli(*job_args(finished_copy), f"{group}=nosuch")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    assert f"Could not find '{group}/nosuch'" in output and f"Available options in '{group}'" in output
    assert result_bytes(finished_copy) == before


def test_output_dir_under_a_file_fails_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a directory\n")
    result = run_cli(*job_args(blocker / "run"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_error_line(result, str(blocker), "is a file, not a directory", "hydra.run.dir")
    assert blocker.read_text() == "not a directory\n" and os.listdir(tmp_path) == ["results.txt"]


def test_second_job_on_a_held_dir_stops_in_one_line(finished_copy: Path) -> None:
    """While one job writes a dir, the same command started again refuses instead of writing twice."""
    before = result_bytes(finished_copy)
    with jobdir.locked(finished_copy):
        jobdir.claim(finished_copy)
        before = result_bytes(finished_copy)
        result = run_cli(*job_args(finished_copy), "force_run=true")
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_error_line(result, str(finished_copy), "another job is writing here", f"pid {os.getpid()}")
    assert result_bytes(finished_copy) == before
    assert run_cli(*job_args(finished_copy)).returncode == 0  # released with the holder


@pytest.mark.parametrize(
    "line", [b'{"timestamp": "2026-\x00garbage', b'{"prompt_id": "dreams_05"}'], ids=["not-json", "not-a-record"]
)
def test_corrupt_journal_line_stops_the_job_and_is_left_untouched(finished_copy: Path, line: bytes) -> None:
    lines = (finished_copy / "records.jsonl").read_bytes().splitlines(keepends=True)
    lines[4] = line + b"\n"
    (finished_copy / "records.jsonl").write_bytes(b"".join(lines))
    before = result_bytes(finished_copy)
    result = run_cli(*job_args(finished_copy))
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_error_line(result, "records.jsonl: line 5 is unreadable", "nothing was changed")
    assert result_bytes(finished_copy) == before


@pytest.mark.slow
def test_hf_token_is_written_nowhere(finished) -> None:
    out, result = finished
    assert SECRET not in result.stdout + result.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"records.jsonl", JSON_VIEW, "records.parquet", "metadata.json", "run.log", "config.yaml", "hydra.yaml"} <= {
        p.name for p in files
    }
    leaks = [str(p.relative_to(out)) for p in files if SECRET.encode() in p.read_bytes()]
    assert not leaks, f"HF_TOKEN written to {leaks}"
