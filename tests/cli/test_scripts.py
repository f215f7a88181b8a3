"""report.py, compare.py, bench.py on bad input: one line, exit 2, nothing left behind; compare pairs job with job."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg, run_cli

from degrade.analysis.compare import compare
from degrade.job.runner import run_job

TINY = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=2", "degradation.levels=[0,0.1]"]
STUDY = {  # the original study's record shape
    "model_name": "google/gemma-3-4b-it",
    "prompt_group": "dreams_it",
    "prompt_id": 1,
    "prompt_text": "Describe a dream.",
    "output": "user\nDescribe a dream.\nmodel\nI was flying.",
    "std_dev": 0.1,
    "repeat_index": 0,
    "param_group_name": "attn_only",
    "degradation_method": "mult_gauss",
    "seed": 42,
}


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def one_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return line


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scripts") / "run"
    run_job(compose_cfg(*TINY), out)
    return out


def test_report_out_naming_an_existing_file_is_one_line(job: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("mine")
    result = script("report.py", str(job), "--out", str(target))
    assert result.returncode == 2
    assert one_line(result) == f"error: --out {target}: a file, and the report is a dir of files; give another --out"
    assert target.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for this process: its mode for a user, a read-only bind mount for root."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("root here cannot make a read-only mount, and a dir's mode does not stop root")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path), str(path)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True, capture_output=True)


def test_report_on_a_read_only_dir_says_to_pass_out(job: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(job), str(copy)], check=True)
    with read_only(copy):
        result = script("report.py", str(copy))
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(f"error: {copy / 'report'}: the report cannot be written there (")
    assert line.endswith("pass --out DIR to write it elsewhere")
    assert not (copy / "report").exists()


@pytest.mark.parametrize(
    ("records", "fragment"),
    [
        ([{**STUDY, "std_dev": "high", "output": None}], "record 1 does not say which prompt, level and repetition"),
        ([{k: v for k, v in STUDY.items() if k != "output"} | {"seed": "42"}], "record 1 has no output text"),
        ("[" + json.dumps(STUDY).replace('"std_dev": 0.1', '"std_dev": NaN') + "]", "record 1 does not say"),
        ("[" * 100_000 + "]" * 100_000, "unreadable (maximum recursion depth exceeded"),
    ],
    ids=["text-level-no-output", "text-seed-no-output", "nan-level", "nested-deep"],
)
def test_report_on_study_files_of_odd_types_is_one_line_and_leaves_nothing(
    tmp_path: Path, records: object, fragment: str
) -> None:
    study = tmp_path / "outputs_study.json"
    study.write_text(records if isinstance(records, str) else json.dumps(records), encoding="utf-8")
    result = script("report.py", str(study), "--out", str(tmp_path / "new" / "report"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in one_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs_study.json"]


def test_bench_out_to_an_unwritable_place_is_refused_before_measuring(tmp_path: Path) -> None:
    result = script("bench.py", "--out", "/proc/degrade-bench/bench.json")
    assert result.returncode == 2
    assert one_line(result).startswith("error: --out /proc/degrade-bench/bench.json: cannot be written (")
    result = script("bench.py", "--out", str(tmp_path))
    assert result.returncode == 2 and "a dir, not a file" in one_line(result)


def test_compare_on_a_malformed_result_file_is_one_line(job: Path, tmp_path: Path) -> None:
    bad = tmp_path / "outputs_bad.json"
    bad.write_text(json.dumps([{**STUDY, "repeat_index": [0]}]), encoding="utf-8")
    result = script("compare.py", str(job), str(bad))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "record 1 does not say which prompt, level and repetition it covers" in one_line(result)


def test_compare_pairs_the_jobs_of_two_identical_sweeps_job_with_job(tmp_path: Path) -> None:
    """Each job alone is 100 % identical to its twin; pairing across the two methods made it 12 pairs and 50 %."""
    sweeps = []
    for name in ("a", "b"):
        sweep = tmp_path / name
        result = run_cli("--multirun", *TINY, "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}")
        assert result.returncode == 0, result.stdout + result.stderr
        sweeps.append(sweep)
    table = compare(*sweeps, tokenizer=None)
    assert sorted(zip(table.method, table.level)) == [
        ("ablation", 0.0),
        ("ablation", 0.1),
        ("mult_gauss", 0.0),
        ("mult_gauss", 0.1),
    ]
    assert list(table.pairs) == [2, 2, 2, 2] and list(table.identical_share) == [1.0] * 4
