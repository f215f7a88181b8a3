"""Reading the README and the pages of docs/ as a reader sees them: sections, tables, snippets.

Shared by the tests that hold the docs to the code (``test_docs.py``, ``test_docs_reference.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def page(name: str) -> str:
    """The text of ``docs/<name>``."""
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown text (up to the next ``##`` heading)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def cells(line: str) -> list[str]:
    """The cells of one Markdown table row (a ``\\|`` inside a cell is not a separator)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def table(text: str, first_header: str) -> list[list[str]]:
    """The body rows (their cells) of every Markdown table in ``text`` whose first header cell is ``first_header``."""
    rows: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        row = cells(line)
        if not in_table:
            in_table = row[0] == first_header
            continue
        if not set(row[0]) <= set("-:"):  # not the separator row
            rows.append(row)
    return rows


def table_rows(text: str, first_header: str) -> dict[str, list[str]]:
    """Rows of every Markdown table in ``text`` whose first header cell is ``first_header``, keyed by
    the backticked name in their first cell."""
    rows: dict[str, list[str]] = {}
    for row in table(text, first_header):
        name = row[0].strip("`")
        assert name not in rows, f"{name} is documented twice"
        rows[name] = row[1:]
    return rows


def code_names(cell: str) -> list[str]:
    """The backticked names in a table cell, in order."""
    return re.findall(r"`([^`]+)`", cell)


def snippet(name: str, doc: Path = README) -> str:
    """The fenced Python block right after the ``<!-- snippet: name ... -->`` marker of ``doc``."""
    text = doc.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)}\b[^>]*-->\n```python\n(.*?)```", text, flags=re.S)
    assert match, f"{doc.name} has no snippet '{name}'"
    return match.group(1)
