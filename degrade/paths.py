"""Where the repository's own files are: the one place that computes the root from this package's location."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
SCRIPTS_DIR = ROOT / "scripts"
