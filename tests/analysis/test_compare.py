"""scripts/compare.py: two runs of the same prompts, paired, identical share and first differing token per level."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, compose_cfg

from degrade.analysis.compare import compare, first_difference
from degrade.errors import DegradeError
from degrade.job.runner import run_job
from degrade.model.loading import embedded_dir

JOB = ["experiment.limit=4", "generation.max_new_tokens=8", "degradation.levels=[0,0.5]"]  # the embedded model


def test_first_difference() -> None:
    assert first_difference([1, 2, 3], [1, 2, 4]) == 2
    assert first_difference([1, 2], [1, 2, 3]) == 2
    assert first_difference([5], [6]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    same, other = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    run_job(compose_cfg(*JOB), same)
    run_job(compose_cfg(*JOB, "seed=7"), other)  # greedy: the clean level agrees, the damage differs
    return same, other


@pytest.mark.slow
def test_pairs_levels_and_finds_where_answers_part(runs) -> None:
    from transformers import AutoTokenizer

    same, other = runs
    table = compare(same, other, AutoTokenizer.from_pretrained(embedded_dir())).set_index("level")
    assert table.loc[0.0, "pairs"] == table.loc[0.5, "pairs"] == 4
    assert table.loc[0.0, "identical"] == 4 and table.loc[0.0, "first_diffs"] == []
    assert table.loc[0.5, "identical"] <= 1  # another draw of σ = 0.5 noise on the MLP
    assert len(table.loc[0.5, "first_diffs"]) == 4 - table.loc[0.5, "identical"]


@pytest.mark.slow
def test_cli_prints_the_table_and_refuses_unrelated_runs(runs, tmp_path) -> None:
    same, other = runs
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(same), str(other)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "identical_share" in result.stdout and "0.0" in result.stdout
    run_job(
        compose_cfg("model=tiny_random", "experiment=iq", "experiment.limit=1", "generation.max_new_tokens=2"), tmp_path
    )
    with pytest.raises(DegradeError, match="share no"):
        compare(same, tmp_path, None)
