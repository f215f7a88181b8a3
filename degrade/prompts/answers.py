"""Accepted answers from a file of their own (``experiment.answers_file``), added to a prompt set by id.

The study's math items had no answers in its prompt module; a file of id → accepted answers lets
them be scored automatically. YAML or JSON: a mapping of ids to a list of answers (or one answer);
CSV: columns ``id`` and ``answers``, answers separated by ``|``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

import yaml

from degrade.errors import ConfigError
from degrade.prompts import answer_list, existing, writable
from degrade.prompts.readers import read_text

KEY = "experiment.answers_file"
FORMATS = (".yaml", ".yml", ".json", ".csv")


def read_answers(path: str) -> dict[str, list[str]]:
    """Accepted answers by prompt id.

    Raises:
        ConfigError: a missing file, another format, or a file of another shape.
    """
    found = existing(path, KEY, FORMATS)
    if found.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(found, KEY), newline=""))
        rows = list(reader)
        if not {"id", "answers"} <= set(reader.fieldnames or ()):
            raise ConfigError(KEY, f"{path}: a CSV answers file needs the columns id and answers (answers split by |)")
        return {r["id"]: [a.strip() for a in (r["answers"] or "").split("|") if a.strip()] for r in rows}
    data = _mapping(found)
    answers = {str(k): answer_list(v, f"{path}, id {k}", KEY) or [] for k, v in data.items()}
    for ident, accepted in answers.items():
        for value in (ident, *accepted):
            writable(value, f"{path}, id {ident}", KEY)
    return answers


def _mapping(path: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(read_text(path, KEY))  # JSON is YAML too
    except RecursionError:
        raise ConfigError(KEY, f"{path}: nested too deeply to be read") from None
    except yaml.YAMLError as exc:
        raise ConfigError(KEY, f"{path}: unreadable ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(KEY, f"{path}: expected a mapping of prompt ids to accepted answers")
    return data


def add_answers(prompts: list[Any], path: str) -> list[Any]:
    """``prompts`` with the answers of ``path`` set on the prompts it names (others unchanged).

    Raises:
        ConfigError: the file names ids the set does not have (the first few are listed).
    """
    answers = read_answers(path)
    unknown = sorted(set(answers) - {p.id for p in prompts})
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ConfigError(KEY, f"{path} names ids the prompt set does not have: {shown}")
    return [dataclasses.replace(p, answers=answers[p.id] or None) if p.id in answers else p for p in prompts]
