"""One registry owns every measure's facts: its direction, what it needs, its label.

The text measures once said Zipf frequency was higher-is-better while the statistics said it had no
direction; the study reads a rise as an impoverished vocabulary. Here every reader takes the registry's
word, and nothing else in the package states a direction.
"""

from __future__ import annotations

import ast

import pandas as pd

from degrade.analysis.stats import MEASURES as STATS_MEASURES
from degrade.analysis.stats import level_stats
from degrade.paths import ROOT
from degrade.scoring import measures, textmeasures
from degrade.scoring.answers import score_output

REGISTRY = ROOT / "degrade" / "scoring" / "measures.py"


def test_every_score_a_record_gets_is_registered_once() -> None:
    columns = [m.column for m in measures.MEASURES]
    assert len(columns) == len(set(columns))
    scored = {**score_output("The cat sat on the mat."), **textmeasures.measure("The cat sat on the mat.")}
    numeric = {k for k, v in scored.items() if isinstance(v, (int, float, bool))}
    unregistered = numeric - set(columns) - {"n_words", "ttr"}  # counts and plain TTR: reported, not tested
    assert not unregistered, f"scores without a registry entry: {sorted(unregistered)}"


def test_the_statistics_read_the_registry() -> None:
    assert STATS_MEASURES is measures.MEASURES
    assert measures.measure_of("zipf_frequency").better == "lower"  # the thesis: a rise is impoverishment
    frame = pd.DataFrame(
        {
            "experiment": "dreams",
            "model_name": "m",
            "degradation_method": "mult_gauss",
            "param_group_name": "mlp_only",
            "level_value": [0.0, 0.0, 0.5, 0.5],
            "repeat_index": [0, 1, 0, 1],
            "zipf_frequency": [4.0, 4.2, 5.0, 5.2],
            "judge_discourse_derailment": [0.0, 1.0, 3.0, 4.0],
        }
    )
    better = dict(zip(*level_stats(frame, n_boot=10)[["measure", "better"]].T.values))
    assert better == {"zipf_frequency": "lower", "judge_discourse_derailment": "lower"}


def test_no_other_module_states_a_direction() -> None:
    """``better=`` and ``higher_is_better`` appear in the registry only (the one owner of a direction)."""
    stated = []
    for path in (ROOT / "degrade").rglob("*.py"):
        if path == REGISTRY:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg in ("better", "higher_is_better"):
                stated.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Constant) and node.value == "higher_is_better":
                stated.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not stated, f"a measure's direction stated outside {REGISTRY.name}: {stated}"


def test_a_measure_that_needs_something_says_what() -> None:
    for m in measures.MEASURES:
        if m.extra:
            assert m.needs and m.extra in m.needs and "pip install" in m.needs
    assert measures.of_extra("nlp") == ["type_lemma_ratio", "zipf_frequency"]
