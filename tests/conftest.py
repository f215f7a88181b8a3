"""Shared fixtures: in-process Hydra composition and tiny real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from degrade.config.compose import compose_config as compose_cfg  # noqa: F401 - the tests' composer
from degrade.model.tiny import tiny_config
from degrade.paths import CONF_DIR
from degrade.paths import ROOT as REPO_ROOT

ROOT = REPO_ROOT
CONF = CONF_DIR


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``scripts/run.py`` as a user would, from the repo root."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def build_tiny(arch: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A tiny random model of ``arch`` (seeded), as Transformers builds it from a config."""
    from transformers import AutoModelForCausalLM, Gemma3ForConditionalGeneration

    torch.manual_seed(0)
    config = tiny_config(arch)
    model = Gemma3ForConditionalGeneration(config) if arch == "gemma3_vlm" else AutoModelForCausalLM.from_config(config)
    return model.to(dtype).eval()


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded SmolLM2, converted once into the cache (tokenizer and weights)."""
    from degrade.model.loading import embedded_dir

    return embedded_dir()
