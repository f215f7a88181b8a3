"""Faults during a job: a cell that cannot run, a view that cannot be written, SIGTERM. The real command, a tiny model.

Whatever happens, ``metadata.json`` says how the job ended (never ``running``), the views hold
every record of the journal, and the console says it in one line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

TINY = ["model=tiny_random", "experiment.limit=2"]
VIEW = "outputs_mult_gauss_tiny-random-llama_dreams.json"


def metadata(job: Path) -> dict:
    return json.loads((job / "metadata.json").read_text(encoding="utf-8"))


def journal(job: Path) -> list[dict]:
    return [json.loads(line) for line in (job / "records.jsonl").read_text(encoding="utf-8").splitlines()]


def error_lines(output: str) -> list[str]:
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if "[ERROR]" in line]


def test_a_cell_that_cannot_run_is_recorded_and_the_later_levels_run(tmp_path: Path) -> None:
    """σ = 1e308 makes the logits non-finite, so sampling fails in that cell on every run; 0.1 after it still runs."""
    job = tmp_path / "run"
    args = [*TINY, "generation=sampling", "generation.max_new_tokens=2", "degradation.levels=[0,1e308,0.1]"]
    first = run_cli(*args, f"hydra.run.dir={job}", timeout=300)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    errors = error_lines(output)
    assert len(errors) == 2, output  # the cell's line, then the job's
    assert "cell 2/3  mult_gauss=1e+308 rep 0 failed: RuntimeError: " in errors[0]
    assert "1 of 3 cells failed (level 1e+308 rep 0: RuntimeError: " in errors[1]
    assert sorted({r["level_value"] for r in journal(job)}) == [0.0, 0.1]
    assert len(json.loads((job / VIEW).read_text(encoding="utf-8"))) == 4
    meta = metadata(job)
    assert meta["status"] == "failed" and meta["error"].startswith("1 of 3 cells failed")
    assert [(c["level"], c["repeat"]) for c in meta["failed_cells"]] == [(1e308, 0)]
    assert "Traceback (most recent call last)" in (job / "run.log").read_text(encoding="utf-8")

    again = run_cli(*args, f"hydra.run.dir={job}", timeout=300)  # only the failed cell runs again, and fails again
    assert again.returncode == 1, again.stdout + again.stderr
    assert "plan: 3 cells × 2 prompts = 6 generations, 2 to run" in again.stdout
    assert "1 of 1 cells failed" in again.stdout and len(journal(job)) == 4


def test_a_view_that_cannot_be_written_ends_the_job_as_failed(tmp_path: Path) -> None:
    job = tmp_path / "run"
    (job / f".{VIEW}.tmp").mkdir(parents=True)  # where the JSON view is written before its rename
    result = run_cli(*TINY, "generation.max_new_tokens=2", "degradation.levels=[0,0.1]", f"hydra.run.dir={job}")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    (line,) = error_lines(output)
    assert "IsADirectoryError" in line
    meta = metadata(job)
    assert meta["status"] == "failed" and "IsADirectoryError" in meta["error"], meta
    assert meta["records"] == len(journal(job)) == 2  # the first cell's batch is in the journal


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_while_generating(proc: subprocess.Popen, signum: int) -> str:
    """Send ``signum`` once the first cell is written, while the second generates; return the whole output."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "cell 1/" in line and " tokens in " in line:  # the cell's closing line, not a progress line within it
            proc.send_signal(signum)
            break
    return "".join(lines) + proc.communicate(timeout=300)[0]


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_leaves_the_views_whole(tmp_path: Path) -> None:
    job = tmp_path / "run"
    proc = start(*TINY, "generation.max_new_tokens=400", "degradation.levels=[0,0.1,0.2]", f"hydra.run.dir={job}")
    output = stop_while_generating(proc, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, output
    (line,) = error_lines(output)
    assert line.endswith(f"stopped by SIGTERM: every finished batch is kept in {job}; run the same command to continue")
    meta = metadata(job)
    assert meta["status"] == "interrupted"
    records = journal(job)
    assert 2 <= len(records) < 6, "the signal did not land while the job generated"
    assert meta["records"] == len(records) == len(json.loads((job / VIEW).read_text(encoding="utf-8")))


# The job's second batch starts while a finalizer runs and Ctrl-C lands inside it, as in the CI run where
# `Exception ignored in: <function Group.__del__>` swallowed the KeyboardInterrupt and the job ran to its end.
PRESS_IN_A_FINALIZER = """
import os, runpy, signal, sys, time
import degrade.generation.text as text

generate, calls = text.generate, []

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the press is handled here, inside the finalizer

def pressed_in_a_finalizer(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        Finalized()
    return generate(*args, **kwargs)

text.generate = pressed_in_a_finalizer
sys.argv = sys.argv[1:]  # the script, then its arguments
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_inside_a_finalizer_is_not_lost(tmp_path: Path) -> None:
    job = tmp_path / "run"
    args = [*TINY, "generation.max_new_tokens=8", "degradation.levels=[0,0.1,0.2]", f"hydra.run.dir={job}"]
    result = subprocess.run(
        [sys.executable, "-c", PRESS_IN_A_FINALIZER, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 130, output
    (line,) = error_lines(output)
    assert "interrupted: every finished batch is kept" in line
    assert metadata(job)["status"] == "interrupted"
    assert {r["level_value"] for r in journal(job)} == {0.0}  # the second cell's batch was not recorded
