"""Prompt sets from files: every format, the study's Python module read without running it, answers, categories."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.prompts import load_prompt_set
from degrade.prompts.answers import add_answers

# Shaped like the study's configs/prompts.py: several lists, one built with +, one unused, a docstring, comments,
# an import it never needs, a literal split over two lines. Our own words, not the study's.
STUDY_MODULE = '''"""Prompts of the experiments (instruction-tuned only)."""
from __future__ import annotations

# ---- dreams
dream_prompts_it = [
    "Tell me about the strangest dream you remember.",  # the first one
    "Describe a nightmare in detail.",
    ("Describe a dream in which "
     "you could fly."),
]

# ---- IQ-style tasks
math_prompts_it = ["What is 7 plus 5?", "What is 6 times 4?"]
language_prompts_it = ["Give a word that means the opposite of cold."]
logic_prompts_it = ["If all cats are animals and Tom is a cat, what is Tom?"]
open_prompts_pt = ["Once upon a time"]  # defined, never used
iq_prompts_it = math_prompts_it + language_prompts_it + logic_prompts_it
'''


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_study_module_lists_read_by_name_with_positions_as_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.py", STUDY_MODULE)
    dreams = load_prompt_set(path, "dream_prompts_it")
    assert [p.id for p in dreams] == ["1", "2", "3"]
    assert dreams[2].text == "Describe a dream in which you could fly."
    assert {p.category for p in dreams} == {None}
    iq = load_prompt_set(path, "iq_prompts_it")
    assert [(p.id, p.category) for p in iq] == [("1", "math"), ("2", "math"), ("3", "language"), ("4", "logic")]
    assert iq[2].text == "Give a word that means the opposite of cold."


def test_study_module_is_read_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, "prompts.py", f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nx = ['a']\n")
    with pytest.raises(ConfigError, match=r"prompts\.py, line 2: only assignments of lists are read"):
        load_prompt_set(path, "x")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("a = ['ok', f'{1}']\n", "line 1: an item of a is not a string literal"),
        ("a = ['ok']\nb = a + c\n", "line 2: b adds c, which is not a list defined above it"),
        ("a = sorted(['x'])\n", "line 1: a is not a list of string literals"),
        ("a = ['ok'\n", "not a Python file that parses"),
    ],
    ids=["f-string", "unknown-name", "call", "syntax"],
)
def test_study_module_refuses_what_is_not_a_literal(tmp_path: Path, source: str, fragment: str) -> None:
    path = write(tmp_path, "prompts.py", source)
    with pytest.raises(ConfigError, match="experiment.prompts_file") as caught:
        load_prompt_set(path, "a")
    assert fragment in str(caught.value)


def test_yaml_json_jsonl_and_csv_read_the_same_set(tmp_path: Path) -> None:
    items = [
        {"id": "q1", "text": "What is 2 plus 2?", "category": "math", "answers": ["4", "four"]},
        {"text": "Name a colour.", "category": "language"},
    ]
    files = {
        "set.yaml": json.dumps(items),  # JSON is YAML too; the YAML reader parses it as YAML
        "set.json": json.dumps(items),
        "set.jsonl": "\n".join(json.dumps(i) for i in items) + "\n\n",
        "set.csv": "id,text,category,answers\nq1,What is 2 plus 2?,math,4|four\n,Name a colour.,language,\n",
    }
    for name, text in files.items():
        prompts = load_prompt_set(write(tmp_path, name, text))
        assert [(p.id, p.text, p.category, p.answers) for p in prompts] == [
            ("q1", "What is 2 plus 2?", "math", ["4", "four"]),
            ("2", "Name a colour.", "language", None),
        ], name


def test_yaml_with_several_sets_and_plain_strings(tmp_path: Path) -> None:
    text = "dreams:\n  - Tell me a dream.\n  - Tell me another.\nmath:\n  - {text: 'One plus one?', answers: 2}\n"
    path = write(tmp_path, "sets.yml", text)
    assert [p.text for p in load_prompt_set(path, "dreams")] == ["Tell me a dream.", "Tell me another."]
    assert load_prompt_set(path, "math")[0].answers == ["2"]
    with pytest.raises(ConfigError, match=r"experiment.prompts_name: missing; .* holds several sets: dreams, math"):
        load_prompt_set(path)
    with pytest.raises(ConfigError, match=r"prompts_name: 'iq' is not a set of .*; the sets there: dreams, math"):
        load_prompt_set(path, "iq")


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("missing.yaml", None, "missing.yaml: no such file"),
        ("set.txt", "a prompt\n", "unknown format '.txt'; allowed: .yaml, .yml, .json, .jsonl, .csv, .py"),
        ("set.json", "[]", "the set is empty"),
        ("set.json", '[{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]', "duplicate ids ['a']"),
        ("set.jsonl", '{"text": "x"}\nnot json\n', "line 2: not a JSON object"),
        ("set.csv", "prompt\nhello\n", "a CSV file needs a 'text' column"),
        ("set.json", '[{"text": "x", "answer": "y"}]', "unknown keys ['answer']"),
    ],
    ids=["missing", "format", "empty", "duplicates", "jsonl-line", "csv-column", "unknown-key"],
)
def test_bad_prompt_files_are_one_line(tmp_path: Path, name: str, text: str | None, fragment: str) -> None:
    path = write(tmp_path, name, text) if text is not None else str(tmp_path / name)
    with pytest.raises(ConfigError) as caught:
        load_prompt_set(path)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_answers_file_adds_answers_by_id_and_refuses_unknown_ids(tmp_path: Path) -> None:
    prompts = load_prompt_set(write(tmp_path, "prompts.py", STUDY_MODULE), "iq_prompts_it")
    scored = add_answers(prompts, write(tmp_path, "answers.yaml", "1: [12, twelve]\n2: '24'\n"))
    assert [p.answers for p in scored] == [["12", "twelve"], ["24"], None, None]
    csv = write(tmp_path, "answers.csv", "id,answers\n4,animal|a cat\n")
    assert add_answers(prompts, csv)[3].answers == ["animal", "a cat"]
    with pytest.raises(ConfigError, match=r"experiment.answers_file: .* names ids the prompt set does not have: 7, 9"):
        add_answers(prompts, write(tmp_path, "bad.json", '{"1": ["12"], "7": ["x"], "9": ["y"]}'))


def test_categories_select_the_studys_tasks_and_unknown_ones_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.py", STUDY_MODULE)
    base = ("experiment=iq", f"experiment.prompts_file={path}", "experiment.prompts_name=iq_prompts_it")
    cfg = compose_cfg(*base, "experiment.categories=[math,language]")
    assert [p.text for p in cfg.experiment.selected] == [
        "What is 7 plus 5?",
        "What is 6 times 4?",
        "Give a word that means the opposite of cold.",
    ]
    assert [p.id for p in compose_cfg("experiment=iq", "experiment.categories=[logic]").experiment.selected][:2] == [
        "iq_29",
        "iq_30",
    ]
    with pytest.raises(ConfigError, match=r"\['maths'\]: no such category; the prompts' categories: language, logic"):
        compose_cfg(*base, "experiment.categories=[maths]")


@pytest.mark.slow
def test_a_job_from_the_study_module_records_ids_answers_and_scores(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.py", STUDY_MODULE)
    answers = write(tmp_path, "answers.yaml", "1: [12]\n2: [24]\n")
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment=iq",
        f"experiment.prompts_file={path}",
        "experiment.prompts_name=iq_prompts_it",
        f"experiment.answers_file={answers}",
        "experiment.categories=[math,logic]",
        "degradation.levels=[0]",
        "generation.max_new_tokens=4",
    )
    run_job(cfg, tmp_path / "run")
    frame = pd.read_parquet(tmp_path / "run" / "records.parquet").set_index("prompt_id")
    assert list(frame.index) == ["1", "2", "4"]
    assert [list(a) if a is not None else None for a in frame["answers"]] == [["12"], ["24"], None]
    assert frame.loc[["1", "2"], "correct"].notna().all() and pd.isna(frame.loc["4", "correct"])
    assert list(frame["prompt_category"]) == ["math", "math", "logic"]


@pytest.mark.slow
def test_bad_prompts_file_on_the_command_line_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.py", STUDY_MODULE)
    out = tmp_path / "run"
    result = run_cli("model=tiny_random", f"experiment.prompts_file={path}", f"hydra.run.dir={out}", timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "Traceback" not in result.stdout + result.stderr
    assert "experiment.prompts_name: missing;" in errors[0] and "dream_prompts_it, math_prompts_it" in errors[0]
    assert not out.exists()


DOUBLING = "a = ['x']\n" + "".join(f"{chr(98 + i)} = {chr(97 + i)} + {chr(97 + i)}\n" for i in range(20))


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("empty.py", b"", "holds no prompt set"),
        ("latin1.yaml", "- Café au lait?\n".encode("latin-1"), "not UTF-8 text (byte 5 is 0xe9); save it as UTF-8"),
        ("utf16.json", '["Hello?"]'.encode("utf-16"), "not UTF-8 text (it is UTF-16); save it as UTF-8"),
        ("surrogate.json", b'["Half a pair: \\ud800"]', "item 1: holds '\\ud800', half of a surrogate pair"),
        ("surrogate.py", b'prompts = ["Half a pair: \\ud800"]\n', "item 1: holds '\\ud800', half of a surrogate pair"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply to be read as a prompt set"),
        ("deep.yaml", b"- " * 3_000 + b"x\n", "nested too deeply to be read as a prompt set"),
        ("deep.py", ("a = ['x']\nb = " + " + ".join(["a"] * 3_000) + "\n").encode(), "nested too deeply"),
        ("doubling.py", DOUBLING.encode(), "would hold more than 100,000 prompts; the file is read, never run"),
    ],
    ids=[
        "empty-py",
        "latin-1",
        "utf-16",
        "lone-surrogate-json",
        "lone-surrogate-py",
        "deep-json",
        "deep-yaml",
        "deep-py",
        "doubling-py",
    ],
)
def test_prompt_files_that_are_not_readable_text_are_one_line(tmp_path: Path, name: str, data: bytes, fragment: str):
    """Encodings, nesting and sizes that raised UnicodeDecodeError, RecursionError or MemoryError are one line."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        compose_cfg(f"experiment.prompts_file={path}")
    message = str(caught.value)
    assert message.startswith("experiment.prompts_file: ") and fragment in message and "\n" not in message


def test_a_csv_with_a_byte_order_mark_keeps_its_id_column(tmp_path: Path) -> None:
    """Spreadsheets write CSV with a BOM; the first column's name must not become '\\ufeffid'."""
    path = tmp_path / "set.csv"
    path.write_bytes("id,text\nq1,First?\nq2,Second?\n".encode("utf-8-sig"))
    assert [p.id for p in load_prompt_set(str(path))] == ["q1", "q2"]
