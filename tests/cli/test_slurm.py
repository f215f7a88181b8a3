"""Sweeps on a real one-node SLURM cluster: submitit's launcher, time limits, requeues, cancels, parallelism.

Start the cluster first (``bash scripts/slurm_cluster.sh start``, as ``.ci/run`` does); without ``sbatch``
or a node that answers, these tests are skipped with the reason. Every job is the tiny model; the long
one has enough cells that a one-minute time limit cuts it, in batches of 8 so each run journals its
progress. SLURM holds a requeued job for two minutes before it may start again; the tests lift that
hold (``scontrol update … StartTime=now``, as an administrator may) so a requeue costs seconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_cli


def _cluster_answers() -> str | None:
    """Why the cluster cannot be used, or None when its node is up."""
    if shutil.which("sbatch") is None:
        return "needs SLURM's sbatch (bash scripts/slurm_cluster.sh start)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo did not answer ({exc})"
    if not {"idle", "mixed", "allocated"} & set(states.split()):
        return f"no SLURM node up (sinfo: {states.strip() or 'nothing'}; bash scripts/slurm_cluster.sh start)"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.skipif(_cluster_answers() is not None, reason=str(_cluster_answers()))]

TINY = ["model=tiny_random", "experiment.limit=3", "generation.max_new_tokens=4", "degradation.levels=[0,0.1]"]
SLURM = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
# More than one run's worth of work on the tiny model: 38 prompts × 12 levels × 192 tokens, about 50 s of
# generation on two idle cores, in batches of 8 so that each run journals its progress.
LONG = [
    "model=tiny_random",
    "experiment=dreams",
    "generation.max_new_tokens=192",
    "generation.max_batch_size=8",
    "degradation.range={min:0,max:0.55,steps:12}",
]
LONG_RECORDS = 38 * 12


@pytest.fixture(autouse=True)
def cancel_leftovers(tmp_path: Path):
    """Cancel whatever a test submitted and left queued or running (a failed test must not hold the node)."""
    yield
    ids = {m.group(1) for p in tmp_path.rglob("*") if (m := re.fullmatch(r"(\d+)_\d+", p.name))}
    if ids:
        subprocess.run(["scancel", *sorted(ids)], capture_output=True)


def records(job: Path) -> pd.DataFrame:
    return pd.read_parquet(job / "records.parquet")


def assert_each_record_once(job: Path, expected: int) -> None:
    frame = records(job)
    keys = ["level_value", "repeat_index", "prompt_id"]
    assert len(frame) == expected, len(frame)
    assert not frame.duplicated(keys).any()
    journal = [json.loads(line) for line in (job / "records.jsonl").read_text().splitlines()]
    assert len(journal) == expected  # the journal too: no record written twice across the requeues


def jobs_of(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / "metadata.json").exists())


def submitted(sweep: Path) -> list[str]:
    """SLURM's ids of the sweep's jobs, from submitit's folders: ``<array>_<task>``, or ``<job>`` for a lone job."""
    folder = sweep / ".submitit"
    return sorted(p.name for p in folder.iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)) if folder.is_dir() else []


def array_job_id(sweep: Path) -> str:
    """The SLURM job id the sweep was submitted under (its array's, for several jobs)."""
    (found,) = {name.split("_")[0] for name in submitted(sweep)}
    return found


def attempts(job_id: str) -> list[str]:
    """The states of every run of ``job_id`` that accounting holds (a requeued job has one per run)."""
    out = subprocess.run(
        ["sacct", "-j", job_id, "--duplicates", "-X", "-n", "-P", "-o", "State"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def wait_until_running(job_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True).stdout
        if "RUNNING" in state.split():
            return
        time.sleep(1)
    pytest.fail(f"job {job_id} never ran within {timeout} s")


def lift_requeue_holds() -> None:
    """Let every job SLURM holds after a requeue (reason BeginTime) start now."""
    pending = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True).stdout
    for job, reason in (line.split(maxsplit=1) for line in pending.splitlines() if line.strip()):
        if reason.strip() == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    """Wait for a sweep's command to end, lifting requeue holds meanwhile; its whole output."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the sweep did not end within {timeout} s")
        lift_requeue_holds()
        time.sleep(2)
    process.log.seek(0)
    return process.log.read()


def start_sweep(*args: str) -> subprocess.Popen:
    """The sweep's command, started; its output goes to a file (a pipe nobody reads could fill and block it)."""
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "--multirun", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.log = log
    return process


def wait_for_submission(sweep: Path, count: int, timeout: float = 120) -> list[str]:
    """The ids of the sweep's ``count`` jobs, once submitit has submitted them all.

    An array's folder may appear beside its tasks' (``<array>`` and ``<array>_<task>``): for several jobs
    only the tasks count.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = submitted(sweep)
        tasks = [i for i in ids if "_" in i] if count > 1 else ids[-1:]
        if len(tasks) == count:
            return tasks
        time.sleep(0.5)
    pytest.fail(f"the sweep did not submit {count} jobs within {timeout} s: {submitted(sweep)}")


@pytest.mark.parametrize(
    "launcher",
    [["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug"], SLURM],
    ids=["submitit_slurm", "slurm_cpu"],
)
def test_a_sweep_runs_on_the_cluster(tmp_path: Path, launcher: list[str]) -> None:
    sweep = tmp_path / "sweep"
    done = run_cli("--multirun", *launcher, *TINY, "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "2 jobs: 2 done" in output.splitlines()[-1]
    assert "sacct" not in output  # accounting answers: no "Bypassing sacct error" on every poll
    assert [len(records(job)) for job in jobs_of(sweep)] == [6, 6]


def test_a_time_limited_job_resumes_through_requeues(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    limited = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=30"]
    process = start_sweep(*SLURM, *limited, *LONG, f"hydra.sweep.dir={sweep}")
    output = finish(process)
    assert process.returncode == 0, output
    (job,) = jobs_of(sweep)
    assert_each_record_once(job, LONG_RECORDS)
    runs = attempts(array_job_id(sweep))
    assert runs.count("REQUEUED") + runs.count("TIMEOUT") + runs.count("PREEMPTED") >= 1, runs
    assert runs[-1] == "COMPLETED", runs


def test_a_cancelled_task_fails_its_job_and_a_rerun_completes_it(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [*SLURM, *LONG, "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}"]
    sweep_process = start_sweep(*args)
    _, second = wait_for_submission(sweep, 2)
    wait_until_running(second)
    subprocess.run(["scancel", second], check=True)
    output = finish(sweep_process)
    assert sweep_process.returncode == 1, output
    last = output.strip().splitlines()[-1]
    assert "2 jobs: 1 done, 1 failed: #1 degradation=ablation" in last, output
    assert "Traceback" not in output

    again = run_cli("--multirun", *args, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    for job in jobs_of(sweep):
        assert_each_record_once(job, LONG_RECORDS)


def test_a_preempted_job_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    sweep_process = start_sweep(*SLURM, *LONG, f"hydra.sweep.dir={sweep}")
    (task,) = wait_for_submission(sweep, 1)
    wait_until_running(task)
    job = None
    deadline = time.monotonic() + 120
    while job is None or not (job / "records.jsonl").exists():  # preempt once it has written records
        assert time.monotonic() < deadline, "the job wrote no record"
        found = jobs_of(sweep) or [p for p in sweep.iterdir() if (p / "records.jsonl").exists()]
        job = found[0] if found else None
        time.sleep(0.5)
    subprocess.run(["scontrol", "requeue", task], check=True)
    output = finish(sweep_process)
    assert sweep_process.returncode == 0, output
    assert_each_record_once(job, LONG_RECORDS)
    assert "REQUEUED" in attempts(task), attempts(task)


def test_array_parallelism_runs_one_job_at_a_time(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    one = ["hydra.launcher.array_parallelism=1"]
    done = run_cli("--multirun", *SLURM, *one, *TINY, "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stdout + done.stderr
    spans = sorted(
        (meta["start_time"], meta["end_time"])
        for meta in (json.loads((job / "metadata.json").read_text()) for job in jobs_of(sweep))
    )
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], spans  # the second started after the first ended
