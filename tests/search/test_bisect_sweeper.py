"""The bisect sweeper through the real command: each probe a job of its own, the path and answer written, resumable.

The searches decide on ``level_value``, a record column that is the probe's level itself, so the
crossing is known (0.3) whatever the tiny random model says: what is tested is that the sweeper
launches the right jobs, reads each one's records and bisects on what they hold.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, run_cli

from degrade.search.files import read_answers

TINY = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=2"]
ON_LEVEL = [  # crossed once the level reaches 0.3, to 0.1
    "hydra/sweeper=bisect",
    "hydra.sweeper.measure=level_value",
    "hydra.sweeper.direction=rises",
    "hydra.sweeper.threshold.kind=absolute",
    "hydra.sweeper.threshold.value=0.3",
    "hydra.sweeper.tolerance=0.1",
    "hydra.sweeper.n_rep=2",
]
PROBES = [0.0, 1.0, 0.5, 0.25, 0.375, 0.3125]  # both ends, then halves until 0.3125 - 0.25 ≤ 0.1


def probe_dirs(sweep: Path, method: str) -> dict[float, Path]:
    """The sweep's job dirs of ``method``, by the level each was named for."""
    found = {}
    for path in sweep.iterdir():
        parts = dict(p.split("=", 1) for p in path.name.split(",") if "=" in p) if path.is_dir() else {}
        if parts.get("degradation") == method:
            found[float(parts["degradation.levels"].strip("[]"))] = path
    return found


@pytest.mark.slow
def test_a_grid_of_two_searches_bisects_with_probe_jobs_and_resumes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["--multirun", *ON_LEVEL, *TINY, "degradation=ablation,mult_gauss", f"hydra.sweep.dir={sweep}"]
    first = run_cli(*args)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "Traceback" not in output

    result = json.loads((sweep / "breakpoint.json").read_text())
    assert [s["label"] for s in result["searches"]] == ["ablation on mlp_only", "mult_gauss on mlp_only"]
    for method, search in zip(["ablation", "mult_gauss"], result["searches"]):
        dirs = probe_dirs(sweep, method)
        assert sorted(dirs) == sorted(PROBES)  # one job per probe, named by its overrides
        assert [p["level"] for p in search["probes"]] == PROBES  # in the order the bisection asked for them
        for probe in search["probes"]:
            frame = pd.read_parquet(dirs[probe["level"]] / "records.parquet")
            assert set(frame.level_value) == {probe["level"]} and sorted(set(frame.repeat_index)) == [0, 1]
            assert len(frame) == 2 * 2 and probe["per_rep"] == [probe["level"]] * 2
            assert probe["decision"] == ("crossed" if probe["level"] >= 0.3 else "held")
            assert Path(probe["job_dir"]) == dirs[probe["level"]]
        assert search["answer"]["status"] == "found"
        assert search["answer"]["bracket"] == [0.25, 0.3125] and search["answer"]["level"] == 0.2812
        assert (search["jobs"], search["cells"]) == (6, 12)
    assert "**found: level 0.2812** (crosses between 0.25 and 0.3125)" in (sweep / "breakpoint.md").read_text()
    assert "ablation on mlp_only: found at 0.2812" in output
    status = json.loads((sweep / "sweep_status.json").read_text())
    assert status["ok"] and len(status["jobs"]) == 12

    journals = {p: (p / "records.jsonl").read_bytes() for p in sweep.iterdir() if p.is_dir() and "=" in p.name}
    again = run_cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    for path, journal in journals.items():  # the same probes found again, nothing generated
        assert (path / "records.jsonl").read_bytes() == journal
        assert json.loads((path / "metadata.json").read_text())["generated"] == 0
    assert len([p for p in sweep.iterdir() if p.is_dir() and "=" in p.name]) == 12
    assert json.loads((sweep / "breakpoint.json").read_text())["searches"] == result["searches"]

    moved = tmp_path / "moved"  # the report finds each answer's jobs in a sweep dir moved since
    shutil.move(sweep, moved)
    found = read_answers([moved])
    assert [(f.label, f.measure, f.level, f.threshold, f.status) for f in found] == [
        ("ablation on mlp_only", "level_value", 0.2812, 0.3, "found"),
        ("mult_gauss on mlp_only", "level_value", 0.2812, 0.3, "found"),
    ]
    for answer in found:  # marked on the line of its own probes' records
        dirs = probe_dirs(moved, answer.method).values()
        hashes = {pd.read_parquet(d / "records.parquet").settings_hash.iloc[0] for d in dirs}
        assert hashes == {answer.settings_hash}


BAD = {
    "threshold kind": (["hydra.sweeper.threshold.kind=ratio"], "hydra.sweeper.threshold.kind: 'ratio'; allowed:"),
    "measure": (["hydra.sweeper.measure=accuracy"], "hydra.sweeper.measure: 'accuracy' is not a numeric record column"),
    "levels given": (["degradation.levels=[0.1]"], "degradation.levels: set by the bisect sweeper for each probe"),
    "a variant's range": (["variant=quant_attn"], "degradation.range: set by the chosen options (quant_attn)"),
    "outside the domain": (["hydra.sweeper.ranges.ablation=[0,2]"], "hydra.sweeper.ranges.ablation: 2 outside"),
    "no range": (["hydra.sweeper.ranges.ablation=null"], "hydra.sweeper.ranges.ablation: None; give the range"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_settings_are_one_line_exit_2_and_write_nothing(tmp_path: Path, case: str) -> None:
    overrides, message = BAD[case]
    sweep = tmp_path / "sweep"
    done = run_cli(
        "--multirun", "hydra/sweeper=bisect", *TINY, "degradation=ablation", *overrides, f"hydra.sweep.dir={sweep}"
    )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0], output
    assert "Traceback" not in output
    assert not sweep.exists()


@pytest.mark.slow
def test_the_sweeper_is_found_when_installed(tmp_path: Path) -> None:
    """Installed as a package (not run from the clone's path), Hydra's plugin scan finds the sweeper."""
    source, target = tmp_path / "src", tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for tree in ("degrade", "hydra_plugins"):  # built from a copy: a build leaves files in the tree it builds
        shutil.copytree(ROOT / tree, source / tree, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(target),
    ]
    subprocess.run([*install, str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "hydra_plugins" / "degrade_bisect_sweeper" / "bisect_sweeper.py").is_file()
    probe = (
        "import sys; from hydra.core.plugins import Plugins; from hydra.plugins.sweeper import Sweeper; "
        "names = [c.__module__ + '.' + c.__name__ for c in Plugins.instance().discover(Sweeper)]; "
        "print([n for n in names if 'bisect' in n]); import degrade; print(degrade.__file__)"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    found = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "['hydra_plugins.degrade_bisect_sweeper.bisect_sweeper.BisectSweeper']"
    assert lines[1].startswith(str(target))  # the installed copy, not the clone's


@pytest.mark.slow
def test_a_probe_refused_now_stops_its_search_instead_of_reading_old_records(tmp_path: Path) -> None:
    """A job dir left by other settings is refused by its job; the search says so and decides nothing on it."""
    sweep = tmp_path / "sweep"
    unnamed = "hydra.job.config.override_dirname.exclude_keys=[hydra.sweep.dir,generation.max_new_tokens]"
    settings = [o for o in ON_LEVEL if "n_rep" not in o and "tolerance" not in o]
    settings += ["hydra.sweeper.n_rep=1", "hydra.sweeper.tolerance=0.6"]  # probes 0, 1, 0.5: done
    args = ["--multirun", *settings, unnamed, f"hydra.sweep.dir={sweep}"]
    base = ["model=tiny_random", "experiment.limit=2", "degradation=ablation"]
    first = run_cli(*args, *base, "generation.max_new_tokens=2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads((sweep / "breakpoint.json").read_text())["searches"][0]["answer"]["status"] == "found"

    again = run_cli(*args, *base, "generation.max_new_tokens=3")  # the same dirs, other settings
    output = again.stdout + again.stderr
    assert again.returncode == 1, output
    (search,) = json.loads((sweep / "breakpoint.json").read_text())["searches"]
    assert search["answer"]["status"] == "failed" and "holds records of other settings" in search["answer"]["message"]
    assert "breakpoint ablation on mlp_only: failed (probe #0 degradation.levels=[0] failed:" in output


@pytest.mark.slow
def test_the_search_runs_each_probe_through_the_submitit_launcher(tmp_path: Path) -> None:
    """The launcher Hydra users move to SLURM with: each probe a submitit job of its own (here local processes)."""
    sweep = tmp_path / "sweep"
    on_level = [o for o in ON_LEVEL if not o.startswith("hydra.sweeper.n_rep")] + ["hydra.sweeper.n_rep=1"]
    done = run_cli(
        "--multirun",
        *on_level,
        *TINY,
        "hydra/launcher=submitit_local",
        "degradation=ablation",
        f"hydra.sweep.dir={sweep}",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    search = json.loads((sweep / "breakpoint.json").read_text())["searches"][0]
    assert search["answer"]["level"] == 0.2812 and [p["level"] for p in search["probes"]] == PROBES
    submitted = [p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]
    assert len(submitted) == len(PROBES)  # one submitit job per probe
    assert sorted(probe_dirs(sweep, "ablation")) == sorted(PROBES)
