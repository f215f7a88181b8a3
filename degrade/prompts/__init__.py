"""Prompt sets from files: YAML, JSON, JSONL, CSV, or the original study's Python prompt module.

:func:`load_prompt_set` reads one set (``experiment.prompts_file`` and ``experiment.prompts_name``)
and checks it; :func:`degrade.prompts.answers.add_answers` adds accepted answers by id
(``experiment.answers_file``).
Ids are taken from the file where it gives them, else the 1-based position in the list (the
study's own ``prompt_id``), always as text. Every problem is one :class:`ConfigError` line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from degrade.errors import ConfigError
from degrade.prompts.pymodule import MAX_ITEMS
from degrade.prompts.readers import READERS

KEY = "experiment.prompts_file"


@dataclass(frozen=True)
class FilePrompt:
    """One prompt read from a file."""

    id: str
    text: str
    category: str | None = None
    answers: list[str] | None = None


def existing(path: str, key: str, formats: tuple[str, ...] = tuple(READERS)) -> Path:
    """``path`` as a file of one of ``formats`` (suffixes), or one line saying why not."""
    found = Path(path).expanduser()
    if not found.is_file():
        raise ConfigError(key, f"{path}: no such file")
    if found.suffix.lower() not in formats:
        raise ConfigError(key, f"{path}: unknown format {found.suffix!r}; allowed: {', '.join(formats)}")
    return found


def answer_list(value: Any, where: str, key: str = KEY) -> list[str] | None:
    """Accepted answers as texts: a list of texts or numbers, or one of them; None for none."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
        raise ConfigError(key, f"{where}: answers must be a list of texts or numbers")
    return [str(v) for v in values] or None


def _prompt(item: Any, position: int, where: str) -> FilePrompt:
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
        raise ConfigError(KEY, f"{where}, item {position}: give a text, or an object with a non-empty 'text'")
    unknown = sorted(set(item) - {"id", "text", "category", "answers"})
    if unknown:
        allowed = "allowed: id, text, category, answers"
        raise ConfigError(KEY, f"{where}, item {position}: unknown keys {unknown}; {allowed}")
    ident = item.get("id")
    category = item.get("category")
    prompt = FilePrompt(
        id=str(ident) if ident is not None else str(position),
        text=item["text"],
        category=str(category) if category is not None else None,
        answers=answer_list(item.get("answers"), f"{where}, item {position}"),
    )
    for value in (prompt.id, prompt.text, prompt.category, *(prompt.answers or [])):
        writable(value, f"{where}, item {position}")
    return prompt


def writable(value: str | None, where: str, key: str = KEY) -> None:
    """Refuse text UTF-8 cannot write (a lone surrogate, from an escape such as ``\\ud800``): no record holds it."""
    try:
        (value or "").encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start] if value else ""
        raise ConfigError(key, f"{where}: holds {bad!r}, half of a surrogate pair, which is not text") from None


def load_prompt_set(path: str, name: str | None = None) -> list[FilePrompt]:
    """The prompts of one set in ``path``.

    Args:
        path: A .yaml/.yml, .json, .jsonl, .csv or .py file.
        name: The set, where the file holds several (a mapping's key, a Python list's name).

    Raises:
        ConfigError: a missing file, an unknown format, an unknown or missing set name (the names
            found are listed), non-literal content in a Python file, an empty set, duplicate ids.
    """
    found = existing(path, KEY)
    try:
        sets = READERS[found.suffix.lower()](found)
    except RecursionError:
        raise ConfigError(KEY, f"{path}: nested too deeply to be read as a prompt set") from None
    if not sets:
        raise ConfigError(KEY, f"{path}: holds no prompt set (a list of prompts, or lists of them by name)")
    names = ", ".join(str(n) for n in sets)
    if name is not None and name not in sets:
        raise ConfigError("experiment.prompts_name", f"{name!r} is not a set of {path}; the sets there: {names}")
    if name is None and len(sets) > 1:
        raise ConfigError("experiment.prompts_name", f"missing; {path} holds several sets: {names}")
    chosen = name if name is not None else next(iter(sets))
    where = f"{path}" + (f" [{chosen}]" if chosen is not None else "")
    if len(sets[chosen]) > MAX_ITEMS:
        raise ConfigError(KEY, f"{where}: more than {MAX_ITEMS:,} prompts")
    prompts = [_prompt(item, position, where) for position, item in enumerate(sets[chosen], start=1)]
    if not prompts:
        raise ConfigError(KEY, f"{where}: the set is empty")
    dupes = sorted(i for i, n in Counter(p.id for p in prompts).items() if n > 1)
    if dupes:
        raise ConfigError(KEY, f"{where}: duplicate ids {dupes}; every id must be unique")
    return prompts
