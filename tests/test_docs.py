"""The docs say what the code does.

``docs/records.md`` must list exactly the fields of the record contract (names and types,
read from ``degrade/records/contract.py``); every link of the README and of ``docs/`` must point
at a file that exists, and every page of ``docs/`` must be in the site's nav (``mkdocs.yml``); the
analysis snippets (the README's and ``docs/statistics.md``'s), copied out as a user would copy
them, must count every record of a real sweep exactly once, with the sweep's own report sitting
inside the sweep dir; and the Python API page's example must run a job and write its report.
The other tables of ``docs/`` are checked against the code in ``test_docs_reference.py``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from docs_text import DOCS, README, ROOT, section, snippet, table_rows

from degrade.records.contract import KEY_FIELDS, SCHEMA, Record
from degrade.records.store import JOURNAL, read_journal

RECORDS_DOC = DOCS / "records.md"
ANALYSIS_DOC = DOCS / "statistics.md"  # the sweep snippets
API_DOC = DOCS / "api.md"
# The placeholder paths the snippets use; the tests put a real sweep, job or output dir in their place.
EXAMPLE_SWEEP = "multirun/2026-11-22/02-49-24"
EXAMPLE_JOB = "outputs/2026-11-22/02-49-24"
EXAMPLE_OUT = "outputs/api-example"

LEVELS = [0, 0.1]
GROUPS = ["attn", "mlp"]
PROMPTS = 2


# --- docs/records.md against the code -------------------------------------------------------------


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


def doc_pages() -> list[Path]:
    """Every page of the site: the Markdown files under docs/."""
    return sorted(DOCS.rglob("*.md"))


def nav_pages(nav: Any) -> list[str]:
    """The page paths (relative to docs/) named anywhere in mkdocs.yml's nav."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def test_every_docs_page_is_in_the_sites_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = nav_pages(config["nav"])
    pages = [p.relative_to(DOCS).as_posix() for p in doc_pages()]
    assert sorted(set(pages) - set(listed)) == [], "pages of docs/ missing from mkdocs.yml's nav"
    assert sorted(set(listed) - set(pages)) == [], "mkdocs.yml's nav names pages docs/ does not have"
    assert len(listed) == len(set(listed)), "a page is in the nav twice"


def test_readme_and_docs_link_to_files_that_exist() -> None:
    for doc in [README, *doc_pages()]:
        text = doc.read_text(encoding="utf-8")
        assert "SPEC" not in text, f"{doc.name} cites a document that is not in the repository"
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        local = [t for t in targets if "://" not in t]
        missing = [t for t in local if not (doc.parent / t).exists()]
        assert missing == [], f"{doc.name} links to missing files"


# --- the analysis snippets against a real sweep --------------------------------------------------------


def run_snippet(code: str, where: str = "README.md") -> tuple[dict[str, Any], Any]:
    """Run ``code`` as a notebook cell: its namespace, and the value of its last line when that is an expression."""
    tree = ast.parse(code)
    last = tree.body.pop() if isinstance(tree.body[-1], ast.Expr) else None
    namespace: dict[str, Any] = {}
    exec(compile(tree, where, "exec"), namespace)
    shown = eval(compile(ast.Expression(last.value), where, "eval"), namespace) if last else None
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
    namespace, shown = run_snippet(with_path(snippet("sweep-pandas", ANALYSIS_DOC), EXAMPLE_SWEEP, sweep))
    expected = journal_records(sweep)
    assert len(namespace["df"]) == expected
    assert int(shown["n"].sum()) == expected
    assert sorted(shown.index.get_level_values("param_group_name").unique()) == sorted(GROUPS)


@pytest.mark.slow
def test_duckdb_snippet_counts_every_record_once(sweep: Path) -> None:
    _, shown = run_snippet(with_path(snippet("sweep-duckdb", ANALYSIS_DOC), EXAMPLE_SWEEP, sweep))
    assert int(shown["n"].sum()) == journal_records(sweep)
    assert sorted(shown["param_group_name"].unique()) == sorted(GROUPS)
    assert sorted(shown["level_value"].unique()) == LEVELS


@pytest.mark.slow
def test_job_snippet_reads_one_job(sweep: Path) -> None:
    job = next(p.parent for p in sorted(sweep.rglob(JOURNAL)))
    namespace, shown = run_snippet(with_path(snippet("job-pandas"), EXAMPLE_JOB, job))
    assert len(namespace["df"]) == len(read_journal(job / JOURNAL).records)
    assert sorted(shown.index) == LEVELS


@pytest.mark.slow
def test_api_snippet_runs_a_job_and_writes_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "api"
    monkeypatch.chdir(tmp_path)  # the snippet's relative paths land here, not in the clone
    namespace, shown = run_snippet(with_path(snippet("api", API_DOC), EXAMPLE_OUT, out), "docs/api.md")
    records, summary_md = shown
    assert records == len(read_journal(out / JOURNAL).records) == namespace["summary"].generated > 0
    assert summary_md == out / "report" / "summary.md" and summary_md.read_text(encoding="utf-8").startswith("|")
    assert type(namespace["cfg"]).__name__ == "RunConfig" and namespace["cfg"].model.name.startswith("tiny")
    assert sorted(os.listdir(tmp_path)) == ["api"], "the snippet wrote outside its output dir"
