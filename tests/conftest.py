"""Shared fixtures: in-process Hydra composition and tiny real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from degrade.config import RunConfig, register_configs, to_run_config
from degrade.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
register_configs()


def compose_cfg(*overrides: str) -> RunConfig:
    """Compose conf/config.yaml with ``overrides`` and convert it to the typed config."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_run_config(compose(config_name="config", overrides=list(overrides)))


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``scripts/run.py`` as a user would, from the repo root."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


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
    from degrade.loading import embedded_dir

    return embedded_dir()
