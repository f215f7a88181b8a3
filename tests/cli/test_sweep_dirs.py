"""A sweep's dirs: a dry run changes none of a finished sweep's files, and long overrides still make short names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import run_cli

TINY = ["model=tiny_random", "experiment.limit=1", "generation.max_new_tokens=2", "degradation.levels=[0]"]


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_a_dry_run_on_a_finished_sweep_changes_no_file(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["--multirun", *TINY, "degradation=mult_gauss,ablation", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args).returncode == 0
    before = tree(sweep)
    assert {".sweep/0.json", ".sweep/1.json", "multirun.yaml", "sweep_status.json"} <= set(before)
    dry = run_cli(*args, "dry_run=true")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.splitlines()[-1].endswith("2 jobs: 2 dry runs")
    assert tree(sweep) == before


def test_long_overrides_make_dir_names_a_file_system_takes(tmp_path: Path) -> None:
    """A prompts file deep in a long path, and a long value: each name stays under 255 bytes; jobs stay apart."""
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    files = []
    for name in ("a", "b"):
        (deep / f"{name}.yaml").write_text(f"- Tell me about {name}.\n", encoding="utf-8")
        files.append(str(deep / f"{name}.yaml"))
    sweep = tmp_path / "sweep"
    long_id = "x" * 300
    result = run_cli(
        "--multirun",
        *TINY,
        f"experiment.prompts_file={','.join(files)}",
        f"experiment.perplexity.text={long_id}",
        f"hydra.sweep.dir={sweep}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(jobs) == 2 and all((j / "records.parquet").is_file() for j in jobs)
    assert all(len(j.name.encode()) <= 200 for j in jobs) and jobs[0].name != jobs[1].name


def test_a_path_is_named_by_its_file_and_a_hash_of_the_whole() -> None:
    """Path-valued keys are out of Hydra's override_dirname (a / made nested dirs); they come back short."""
    from omegaconf import OmegaConf

    from degrade.cli.dirname import job_dir

    def name(path: str) -> str:
        root = OmegaConf.create(
            {"hydra": {"overrides": {"task": ["degradation=ablation", f"experiment.prompts_file={path}"]}}}
        )
        return job_dir("degradation=ablation", _root_=root)

    one, other = name("/data/study/prompts.py"), name("/data/other/prompts.py")
    assert one.startswith("degradation=ablation,experiment.prompts_file=prompts.py~") and "/" not in one
    assert one != other
    assert job_dir("degradation=ablation", _root_=OmegaConf.create({})) == "degradation=ablation"  # short: as Hydra's


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    result = run_cli(*TINY, f"hydra.run.dir={tmp_path}/{'r' * 300}")
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
    assert "hydra.run.dir: " in line and "longer than the file system allows (255 bytes)" in line
    assert list(tmp_path.iterdir()) == []
