"""The bad inputs a user types, each run as a real command against a dir that holds a finished run.

Every one must end in exactly one error line naming what is wrong (no traceback, no Hydra
report over several lines), a non-zero exit code, and the finished dir byte for byte as it
was: its records, its metadata, its log and its ``.hydra/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, run_cli

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
    "seed-below-0": (["seed=-1"], 2, ["seed: -1; seeds run from 0 to 4294967295"]),
    "seed-past-numpys": (
        ["experiment.seed=4294967295", "experiment.n_rep=2"],
        2,
        ["experiment.seed: 4294967295", "repetition r is seeded with experiment.seed + r, up to 4294967296"],
    ),
    "exclude-not-a-regex": (["param_group.exclude=['mlp.(up']"], 2, ["param_group.exclude: 'mlp.(up'", "regular"]),
    "temperature-inf": (["generation=sampling", "generation.temperature=inf"], 2, ["generation.temperature: inf"]),
    "repetition-penalty-inf": (["generation.repetition_penalty=inf"], 2, ["generation.repetition_penalty: inf"]),
    "range-of-a-hundred-million-levels": (
        ["degradation.range={min: 0, max: 1, steps: 100000000}"],
        2,
        ["degradation.range.steps: 100000000; at most 1000 levels"],
    ),
    "name-suffix-too-long-for-a-file-name": (
        ["name_suffix=" + "x" * 300],
        2,
        ["name_suffix: the result file's name outputs_mult_gauss_tiny-random-llama_xx", "200"],
    ),
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
        (
            ["generation.max_new_tokens=1000000000"],
            [
                "generation.max_new_tokens: 1000000000: with the longest prompt's",
                "takes its context, 512; give at most",
            ],
        ),
        (
            ["model.max_seq_length=16"],
            ["generation.max_new_tokens: 2:", "takes model.max_seq_length=16; give at most 0"],
        ),
    ],
    ids=["layers-past-the-model", "unsloth-without-cuda", "misspelt-key", "past-the-context", "past-max-seq-length"],
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


STUDY_RECORD = {  # the original study's shape: its level in std_dev, the hub id as the model
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


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"metadata.json": b'{"author": "me", "notes": "my own"}'}, "metadata.json was not written by a degrade job"),
        ({"metadata.json": b"[1, 2]"}, "metadata.json was not written by a degrade job (it holds an array"),
        ({"metadata.json": b'"done"'}, "metadata.json was not written by a degrade job (it holds a string"),
        ({"param_group.json": b'{"mine": true}'}, "param_group.json was not written by a degrade job"),
        (
            {"outputs_mult_gauss_tiny-random-llama_dreams.json": json.dumps([STUDY_RECORD] * 3).encode()},
            "holds records of another job (model_name 'gemma-3-4b-it', param_group_name 'attn_only')",
        ),
    ],
    ids=["users-metadata", "metadata-an-array", "metadata-a-string", "users-param-group", "study-file-of-another-job"],
)
def test_a_dir_holding_files_no_job_wrote_is_refused_and_kept(tmp_path: Path, files: dict, fragment: str) -> None:
    """A job never writes over a file it did not write: the user's own, or a result file of another job."""
    run = tmp_path / "run"
    run.mkdir()
    for name, content in files.items():
        (run / name).write_bytes(content)
    result = run_cli(*BASE, f"hydra.run.dir={run}", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in one_error_line(result)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


def test_the_studys_own_file_seeds_the_journal_and_is_kept_as_it_was(tmp_path: Path) -> None:
    """The study's file of this very configuration is adopted (resume's documented way in), after a copy is kept."""
    run = tmp_path / "run"
    run.mkdir()
    mine = {**STUDY_RECORD, "model_name": "tiny-random-llama", "param_group_name": "mlp_only", "std_dev": 0.0}
    view = run / "outputs_mult_gauss_tiny-random-llama_dreams.json"
    view.write_bytes(json.dumps([mine]).encode())
    original = view.read_bytes()
    result = run_cli(*BASE, f"hydra.run.dir={run}", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (kept,) = run.glob("previous-*/" + view.name)
    assert kept.read_bytes() == original
    assert len(json.loads(view.read_text())) == 5  # the study's record and the 4 new ones


def test_an_empty_run_dir_is_refused_and_the_current_dir_is_left_alone(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *BASE, "hydra.run.dir=''"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_error_line(result).endswith(
        "hydra.run.dir: empty: the jobs would write into the current dir; give a dir"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_journal_line_with_key_fields_of_the_wrong_type_stops_the_job(finished: Path, tmp_path: Path) -> None:
    """A level that is text, or a repetition that is a list, is an unreadable line: one line, nothing changed."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    lines = (copy / "records.jsonl").read_bytes().splitlines(keepends=True)
    record = json.loads(lines[0])
    record.update(level_value="high", repeat_index=[0])
    lines[0] = json.dumps(record).encode() + b"\n"
    (copy / "records.jsonl").write_bytes(b"".join(lines))
    before = tree_hashes(copy)
    result = run_cli(*BASE, f"hydra.run.dir={copy}", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "records.jsonl: line 1 is unreadable and is not the last line" in one_error_line(result)
    assert tree_hashes(copy) == before


def test_an_image_decompression_bomb_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """A PNG whose header says 100000 × 100000 pixels: PIL would try to decode ten billion of them."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    args = ["model=tiny_random_vlm", "experiment=cookie_theft", f"experiment.image.path={bomb}"]
    result = run_cli(*BASE, *args, f"hydra.run.dir={tmp_path}/run", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "experiment.image.path: " in one_error_line(result) and "decompression bomb" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.png"]
