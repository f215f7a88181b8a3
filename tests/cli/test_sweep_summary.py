"""Sweeps that survive a failing job: the real command, with each launcher, on a tiny model.

A sweep of three jobs where the middle one is refused (a level outside ablation's domain)
must run the other two, keep their records, print one summary line naming the failed
job, and exit 1; the same command run again generates nothing for the good jobs.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, compose_cfg, run_cli

from degrade.cli.joblog import JobFiles, JobLogHandler
from degrade.cli.sweep_summary import JobStatus, run_guarded, summary_line

TINY = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=2"]
SWEEP = ["degradation=ablation", "degradation.levels=[0.1],[5],[0.3]"]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit_local": ["hydra/launcher=submitit_local"],
}
REFUSAL = "degradation.levels: 5 outside the domain of ablation: 0 ≤ p ≤ 1"


def job_dir(sweep: Path, level: str) -> Path:
    (found,) = [p for p in sweep.iterdir() if p.is_dir() and f"degradation.levels=[{level}]" in p.name]
    return found


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS, ids=list(LAUNCHERS))
def test_a_failing_job_does_not_stop_the_sweep(tmp_path: Path, launcher: str) -> None:
    sweep = tmp_path / "sweep"
    args = ["--multirun", *LAUNCHERS[launcher], *TINY, *SWEEP, f"hydra.sweep.dir={sweep}"]
    first = run_cli(*args, timeout=600)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "Traceback" not in output
    summary = f"3 jobs: 2 done, 1 failed: #1 degradation.levels=[5] ({REFUSAL})"
    assert summary in output.splitlines()[-1], output

    journals = {}
    for level in ("0.1", "0.3"):
        frame = pd.read_parquet(job_dir(sweep, level) / "records.parquet")
        assert len(frame) == 2 and set(frame.level_value) == {float(level)}
        assert json.loads((job_dir(sweep, level) / "metadata.json").read_text())["status"] == "done"
        journals[level] = (job_dir(sweep, level) / "records.jsonl").read_bytes()
    assert not [p for p in sweep.iterdir() if "levels=[5]" in p.name]  # refused before it wrote: no dir left
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert [(j["num"], j["status"]) for j in status["jobs"]] == [(0, "done"), (1, "failed"), (2, "done")]
    assert status["jobs"][1]["error"] == REFUSAL and status["ok"] is False

    again = run_cli(*args, timeout=600)
    assert again.returncode == 1, again.stdout + again.stderr
    assert summary in (again.stdout + again.stderr).splitlines()[-1]
    for level, journal in journals.items():
        assert (job_dir(sweep, level) / "records.jsonl").read_bytes() == journal  # nothing generated again


@pytest.mark.slow
def test_a_runtime_error_is_one_line_with_its_traceback_kept(tmp_path: Path) -> None:
    """A model dir whose config is broken fails inside Transformers: one line each, the traceback in a file."""
    model = tmp_path / "broken_model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama", "hidden_size": "wide"}')
    sweep = tmp_path / "sweep"
    result = run_cli(
        "--multirun",
        *TINY,
        f"model.source={model}",
        "degradation=ablation,mult_gauss",
        f"hydra.sweep.dir={sweep}",
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 3, output  # one per job, then the summary
    assert "2 jobs: 2 failed: #0 degradation=ablation (" in errors[-1] and "; #1 degradation=mult_gauss (" in errors[-1]
    for number, line in enumerate(errors[:2]):
        assert "hidden_size" in line and line.endswith(f"(traceback in {sweep / '.sweep' / f'{number}.log'})")
        log = (sweep / ".sweep" / f"{number}.log").read_text()
        assert "Traceback (most recent call last)" in log and "hidden_size" in log
    assert sorted(p.name for p in sweep.iterdir()) == [".sweep", "multirun.yaml", "sweep_status.json"]


def test_a_runtime_error_after_the_start_goes_to_the_job_log(tmp_path: Path) -> None:
    """The job's log holds what was logged before the start, then the error line and its traceback."""
    out = tmp_path / "run"
    out.mkdir()
    handler = JobLogHandler(str(out / "run.log"))
    root = logging.getLogger()
    root.addHandler(handler)
    files = JobFiles(out, {"config.yaml": "seed: 42\n"})

    def job() -> None:
        logging.getLogger("degrade.test").warning("before the start")
        files.start()
        raise RuntimeError("the device went away")

    try:
        outcome = run_guarded(job, files)
    finally:
        root.removeHandler(handler)
        handler.close()
    assert (outcome.status, outcome.exit_code) == ("failed", 1)
    assert outcome.error == "RuntimeError: the device went away"
    log = (out / "run.log").read_text()
    assert log.index("before the start") < log.index(f"the device went away (traceback in {out / 'run.log'})")
    assert "Traceback (most recent call last)" in log and 'raise RuntimeError("the device went away")' in log
    assert (out / ".hydra" / "config.yaml").read_text() == "seed: 42\n"


def test_a_refusal_before_the_start_leaves_no_log(tmp_path: Path) -> None:
    from degrade.errors import ConfigError

    out = tmp_path / "run"
    out.mkdir()
    handler = JobLogHandler(str(out / "run.log"))
    root = logging.getLogger()
    root.addHandler(handler)
    files = JobFiles(out, {"config.yaml": "seed: 42\n"})

    def job() -> None:
        logging.getLogger("degrade.test").warning("planning")
        raise ConfigError("degradation.levels", "is empty")

    try:
        outcome = run_guarded(job, files)
    finally:
        root.removeHandler(handler)
        handler.close()
    assert (outcome.status, outcome.exit_code, outcome.error) == ("failed", 2, "degradation.levels: is empty")
    assert list(out.iterdir()) == []  # the dir existed before: kept, and empty as it was


def test_summary_line_names_each_failed_job_by_what_sets_it_apart() -> None:
    common = ["model=tiny_random", "degradation=ablation"]
    statuses = [
        JobStatus("r", 0, [*common, "degradation.levels=[0.1]"], "done"),
        JobStatus("r", 1, [*common, "degradation.levels=[5]"], "failed", "degradation.levels: 5 outside"),
        JobStatus("r", 2, [*common, "degradation.levels=[0.3]"], "running"),
        JobStatus("r", 3, [*common, "degradation.levels=[0.4]"], "done"),
    ]
    assert summary_line(statuses) == (
        "4 jobs: 2 done, 1 failed, 1 ended without a status: #1 degradation.levels=[5] "
        "(degradation.levels: 5 outside); #2 degradation.levels=[0.3] (running)"
    )
    assert summary_line(statuses[:1]) == "1 job: 1 done"


@pytest.mark.slow
def test_a_dry_run_sweep_gives_its_total_and_leaves_nothing(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_cli("--multirun", *TINY, "degradation=ablation,mult_gauss", "dry_run=true", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stdout + result.stderr
    per_job = [len(compose_cfg(*TINY, f"degradation={m}").degradation.levels) * 2 for m in ("ablation", "mult_gauss")]
    lines = result.stdout.splitlines()
    assert f"dry run of the sweep: 2 jobs, {sum(per_job)} generations, estimated " in lines[-2]
    assert lines[-1].endswith("2 jobs: 2 dry runs")
    assert not sweep.exists()


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_sweep_in_one_line(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    long_first_job = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=400"]
    proc = start_cli("--multirun", *long_first_job, "degradation=ablation,mult_gauss", f"hydra.sweep.dir={sweep}")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "cell 1/" in line:  # the first job wrote its first cell and generates its second
            proc.send_signal(signal.SIGINT)
            break
    output = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "interrupted" in errors[0] and "run the same command" in errors[0], output
    assert "#1 :" not in output  # the second job never started
    (first,) = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert json.loads((first / "metadata.json").read_text())["status"] == "interrupted"


@pytest.mark.slow
def test_ctrl_c_while_starting_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    proc = start_cli(*TINY, f"hydra.run.dir={tmp_path}/run")
    time.sleep(1.0)  # torch and transformers are still importing
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1 and "interrupted" in output
    assert list(tmp_path.iterdir()) == []
