"""The docs say what the code does.

``docs/records.md`` must list exactly the fields of the record contract (names and types,
read from ``degrade/records/contract.py``), and the README's analysis snippets, copied out of the
README as a user would copy them, must count every record of a real sweep exactly once,
with the sweep's own report sitting inside the sweep dir.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from degrade.records.contract import KEY_FIELDS, SCHEMA, Record
from degrade.records.store import JOURNAL, read_journal

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RECORDS_DOC = ROOT / "docs" / "records.md"
# The placeholder paths the README's snippets use; the tests put a real sweep or job dir in their place.
EXAMPLE_SWEEP = "multirun/2026-11-22/02-49-24"
EXAMPLE_JOB = "outputs/2026-11-22/02-49-24"

LEVELS = [0, 0.1]
GROUPS = ["attn", "mlp"]
PROMPTS = 2


# --- docs/records.md against the code -------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section of a Markdown text (up to the next ``##`` heading)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def table_rows(text: str, first_header: str) -> dict[str, list[str]]:
    """Rows of every Markdown table in ``text`` whose first header cell is ``first_header``, keyed by
    the backticked name in their first cell."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not in_table:
            in_table = cells[0] == first_header
            continue
        if set(cells[0]) <= set("-:"):  # the separator row
            continue
        name = cells[0].strip("`")
        assert name not in rows, f"{name} is documented twice"
        rows[name] = cells[1:]
    return rows


def type_words(arrow_type: pa.DataType) -> str:
    """How docs/records.md names a column's type."""
    if pa.types.is_string(arrow_type):
        return "string"
    if pa.types.is_floating(arrow_type):
        return "float"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_struct(arrow_type):
        return "struct"
    if pa.types.is_list(arrow_type) and pa.types.is_string(arrow_type.value_type):
        return "list of strings"
    raise AssertionError(f"docs/records.md has no word for {arrow_type}")


def documented_type(field: Any) -> str:
    """The type a Record field must be documented with: its Arrow type, 'or null' when it is Optional."""
    optional = str(field.type).startswith("Optional[")
    return type_words(SCHEMA.field(field.name).type) + (" or null" if optional else "")


@pytest.fixture(scope="module")
def fields_doc() -> str:
    return section(RECORDS_DOC.read_text(encoding="utf-8"), "Fields")


def test_records_doc_lists_exactly_the_contracts_fields(fields_doc: str) -> None:
    documented = table_rows(fields_doc, "field")
    contract = [f.name for f in fields(Record)]
    assert sorted(set(contract) - set(documented)) == [], "fields of Record missing from docs/records.md"
    assert sorted(set(documented) - set(contract)) == [], "fields documented that Record does not have"


def test_records_doc_gives_each_field_its_type(fields_doc: str) -> None:
    documented = table_rows(fields_doc, "field")
    wrong = {
        f.name: (documented[f.name][0], documented_type(f))
        for f in fields(Record)
        if f.name in documented and documented[f.name][0] != documented_type(f)
    }
    assert wrong == {}, "documented type != the contract's (documented, contract)"


def test_records_doc_lists_exactly_the_gen_params_keys(fields_doc: str) -> None:
    documented = table_rows(fields_doc, "key")
    struct = SCHEMA.field("gen_params").type
    contract = {struct.field(i).name: type_words(struct.field(i).type) for i in range(struct.num_fields)}
    assert {k: v[0].removesuffix(" or null") for k, v in documented.items()} == contract


def test_records_doc_states_the_record_key() -> None:
    key_section = section(RECORDS_DOC.read_text(encoding="utf-8"), "The record key")
    stated = re.search(r"```\n\((.*?)\)\n```", key_section, flags=re.S)
    assert stated, "the record key is not stated as a tuple in a code block"
    assert tuple(k.strip() for k in stated.group(1).split(",")) == KEY_FIELDS


def test_readme_and_docs_link_to_files_that_exist() -> None:
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        assert "SPEC" not in text, f"{doc.name} cites a document that is not in the repository"
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        local = [t for t in targets if "://" not in t]
        missing = [t for t in local if not (doc.parent / t).exists()]
        assert missing == [], f"{doc.name} links to missing files"


# --- the README's analysis snippets against a real sweep ----------------------------------------------


def snippet(name: str) -> str:
    """The fenced Python block right after the README's ``<!-- snippet: name ... -->`` marker."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)}\b[^>]*-->\n```python\n(.*?)```", text, flags=re.S)
    assert match, f"README has no snippet '{name}'"
    return match.group(1)


def run_snippet(code: str) -> tuple[dict[str, Any], Any]:
    """Run ``code`` as a notebook cell: its namespace, and the value of its last line when that is an expression."""
    tree = ast.parse(code)
    last = tree.body.pop() if isinstance(tree.body[-1], ast.Expr) else None
    namespace: dict[str, Any] = {}
    exec(compile(tree, "README.md", "exec"), namespace)
    shown = eval(compile(ast.Expression(last.value), "README.md", "eval"), namespace) if last else None
    return namespace, shown


def with_path(code: str, placeholder: str, real: Path) -> str:
    assert placeholder in code, f"the snippet no longer reads {placeholder}"
    return code.replace(placeholder, real.as_posix())


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-job sweep of the tiny random model, with its report written inside the sweep dir."""
    out = tmp_path_factory.mktemp("readme") / "sweep"
    command = [
        sys.executable,
        "scripts/run.py",
        "--multirun",
        "model=tiny_random",
        f"experiment.limit={PROMPTS}",
        "generation.max_new_tokens=2",
        f"degradation.levels=[{','.join(map(str, LEVELS))}]",
        f"param_group={','.join(GROUPS)}",
        f"hydra.sweep.dir={out}",
    ]
    ran = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    report = subprocess.run(
        [sys.executable, "scripts/report.py", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    return out


def journal_records(sweep: Path) -> int:
    """Records in every journal under the sweep (found anywhere below it, not the way the snippets look)."""
    return sum(len(read_journal(path).records) for path in sweep.rglob(JOURNAL))


@pytest.mark.slow
def test_the_sweep_holds_the_hazard_the_snippets_must_avoid(sweep: Path) -> None:
    # The report wrote a combined Parquet of every record inside the sweep dir: a careless glob reads it too.
    assert list((sweep / "report").glob("*.parquet")), "the report wrote no Parquet inside the sweep dir"
    assert journal_records(sweep) == len(GROUPS) * len(LEVELS) * PROMPTS


@pytest.mark.slow
def test_pandas_snippet_counts_every_record_once(sweep: Path) -> None:
    namespace, shown = run_snippet(with_path(snippet("sweep-pandas"), EXAMPLE_SWEEP, sweep))
    expected = journal_records(sweep)
    assert len(namespace["df"]) == expected
    assert int(shown["n"].sum()) == expected
    assert sorted(shown.index.get_level_values("param_group_name").unique()) == sorted(GROUPS)


@pytest.mark.slow
def test_duckdb_snippet_counts_every_record_once(sweep: Path) -> None:
    _, shown = run_snippet(with_path(snippet("sweep-duckdb"), EXAMPLE_SWEEP, sweep))
    assert int(shown["n"].sum()) == journal_records(sweep)
    assert sorted(shown["param_group_name"].unique()) == sorted(GROUPS)
    assert sorted(shown["level_value"].unique()) == LEVELS


@pytest.mark.slow
def test_job_snippet_reads_one_job(sweep: Path) -> None:
    job = next(p.parent for p in sorted(sweep.rglob(JOURNAL)))
    namespace, shown = run_snippet(with_path(snippet("job-pandas"), EXAMPLE_JOB, job))
    assert len(namespace["df"]) == len(read_journal(job / JOURNAL).records)
    assert sorted(shown.index) == LEVELS
