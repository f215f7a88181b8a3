"""The bad inputs a user types, each run as a real command against a dir that holds a finished run.

Every one must end in exactly one error line naming what is wrong (no traceback, no Hydra
report over several lines), a non-zero exit code, and the finished dir byte for byte as it
was: its records, its metadata, its log and its ``.hydra/``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import run_cli

BASE = ["model=tiny_random", "experiment.limit=2", "generation.max_new_tokens=2", "degradation.levels=[0,0.1]"]
LOG_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\]\[(INFO|WARNING|ERROR)\] ")

# id → (overrides added to the finished run's own, the exit code, what its one error line must say)
CATALOGUE = {
    "unknown-method": (["degradation.method=shuffle"], 2, ["degradation.method", "'shuffle'", "allowed:"]),
    "unknown-group-option": (
        ["degradation=foo"],
        2,
        [
            "Could not find 'degradation/foo'",
            "Available options in 'degradation'",
            "ablation, activation_noise, add_gauss",
        ],
    ),
    "unknown-group-option-in-a-sweep": (
        ["--multirun", "param_group=mlp_only,atn"],
        2,
        ["Could not find 'param_group/atn'", "attn_only"],
    ),
    "level-outside-domain": (
        ["degradation=ablation", "degradation.levels=[0,1.5]"],
        2,
        ["degradation.levels", "1.5", "0 ≤ p ≤ 1"],
    ),
    "empty-levels": (["degradation.levels=[]"], 2, ["degradation.levels", "empty"]),
    "max-new-tokens-0": (["generation.max_new_tokens=0"], 2, ["generation.max_new_tokens", "≥ 1"]),
    "max-new-tokens-not-a-number": (["generation.max_new_tokens=abc"], 2, ["generation.max_new_tokens", "'abc'"]),
    "unknown-key-appended": (["+foo=1"], 2, ["foo: unknown key"]),
    "misspelt-key-appended": (
        ["+generation.temprature=0.7"],
        2,
        ["generation.temprature: unknown key", "did you mean 'temperature'?"],
    ),
    "misspelt-key": (["generation.max_new_tokns=3"], 2, ["generation.max_new_tokns", "did you mean 'max_new_tokens'?"]),
    "bad-override-syntax": (["degradation.levels=[0,"], 2, ["[0,"]),
    "image-on-text-model": (["experiment=cookie_theft"], 2, ["experiment.image.enabled", "text-only"]),
    "missing-image": (
        ["model=tiny_random_vlm", "experiment=cookie_theft", "experiment.image.path=/nonexistent/cookie.png"],
        2,
        ["experiment.image.path", "/nonexistent/cookie.png"],
    ),
    # a tiny random model is built, not loaded, so it has no backend to refuse: ask for the embedded model's
    # (its own message, on a new dir, is checked below; here the finished dir's other model is refused first)
    "unsloth-without-cuda": (["model=smollm2_135m", "model.backend=unsloth"], 2, ["model.name"]),
    "layers-past-the-model": (["param_group.layers=[0,99]"], 2, ["param_group.layers"]),
    "slurm-without-slurm": (["--multirun", "hydra/launcher=slurm_gpu"], 2, ["hydra/launcher=slurm_gpu", "sbatch"]),
    "submitit-slurm-without-slurm": (
        ["--multirun", "hydra/launcher=submitit_slurm"],
        2,
        ["hydra/launcher=submitit_slurm", "no SLURM"],
    ),
}


def tree_hashes(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) → the SHA-1 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a refused command; every other line of its output is a plain log line."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "[ERROR]" in line]
    assert len(errors) == 1, output
    assert all(LOG_LINE.match(line) for line in lines), output  # no report spread over several lines
    return errors[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run (2 prompts × 2 levels, 2 tokens each), shared by every case."""
    out = tmp_path_factory.mktemp("bad_input") / "run"
    result = run_cli(*BASE, f"hydra.run.dir={out}", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "records.parquet").is_file() and (out / "run.log").is_file() and (out / ".hydra").is_dir()
    return out


@pytest.mark.parametrize("case", CATALOGUE, ids=list(CATALOGUE))
def test_bad_input_is_one_line_and_changes_no_byte(finished: Path, case: str) -> None:
    overrides, code, fragments = CATALOGUE[case]
    before = tree_hashes(finished)
    flags = [o for o in overrides if o.startswith("--")]  # Hydra's flags go before the overrides
    dir_key = "hydra.sweep.dir" if "--multirun" in flags else "hydra.run.dir"
    rest = [o for o in overrides if o not in flags]
    # "without SLURM" on a machine that has it: a PATH where no sbatch is found (the command needs no other program)
    env = {"PATH": str(finished.parent / "no-programs")} if case.endswith("without-slurm") else None
    result = run_cli(*flags, *BASE, *rest, f"{dir_key}={finished}", timeout=300, env=env)
    assert result.returncode == code, result.stdout + result.stderr
    line = one_error_line(result)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert tree_hashes(finished) == before


@pytest.mark.parametrize(
    ("overrides", "fragments"),
    [
        (["param_group.layers=[0,99]"], ["param_group.layers", "99"]),
        (["model=smollm2_135m", "model.backend=unsloth"], ["model.backend=unsloth", "CUDA"]),
        (["+generation.temprature=0.7"], ["did you mean 'temperature'?"]),
    ],
    ids=["layers-past-the-model", "unsloth-without-cuda", "misspelt-key"],
)
def test_bad_input_on_a_new_dir_creates_nothing(tmp_path: Path, overrides: list[str], fragments: list[str]) -> None:
    """Refused after Hydra made the job dir (and its parents): the command takes back what it created."""
    result = run_cli(*BASE, *overrides, f"hydra.run.dir={tmp_path}/new/run", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error_line(result)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["proc", "file"])
def test_output_dir_that_cannot_be_created_is_one_line(finished: Path, tmp_path: Path, where: str) -> None:
    """``/proc/x`` passes a permission check even as root; the dir is tried for real before Hydra makes it."""
    target = Path("/proc/degrade-test/run") if where == "proc" else finished / "records.jsonl" / "run"
    before = tree_hashes(finished)
    result = run_cli(*BASE, f"hydra.run.dir={target}", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error_line(result)
    assert "hydra.run.dir" in line and str(target.parent if where == "file" else target) in line
    assert not target.exists() and tree_hashes(finished) == before


def test_dry_run_on_a_finished_dir_changes_no_byte(finished: Path) -> None:
    before = tree_hashes(finished)
    result = run_cli(*BASE, "dry_run=true", f"hydra.run.dir={finished}", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: nothing generated, no file written" in result.stdout
    assert tree_hashes(finished) == before


def test_dry_run_on_a_new_dir_creates_nothing(tmp_path: Path) -> None:
    result = run_cli(*BASE, "dry_run=true", f"hydra.run.dir={tmp_path}/new/run", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run:" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_copy_of_the_finished_run_resumes_with_nothing_to_do(finished: Path, tmp_path: Path) -> None:
    """The cases above refuse; the same command without the mistake still runs, on a copy of the dir."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    result = run_cli(*BASE, f"hydra.run.dir={copy}", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 generated, 4 already there" in result.stdout


def test_keys_the_schemas_define_and_hydras_own_node_are_not_flagged() -> None:
    """The unknown-key check passes every key a preset sets, and Hydra's ``hydra`` node."""
    from hydra import compose, initialize_config_dir

    from degrade.config.compose import check_known_keys, register_configs
    from degrade.paths import CONF_DIR

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for overrides in (
            ["variant=gauss_attn", "experiment=iq", "generation=sampling", "model=tiny_random"],
            ["degradation=uni_quant", "degradation.range={min: 1024, max: 4, steps: 3, spacing: geometric}"],
            ["model=tiny_random_vlm", "experiment=cookie_theft", "param_group=vision", "param_group.layers=[0,1]"],
        ):
            check_known_keys(compose(config_name="config", overrides=overrides, return_hydra_config=True))
