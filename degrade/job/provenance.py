"""Provenance for ``metadata.json``: config hash, code version, environment, device."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from degrade.paths import ROOT

_STARTED: list[float] = []  # when this process's first job started, once it has


def process_start_seconds(now: float) -> float:
    """Seconds from this process's creation to ``now`` (a ``time.time()``) for its first job, 0 for the later ones.

    The interpreter's start, the imports and Hydra's composition come before a process's first job; the later
    jobs of a multirun share that process.
    """
    if _STARTED:
        return 0.0
    _STARTED.append(now)
    import psutil

    return max(now - psutil.Process().create_time(), 0.0)


PACKAGES = (
    "degrade",
    "torch",
    "transformers",
    "accelerate",
    "hydra-core",
    "omegaconf",
    "pyarrow",
    "pandas",
    "numpy",
    "gguf",
    "safetensors",
    "bitsandbytes",
    "unsloth",
)


def config_hash(resolved_yaml: str) -> str:
    return hashlib.sha256(resolved_yaml.encode()).hexdigest()


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit of the code that ran, and whether its tree had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "argv": sys.argv,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
    }
