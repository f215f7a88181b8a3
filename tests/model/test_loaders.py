"""Backend selection (Unsloth only where CUDA and unsloth both are; Transformers otherwise) and hub ids.

The Unsloth loading path itself needs a GPU and is not exercised here. Hub tests send nothing to the network.
The install script's choice of interpreter is checked here too (it installs nothing when asked only that).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg, run_cli

from degrade.errors import ConfigError, DegradeError
from degrade.model import loading
from degrade.model.loaders import select_backend
from degrade.model.tiny import build_random_model


@pytest.mark.parametrize(
    ("cuda", "unsloth", "gguf", "expected"),
    [
        (True, True, False, "unsloth"),
        (True, False, False, "transformers"),
        (False, True, False, "transformers"),
        (False, False, False, "transformers"),
        (True, True, True, "transformers"),  # Unsloth does not read GGUF
    ],
)
def test_auto_picks_unsloth_only_with_cuda_and_unsloth(cuda: bool, unsloth: bool, gguf: bool, expected: str) -> None:
    assert select_backend("auto", cuda=cuda, unsloth=unsloth, gguf=gguf) == expected


@pytest.mark.parametrize("cuda", [True, False])
@pytest.mark.parametrize("unsloth", [True, False])
@pytest.mark.parametrize("gguf", [True, False])
def test_transformers_is_always_allowed(cuda: bool, unsloth: bool, gguf: bool) -> None:
    assert select_backend("transformers", cuda=cuda, unsloth=unsloth, gguf=gguf) == "transformers"


@pytest.mark.parametrize(
    ("cuda", "unsloth", "needs"),
    [
        (False, True, "a CUDA GPU"),
        (True, False, "the unsloth package"),
        (False, False, "a CUDA GPU and the unsloth"),
    ],
)
def test_unsloth_where_it_cannot_run_names_what_is_missing(cuda: bool, unsloth: bool, needs: str) -> None:
    with pytest.raises(DegradeError, match="model.backend=unsloth: needs " + needs):
        select_backend("unsloth", cuda=cuda, unsloth=unsloth)


def test_cli_unsloth_on_this_machine_is_one_line(tmp_path) -> None:
    """Where Unsloth cannot run, asking for it ends the run with that one line and exit code 2."""
    try:
        select_backend("unsloth", gguf=True)  # the default model is the embedded GGUF
    except DegradeError as exc:
        expected = str(exc)
    else:
        pytest.skip("Unsloth can run on this machine")
    result = run_cli("model.backend=unsloth", "experiment.limit=1", f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    [line] = [line for line in output.splitlines() if "model.backend" in line]
    assert "[ERROR]" in line and line.endswith(expected)


# --- a hub id: one short look, or none offline; never a long retry loop --------------------

UNKNOWN = "nobody-h2/no-such-model"
UNREACHABLE = (
    f"model.source: cannot reach the hub for '{UNKNOWN}' and it is not in the local cache (HF_HUB_OFFLINE is set); "
    "pass a local directory or a .gguf file, or connect"
)
SECRET = "hf_doNotLogThisTokenAnywhere123"


def test_offline_hub_id_not_cached_fails_at_once_in_one_line(monkeypatch, tmp_path, caplog) -> None:
    """With HF_HUB_OFFLINE=1 nothing is sent: a hub id missing from the cache is refused at once, token unsaid."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    cfg = compose_cfg(f"model.source={UNKNOWN}", "model.name=unknown")
    start = time.perf_counter()
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as info:
        loading.load(cfg.model, "cpu")
    assert time.perf_counter() - start < 3
    assert str(info.value) == UNREACHABLE
    assert SECRET not in caplog.text


def test_cli_offline_hub_id_is_one_error_line_and_no_retries(tmp_path) -> None:
    """The whole run ends with that one line and exit code 2: no traceback, no retry warnings, no token."""
    start = time.perf_counter()
    result = run_cli(
        f"model.source={UNKNOWN}",
        "experiment.limit=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": SECRET},
    )
    seconds = time.perf_counter() - start
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    [line] = [line for line in output.splitlines() if "model.source" in line]
    assert "[ERROR]" in line and line.endswith(UNREACHABLE)
    assert "Traceback" not in output and "etry" not in output and SECRET not in output
    assert seconds < 60  # a Python start and a Hydra compose on a shared CPU; the hub part itself is instant


def test_offline_hub_id_in_the_local_cache_loads_from_it(tmp_path, embedded_dir) -> None:
    """A hub id already in the Hugging Face cache loads offline from there (a real cache layout, in a child process)."""
    model, tokenizer = build_random_model("llama", tokenizer_dir=embedded_dir)
    snapshot = tmp_path / "hf" / "hub" / "models--nobody-h2--cached-tiny" / "snapshots" / "0123456789abcdef"
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123456789abcdef")
    script = (
        "from degrade.config.compose import compose_config\n"
        "from degrade.model import loading\n"
        "cfg = compose_config('model=tiny_random', 'model.source=nobody-h2/cached-tiny', 'model.name=cached')\n"
        "loaded = loading.load(cfg.model, 'cpu')\n"
        "print(loaded.source, sum(p.numel() for p in loaded.model.parameters()))\n"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nobody-h2/cached-tiny", str(sum(p.numel() for p in model.parameters()))]


# --- install.sh: which interpreter it installs into ------------------------------------------

INSTALL = ROOT / "scripts" / "install.sh"


def which_python(path: Path, **env: str) -> subprocess.CompletedProcess:
    """``install.sh --which-python`` (installs nothing) with only ``path`` on PATH."""
    return subprocess.run(
        ["/bin/bash", str(INSTALL), "--which-python"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(path), **env},
    )


def bin_with(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(sys.executable)
    return folder


@pytest.mark.parametrize(("present", "chosen"), [(["python3"], "python3"), (["python", "python3"], "python")])
def test_install_uses_python_else_python3(tmp_path, present: list[str], chosen: str) -> None:
    """A machine with only python3 installs with python3; with both, python."""
    result = which_python(bin_with(tmp_path, *present))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{chosen}\n", "")


def test_install_python_variable_wins(tmp_path) -> None:
    result = which_python(bin_with(tmp_path, "python", "python3"), PYTHON=sys.executable)
    assert (result.returncode, result.stdout) == (0, f"{sys.executable}\n")


def test_install_without_any_python_says_so_in_one_line(tmp_path) -> None:
    result = which_python(bin_with(tmp_path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "install: no python or python3 on PATH; set PYTHON=/path/to/python\n"
