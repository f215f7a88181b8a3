"""Hydra's documented rerun of a saved job, ``--config-path JOB/.hydra --config-name config``, resumes that job."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_cli

TINY = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=2", "degradation.levels=[0]"]


def test_rerun_from_the_saved_config_resumes_the_job_in_its_own_dir(tmp_path) -> None:
    job = tmp_path / "run"
    first = run_cli(*TINY, f"hydra.run.dir={job}")
    assert first.returncode == 0, first.stdout + first.stderr
    saved = {p.name: p.read_bytes() for p in (job / ".hydra").iterdir()}

    # from the dir above the job, with the path as the user sees it (relative to where they are)
    again = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), "--config-path", "run/.hydra", "--config-name", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = again.stdout + again.stderr
    assert again.returncode == 0, output
    assert "Traceback" not in output
    assert "done: 2 records (0 generated, 2 already there) in " in output and output.rstrip().endswith(str(job))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no new dir beside it (nor outputs/ here)
    assert {p.name: p.read_bytes() for p in (job / ".hydra").iterdir()} == saved  # the job's record of itself

    more = run_cli("--config-path", str(job / ".hydra"), "--config-name", "config", "degradation.levels=[0,0.1]")
    assert more.returncode == 0, more.stdout + more.stderr
    assert "done: 4 records (2 generated, 2 already there)" in more.stdout
