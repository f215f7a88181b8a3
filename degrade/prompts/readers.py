"""Prompt files by format: each reader returns the file's prompt sets, by name, as raw items.

A raw item is a string (its text) or a mapping with ``text`` and optional ``id``, ``category``
and ``answers``. A file with one set returns it under the name None. The format is the file's
suffix; a new one is one reader added to :data:`READERS`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from degrade.errors import ConfigError
from degrade.prompts.pymodule import read_module

KEY = "experiment.prompts_file"
Sets = dict["str | None", list[Any]]
_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16", b"\x00\x00\xfe\xff": "UTF-32"}


def read_text(path: Path, key: str = KEY) -> str:
    """The file's text: UTF-8, with or without a byte-order mark (a spreadsheet's CSV has one).

    Raises:
        ConfigError: the file is not UTF-8 (UTF-16, Latin-1, …), naming the first byte that is not.
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        found = next((name for bom, name in _BOMS.items() if data.startswith(bom)), None)
        what = f"it is {found}" if found else f"byte {exc.start} is 0x{data[exc.start]:02x}"
        raise ConfigError(key, f"{path}: not UTF-8 text ({what}); save it as UTF-8") from None


def _structured(data: Any, path: Path) -> Sets:
    """A list is one set; a mapping of names to lists is several."""
    if isinstance(data, list):
        return {None: data}
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return {str(name): items for name, items in data.items()}
    raise ConfigError(KEY, f"{path}: expected a list of prompts, or a mapping of set names to such lists")


def read_yaml(path: Path) -> Sets:
    try:
        return _structured(yaml.safe_load(read_text(path)), path)
    except yaml.YAMLError as exc:
        raise ConfigError(KEY, f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def read_json(path: Path) -> Sets:
    try:
        return _structured(json.loads(read_text(path)), path)
    except ValueError as exc:
        raise ConfigError(KEY, f"{path}: not valid JSON ({exc})") from None


def read_jsonl(path: Path) -> Sets:
    items = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError:
            raise ConfigError(KEY, f"{path}, line {number}: not a JSON object") from None
    return {None: items}


def read_csv(path: Path) -> Sets:
    rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
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
    lists = read_module(path, read_text(path))
    return {name: [{"text": t, "category": c} for t, c in items] for name, items in lists.items()}


READERS: dict[str, Callable[[Path], Sets]] = {
    ".yaml": read_yaml,
    ".yml": read_yaml,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".csv": read_csv,
    ".py": read_python,
}
