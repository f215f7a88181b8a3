"""The breaking-point search on known monotone measures: where it lands, how many probes it takes, what it says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from degrade.errors import ConfigError
from degrade.search.bisection import Axis, Bisection, Criterion, grid_answer, search
from degrade.search.files import MEASURES, ProbeFailed, check_measure, measure_job

HALVING = Criterion("correct", kind="relative", value=0.5, direction="falls")


def accuracy(crossing: float, clean: float = 0.8):
    """A measure falling linearly from ``clean`` at level 0 to 0 at 2 × ``crossing``: half of clean at ``crossing``."""
    return lambda level: max(0.0, clean * (1 - level / (2 * crossing)))


def test_linear_axis_finds_the_crossing_within_tolerance_in_the_expected_probes() -> None:
    found = search(accuracy(0.3), Axis(0.0, 1.0, tolerance=0.01), HALVING, max_probes=20)
    answer = found.answer()
    holds, breaks = answer.bracket
    assert answer.status == "found"
    assert holds < 0.3 <= breaks and breaks - holds <= 0.01
    assert abs(answer.level - 0.3) <= 0.005
    # the two ends, then ⌈log2(1 / 0.01)⌉ = 7 halvings
    assert len(found.probes) == 2 + 7
    assert [p.level for p in found.probes[:4]] == [0.0, 1.0, 0.5, 0.25]
    assert all(p.crossed == (p.level >= 0.3) for p in found.probes)


def test_log_axis_halves_in_log_space() -> None:
    rate = Criterion("perplexity", kind="relative", value=2.0, direction="rises")
    perplexity = lambda p: 10.0 * (1 + p / 3e-6)  # twice the clean 10 at p = 3e-6
    found = search(perplexity, Axis(1e-9, 1e-3, log=True, tolerance=0.1), rate, max_probes=30)
    levels = [p.level for p in found.probes]
    assert levels[:3] == [1e-9, 1e-3, pytest.approx(1e-6, rel=1e-3)]  # the geometric middle, not 5e-4
    holds, breaks = found.answer().bracket
    assert holds < 3e-6 <= breaks and breaks / holds <= 1.1
    # the bracket spans 6 decades; each probe halves its log: ⌈log2(6 / log10(1.1))⌉ = 8
    assert len(found.probes) == 2 + math.ceil(math.log2(6 / math.log10(1.1)))


def test_reversed_integer_axis_searches_from_fine_to_coarse() -> None:
    """uni_quant: larger n is less damage; levels are integers; the bisection is geometric."""
    falls_below = Criterion("correct", kind="absolute", value=0.4, direction="falls")
    score = lambda n: 1 - 8 / n  # 0.4 at n = 13.3: n ≥ 14 holds, n ≤ 13 crosses
    found = search(score, Axis(1024, 2, log=True, integer=True, tolerance=0.01), falls_below)
    assert [p.level for p in found.probes[:3]] == [1024, 2, 45]
    assert all(float(p.level).is_integer() for p in found.probes)
    answer = found.answer()
    assert answer.status == "found" and answer.bracket == (14, 13)  # held at 14, crossed at 13: no integer between


def test_a_range_that_never_crosses_says_so_after_its_two_ends() -> None:
    found = search(accuracy(5.0), Axis(0.0, 1.0, tolerance=0.01), HALVING)
    answer = found.answer()
    assert (answer.status, answer.level, len(found.probes)) == ("not_crossed", None, 2)
    assert "never crosses between 0 and 1" in answer.message


def test_a_range_crossed_already_at_its_least_damage_end_says_so() -> None:
    found = search(accuracy(0.01), Axis(0.1, 1.0, tolerance=0.01), HALVING)
    assert found.answer().status == "crossed_at_least" and len(found.probes) == 2


def test_max_probes_stops_with_the_bracket_it_has() -> None:
    found = search(accuracy(0.3), Axis(0.0, 1.0, tolerance=1e-6), HALVING, max_probes=5)
    answer = found.answer()
    assert answer.status == "max_probes" and len(found.probes) == 5
    holds, breaks = answer.bracket
    assert holds < 0.3 <= breaks and breaks - holds == pytest.approx(0.125)


def test_noise_in_the_measure_is_averaged_by_the_caller_not_guessed_here() -> None:
    """A relative threshold needs the clean value first; the decision is the mean the caller gives."""
    bisection = Bisection(Axis(0.0, 1.0), HALVING)
    with pytest.raises(ConfigError, match="clean value must be measured"):
        bisection.tell(0.0, 0.8)
    bisection.tell_clean(0.8)
    assert bisection.tell(0.0, 0.8).crossed is False and bisection.tell(1.0, 0.4).crossed is True


def test_the_grid_reads_the_first_level_that_crossed() -> None:
    levels = [0.0, 0.1, 0.2, 0.3, 0.4]
    answer = grid_answer(levels, [0.8, 0.7, 0.5, 0.3, 0.1], HALVING, clean=0.8, log=False)
    assert (answer.status, answer.bracket, answer.level) == ("found", (0.2, 0.3), 0.25)
    assert grid_answer(levels, [0.8] * 5, HALVING, clean=0.8, log=False).status == "not_crossed"


def test_the_grid_answers_an_integer_level_where_the_method_takes_integers() -> None:
    """uni_quant's n on a log axis: the grid's answer is a level the method takes, as the search's is."""
    levels = [1024.0, 256.0, 64.0, 32.0, 16.0]  # fine to coarse: growing damage
    values = [0.33, 0.33, 0.28, 0.07, 0.0]
    answer = grid_answer(levels, values, HALVING, clean=0.33, log=True, integer=True)
    assert (answer.status, answer.bracket, answer.level) == ("found", (64.0, 32.0), 45.0)  # √(64·32) = 45.25
    found = search(
        lambda n: 0.33 if n == 0 or n > 40 else 0.07, Axis(1024.0, 2.0, log=True, integer=True), HALVING
    ).answer()
    assert found.level == float(round(found.level)) and answer.level == float(round(answer.level))


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: Criterion("correct", kind="ratio"), "hydra.sweeper.threshold.kind"),
        (lambda: Criterion("correct", direction="down"), "hydra.sweeper.direction"),
        (lambda: Criterion("correct", value=-1), "hydra.sweeper.threshold.value"),
        (lambda: Axis(0.0, 1.0, tolerance=0), "hydra.sweeper.tolerance"),
        (lambda: Axis(0.0, 1e-3, log=True), "hydra.sweeper.lo"),
        (lambda: Axis(0.5, 0.5), "hydra.sweeper.lo"),
        (lambda: Bisection(Axis(0.0, 1.0), HALVING, max_probes=1), "hydra.sweeper.max_probes"),
        (lambda: check_measure("accuracy"), "hydra.sweeper.measure"),
    ],
)
def test_bad_settings_name_their_key(build, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert str(caught.value).startswith(f"{key}: ") and "\n" not in str(caught.value)


def test_measures_are_the_numeric_record_columns() -> None:
    assert {"correct", "perplexity", "ttr", "level_value"} <= set(MEASURES)
    assert "output" not in MEASURES and "do_sample" not in MEASURES


KEY = {  # what makes a journal line a record (degrade.records.contract.KEY_FIELDS) beside level and repetition
    "experiment": "iq",
    "model_name": "m",
    "degradation_method": "ablation",
    "param_group_name": "mlp_only",
    "prompt_id": "p",
    "prompt_hash": "h",
}


def write_job(job_dir: Path, status: str, rows: list[dict]) -> Path:
    rows = [{**KEY, "prompt_id": f"p{i}", **row} for i, row in enumerate(rows)]
    job_dir.mkdir(parents=True)
    (job_dir / "metadata.json").write_text(
        json.dumps({"status": status, "error": "boom" if status != "done" else None})
    )
    (job_dir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return job_dir


def test_a_probe_is_the_mean_of_its_repetitions(tmp_path: Path) -> None:
    rows = [{"level_value": 0.2, "repeat_index": r, "correct": c} for r, c in [(0, 1), (0, 0), (1, 1), (1, 1)]]
    rows.append({"level_value": 0.0, "repeat_index": 0, "correct": 0})  # another level in the same dir: not this probe
    measured = measure_job(write_job(tmp_path / "job", "done", rows), "correct", 0.2)
    assert measured.per_rep == [0.5, 1.0] and measured.value == 0.75 and measured.records == 4
    assert measured.spread == pytest.approx(0.25)


def test_a_probe_that_failed_or_scores_nothing_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProbeFailed, match="ended failed: boom"):
        measure_job(write_job(tmp_path / "bad", "failed", []), "correct", 0.2)
    rows = [{"level_value": 0.2, "repeat_index": 0, "correct": None}]
    with pytest.raises(ConfigError, match="hydra.sweeper.measure: correct has no value in the 1 records"):
        measure_job(write_job(tmp_path / "dreams", "done", rows), "correct", 0.2)
