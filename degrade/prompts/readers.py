"""Prompt files by format: each reader returns the file's prompt sets, by name, as raw items.

A raw item is a string (its text) or a mapping with ``text`` and optional ``id``, ``category``
and ``answers``. A file with one set returns it under the name None. The format is the file's
suffix; a new one is one reader added to :data:`READERS`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from degrade.errors import ConfigError
from degrade.prompts.pymodule import read_module

KEY = "experiment.prompts_file"
Sets = dict["str | None", list[Any]]


def _structured(data: Any, path: Path) -> Sets:
    """A list is one set; a mapping of names to lists is several."""
    if isinstance(data, list):
        return {None: data}
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return {str(name): items for name, items in data.items()}
    raise ConfigError(KEY, f"{path}: expected a list of prompts, or a mapping of set names to such lists")


def read_yaml(path: Path) -> Sets:
    try:
        return _structured(yaml.safe_load(path.read_text(encoding="utf-8")), path)
    except yaml.YAMLError as exc:
        raise ConfigError(KEY, f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def read_json(path: Path) -> Sets:
    try:
        return _structured(json.loads(path.read_text(encoding="utf-8")), path)
    except ValueError as exc:
        raise ConfigError(KEY, f"{path}: not valid JSON ({exc})") from None


def read_jsonl(path: Path) -> Sets:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError:
            raise ConfigError(KEY, f"{path}, line {number}: not a JSON object") from None
    return {None: items}


def read_csv(path: Path) -> Sets:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
        columns = rows[0].keys() if rows else []
    if "text" not in columns:
        raise ConfigError(KEY, f"{path}: a CSV file needs a 'text' column (optional: id, category, answers)")
    items = []
    for row in rows:
        item = {k: (v if v != "" else None) for k, v in row.items() if k in ("id", "text", "category")}
        if row.get("answers"):
            item["answers"] = [a.strip() for a in row["answers"].split("|") if a.strip()]
        items.append(item)
    return {None: items}


def read_python(path: Path) -> Sets:
    return {name: [{"text": t, "category": c} for t, c in items] for name, items in read_module(path).items()}


READERS: dict[str, Callable[[Path], Sets]] = {
    ".yaml": read_yaml,
    ".yml": read_yaml,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".csv": read_csv,
    ".py": read_python,
}
