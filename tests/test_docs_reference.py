"""The reference pages of docs/ state what the code holds: each table a reader trusts is read back here.

The method table against the method registry, the config groups against ``conf/`` and the schemas,
the parameter groups against their YAML files, the bisect sweeper's settings against its schema,
the benchmark's ratios against its targets, the development page's layers against
``tests/test_layers.py``, the Python API's signatures against the functions, and the one-line
answers to bad input against what the command prints.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from docs_text import ROOT, code_names, page, section, table, table_rows
from test_layers import LAYERS

from degrade.config.experiment import ExperimentConfig
from degrade.config.schema import (
    DegradationConfig,
    GenerationConfig,
    MemoryConfig,
    ModelConfig,
    ParamGroupConfig,
    RunConfig,
)
from degrade.methods import METHODS
from degrade.methods.registry import Method

CONF = ROOT / "conf"
SCHEMAS = {
    "model": ModelConfig,
    "experiment": ExperimentConfig,
    "degradation": DegradationConfig,
    "param_group": ParamGroupConfig,
    "generation": GenerationConfig,
}


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- methods.md against the method registry --------------------------------------------------------------


def axis_words(method: Method) -> str:
    """How docs/methods.md names a method's axis."""
    words = "log" if method.axis.log else "linear"
    return words if method.axis.damage_grows_with_level else f"{words}, a larger level is less damage"


def options_words(method: Method) -> str:
    """How docs/methods.md lists a method's options: each key, its values, the default marked."""
    if not method.options:
        return "—"
    return "; ".join(
        f"`{key}`: "
        + ", ".join(f"{_show(value)} (default)" if value == opt.default else _show(value) for value in opt.allowed)
        for key, opt in method.options.items()
    )


def test_methods_doc_lists_exactly_the_registered_methods() -> None:
    documented = table_rows(section(page("methods.md"), "Methods"), "method")
    assert sorted(documented) == sorted(METHODS)
    assert sorted(p.stem for p in (CONF / "degradation").glob("*.yaml")) == sorted(METHODS)


def test_methods_doc_gives_each_method_its_domain_axis_and_options() -> None:
    documented = table_rows(section(page("methods.md"), "Methods"), "method")
    wrong = {
        name: (documented[name][:3], [m.domain, axis_words(m), options_words(m)])
        for name, m in METHODS.items()
        if name in documented and documented[name][:3] != [m.domain, axis_words(m), options_words(m)]
    }
    assert wrong == {}, "documented (level, axis, options) != the registry's"


def test_methods_doc_lists_the_parameter_groups_as_configured() -> None:
    documented = table_rows(section(page("methods.md"), "Parameter groups"), "group")
    configured = {p.stem: yaml.safe_load(p.read_text()) for p in (CONF / "param_group").glob("*.yaml")}
    assert sorted(documented) == sorted(configured)
    wrong = {
        name: (documented[name], [", ".join(c["kinds"]), c["tower"]])
        for name, c in configured.items()
        if documented[name] != [", ".join(c["kinds"]), c["tower"]]
    }
    assert wrong == {}, "documented (kinds, tower) != the YAML's"


# --- configuration.md against conf/ and the schemas ---------------------------------------------------------


def test_configuration_doc_lists_every_option_of_every_group() -> None:
    documented = table_rows(section(page("configuration.md"), "Config groups"), "group")
    groups = {p.name for p in CONF.iterdir() if p.is_dir()} - {"hydra", "judge"}  # judge: docs/judge.md
    assert sorted(documented) == sorted(groups)
    wrong = {
        group: (code_names(documented[group][0]), sorted(p.stem for p in (CONF / group).glob("*.yaml")))
        for group in groups
        if sorted(code_names(documented[group][0])) != sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    }
    assert wrong == {}, "documented options != the YAML files of the group"


def test_configuration_doc_names_every_key_of_every_schema() -> None:
    documented = table_rows(section(page("configuration.md"), "Config groups"), "group")
    missing = {
        group: [f.name for f in dataclasses.fields(schema) if not re.search(rf"\b{f.name}\b", documented[group][1])]
        for group, schema in SCHEMAS.items()
    }
    assert {g: keys for g, keys in missing.items() if keys} == {}, "schema keys the table does not name"


def test_configuration_doc_names_every_top_level_key_and_the_memory_defaults() -> None:
    top = re.search(r"^Top level: (.*?)\n\n", section(page("configuration.md"), "Config groups"), flags=re.M | re.S)
    assert top, "no 'Top level:' paragraph"
    named = set(code_names(top.group(1)))
    keys = {f.name for f in dataclasses.fields(RunConfig)} - set(SCHEMAS)
    assert sorted(keys - named) == [], "top-level keys not named"
    memory = {f"{f.name}: {f.default:g}" for f in dataclasses.fields(MemoryConfig)}
    assert sorted(memory - named) == [], "memory keys or defaults not as in MemoryConfig"


# --- sweeps.md, benchmark.md, development.md ----------------------------------------------------------------


def test_sweeps_doc_lists_exactly_the_bisect_settings() -> None:
    from hydra_plugins.degrade_bisect_sweeper.config import BisectSweeperConf

    documented = table_rows(section(page("sweeps.md"), "The breaking point by search"), "key")
    keys = [name for row in documented for name in row.split("`, `")]
    schema = [f.name for f in dataclasses.fields(BisectSweeperConf) if f.name != "_target_"]
    assert sorted(keys) == sorted(schema)


def test_benchmark_doc_lists_every_ratio_with_its_target() -> None:
    from degrade.benchmark.timing import TARGETS

    documented = table_rows(page("benchmark.md"), "ratio")
    symbols = {">=": "≥", "<=": "≤"}
    assert sorted(documented) == sorted(TARGETS)
    wrong = {
        name: (documented[name][1], f"{symbols[op]} {value:g}")
        for name, (op, value) in TARGETS.items()
        if documented[name][1] != f"{symbols[op]} {value:g}"
    }
    assert wrong == {}, "documented target != TARGETS"


def test_development_doc_shows_the_layers_of_test_layers() -> None:
    documented = table_rows(section(page("development.md"), "The layers"), "floor")
    floors = [
        {name.removesuffix(".py").removesuffix("/") for name in code_names(row[0])}
        for _, row in sorted(documented.items(), key=lambda item: int(item[0]))
    ]
    assert [int(f) for f in documented] == list(range(1, len(LAYERS) + 1))
    assert floors == LAYERS, "the table's floors (bottom up) != tests/test_layers.py's LAYERS"


# --- api.md: each documented signature is the function's own ------------------------------------------------


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def signature_line(fn: Any) -> str:
    """``name(params) -> return`` as docs/api.md writes it: annotations as in the source, defaults as repr."""
    params, star = [], False
    for p in inspect.signature(fn).parameters.values():
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, star = f"*{text}", True
        elif p.kind is p.VAR_KEYWORD:
            text = f"**{text}"
        elif p.kind is p.KEYWORD_ONLY and not star:
            params.append("*")
            star = True
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += f" = {p.default!r}"
        params.append(text)
    returns = inspect.signature(fn).return_annotation
    tail = "" if returns is inspect.Signature.empty else f" -> {_annotation(returns)}"
    return f"{fn.__name__}({', '.join(params)}){tail}"


def documented_signatures() -> list[tuple[str, str]]:
    """(dotted name, the signature line under its ``<!-- signature: ... -->`` marker) for docs/api.md."""
    found = re.findall(r"<!-- signature: ([\w.]+) -->\n```python\n(.*?)\n```", page("api.md"))
    assert found, "docs/api.md marks no signature"
    return found


@pytest.mark.parametrize(("dotted", "line"), documented_signatures(), ids=lambda v: v.rpartition(".")[2])
def test_api_doc_signature_is_the_functions_own(dotted: str, line: str) -> None:
    module, _, name = dotted.rpartition(".")
    assert line == signature_line(getattr(importlib.import_module(module), name))


def test_api_doc_documents_the_three_ways_in() -> None:
    documented = [dotted for dotted, _ in documented_signatures()]
    for name in ("compose_config", "run_job", "write_report"):
        assert any(d.endswith(f".{name}") for d in documented), f"docs/api.md has no signature of {name}"


# --- configuration.md's bad input: the line the command prints ------------------------------------------------


def bad_inputs() -> list[tuple[str, str]]:
    """(arguments, the line) of every documented refusal of scripts/run.py on docs/configuration.md."""
    text = section(page("configuration.md"), "Bad input")
    shown = re.findall(r"^\$ python scripts/run\.py (.*)\n\[[\d:]+\]\[ERROR\] (.*)$", text, flags=re.M)
    tabled = [(code_names(given)[-1], code_names(said)[0]) for given, said, *_ in table(text, "input")]
    return shown + tabled


@pytest.mark.slow
@pytest.mark.parametrize(("arguments", "line"), bad_inputs(), ids=[a for a, _ in bad_inputs()])
def test_bad_input_doc_shows_the_line_the_command_prints(tmp_path: Path, arguments: str, line: str) -> None:
    ran = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *shlex.split(arguments)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = ran.stdout + ran.stderr
    errors = [re.sub(r"^\[[\d:]+\]\[ERROR\] ", "", e) for e in output.splitlines() if "[ERROR]" in e]
    assert (ran.returncode, errors) == (2, [line]), output[-2000:]
    assert "Traceback" not in output
    assert list(tmp_path.iterdir()) == [], "a refused run wrote into the dir it ran in"
