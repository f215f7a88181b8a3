"""The thesis's analysis (--stats study) against the default, on records whose effects are known by construction.

d signed in the direction of damage, the crossing interpolated in the level's own unit, Spearman over the
per-level means with its exact p (recomputed with scipy), a shared clean job as the baseline of a line
without level 0, and one ranking across tasks.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from degrade.analysis.stats import ANALYSES, level_stats, ranking
from degrade.analysis.stats.baseline import BASELINE
from degrade.analysis.stats.markdown import render

STUDY, DEFAULT = ANALYSES["study"], ANALYSES["default"]
# Every level's values are its mean plus Z: mean 0, SD exactly 1 (ddof 1), so d is a difference of means.
Z = np.tile([-1.5, -1.0, -0.5, -0.2, 0.2, 0.5, 1.0, 1.5], 2)
Z = (Z / Z.std(ddof=1)).reshape(2, 8)
SAMPLING = {"do_sample": True, "temperature": 1.0, "max_new_tokens": 64, "top_k": None, "top_p": None}


def records(method: str, means: dict[float, float], measure: str, **line) -> list[dict]:
    """One line's records: at each level 2 repetitions of 8 prompts, a job dir, prompt hashes and a decoding."""
    return [
        {
            "experiment": line.get("experiment", "dreams"),
            "model_name": "m",
            "degradation_method": method,
            "param_group_name": line.get("group", "attn_only"),
            "settings_hash": line.get("settings", f"{method}-{line.get('experiment', 'dreams')}"),
            "job_dir": line.get("job", f"{method}/{line.get('experiment', 'dreams')}"),
            "gen_params": line.get("gen_params", SAMPLING),
            "level_value": float(level),
            "repeat_index": rep,
            "prompt_id": str(i),
            "prompt_hash": f"h{i}",
            measure: mean + z,
        }
        for level, mean in means.items()
        for rep in range(2)
        for i, z in enumerate(Z[rep])
    ]


def line_of(stats: pd.DataFrame, measure: str, method: str | None = None) -> pd.DataFrame:
    rows = stats[stats["measure"] == measure]
    return rows if method is None else rows[rows["degradation_method"] == method]


def test_a_measure_that_moves_its_better_way_never_breaks_in_the_study() -> None:
    """Lexical density (higher is better) rising 10 → 13 is no damage; |d| = 3 made it 'break' by default."""
    frame = pd.DataFrame(records("mult_gauss", {0: 10, 0.1: 11, 0.2: 13}, "lexical_density"))
    study, default = level_stats(frame, n_boot=50, how=STUDY), level_stats(frame, n_boot=50, how=DEFAULT)
    assert line_of(study, "lexical_density")["d"].tolist() == pytest.approx([0, -1, -3])  # negative: it got better
    assert line_of(study, "lexical_density")["critical_how"].iloc[0] == "not reached"
    assert line_of(default, "lexical_density")["critical_level"].iloc[0] == pytest.approx(0.08)  # |d| 0.8 of 1
    assert ranking(study)["rank"].isna().all()


def test_lower_is_better_and_a_rising_zipf_frequency_breaks() -> None:
    """Zipf frequency is lower-is-better (the thesis: a rise is an impoverished vocabulary): d = M_level − M_clean."""
    frame = pd.DataFrame(records("mult_gauss", {0: 4.0, 0.1: 4.5, 0.2: 6.0}, "zipf_frequency"))
    line = line_of(level_stats(frame, n_boot=50, how=STUDY), "zipf_frequency")
    assert set(line["better"]) == {"lower"}
    assert line["d"].tolist() == pytest.approx([0, 0.5, 2])
    assert line["critical_level"].iloc[0] == pytest.approx(0.1 + (0.8 - 0.5) / (2 - 0.5) * 0.1)
    assert line["spearman_rho"].iloc[0] == pytest.approx(1.0)  # with the damage: a decline of this measure


def test_the_study_interpolates_uni_quant_in_n_not_in_log_n() -> None:
    """d (damage-signed) 0.5 at n = 64 and 2 at n = 16: 0.2 of the way, 54.4 in n against 48.5 in log n."""
    means = {0: 10, 256: 9.8, 64: 9.5, 16: 8, 4: 5}
    frame = pd.DataFrame(records("uni_quant", means, "type_lemma_ratio"))
    study = line_of(level_stats(frame, n_boot=50, how=STUDY), "type_lemma_ratio")
    default = line_of(level_stats(frame, n_boot=50, how=DEFAULT), "type_lemma_ratio")
    assert study["critical_level"].iloc[0] == pytest.approx(64 + 0.2 * (16 - 64))
    assert default["critical_level"].iloc[0] == pytest.approx(64 * (16 / 64) ** 0.2)


def test_the_study_tests_the_trend_of_the_level_means_with_its_exact_p() -> None:
    """Four level means in perfect decline: exact one-sided p 1/24, as scipy's permutation test gives it; the
    default, over the 64 records, calls the same curve p < 1e-10."""
    means = {0: 10, 0.1: 8, 0.2: 6, 0.3: 4}
    frame = pd.DataFrame(records("mult_gauss", means, "mattr"))
    study = line_of(level_stats(frame, n_boot=50, how=STUDY), "mattr")
    default = line_of(level_stats(frame, n_boot=50, how=DEFAULT), "mattr")
    level_means = frame.groupby("level_value")["mattr"].mean()
    exact = scipy_stats.permutation_test(
        (level_means.index.to_numpy(), level_means.to_numpy()),
        lambda x, y: scipy_stats.spearmanr(x, y).statistic,
        permutation_type="pairings",
        alternative="less",
        n_resamples=np.inf,
    )
    assert study["spearman_rho"].iloc[0] == pytest.approx(-1.0)
    assert study["spearman_p"].iloc[0] == pytest.approx(exact.pvalue) == pytest.approx(1 / 24)
    assert default["spearman_p"].iloc[0] < 1e-10


def test_a_shared_clean_job_is_the_baseline_of_a_line_without_level_0() -> None:
    """quant_attn has no level 0: the degradation=none job of the same model, prompts and decoding serves."""
    clean = records("none", {0: 10}, "mattr", group="attn_only", job="clean")
    greedy = records("none", {0: 0}, "mattr", job="greedy", gen_params={"do_sample": False, "max_new_tokens": 64})
    quant = records("uni_quant", {1024: 9.9, 16: 9.5, 4: 8}, "mattr", job="quant")
    alone = level_stats(pd.DataFrame(quant), n_boot=50, how=STUDY)
    assert set(alone["critical_how"]) == {"no clean level"} and alone["d"].isna().all()
    stats = level_stats(pd.DataFrame(greedy + clean + quant), n_boot=50, how=STUDY)  # greedy decodes otherwise
    line = line_of(stats, "mattr", "uni_quant")
    assert line["level_value"].tolist() == [0, 1024, 16, 4]
    assert line["d"].tolist() == pytest.approx([0, 0.1, 0.5, 2])
    assert set(line[BASELINE]) == {"clean"}
    assert set(line_of(stats, "mattr", "none")["critical_how"]) == {"clean only"}
    assert set(ranking(stats)["degradation_method"]) == {"uni_quant"}  # a clean job breaks nowhere
    text = render(stats, {}, 50, 0, how=STUDY)
    assert "## Shared clean baselines" in text and "| clean |" in text
    assert "Analysis: **study**" in text and "The unit of d is the record" in text


def test_a_clean_job_of_other_prompts_or_decoding_serves_no_line() -> None:
    other = records("none", {0: 10}, "mattr", job="clean")
    for r in other:
        r["prompt_hash"] = "other " + r["prompt_hash"]
    greedy = records("none", {0: 10}, "mattr", job="greedy", gen_params={"do_sample": False, "max_new_tokens": 64})
    quant = records("uni_quant", {16: 9.5, 4: 8}, "mattr", job="quant")
    line = line_of(level_stats(pd.DataFrame(other + greedy + quant), n_boot=20), "mattr", "uni_quant")
    assert set(line["critical_how"]) == {"no clean level"} and set(line[BASELINE]) == {""}


def test_one_ranking_across_tasks_and_one_per_task() -> None:
    """Two experiments' jobs have different settings hashes (their prompts): the thesis ranks them together."""
    dreams = records("mult_gauss", {0: 10, 0.1: 9.5, 0.2: 8}, "mattr", experiment="dreams")
    math_ = records("mult_gauss", {0: 10, 0.1: 8, 0.2: 7}, "mattr", experiment="math")
    stats = level_stats(pd.DataFrame(dreams + math_), n_boot=20, how=STUDY)
    joint = ranking(stats)
    assert list(zip(joint["experiment"], joint["rank"])) == [("math", 1), ("dreams", 2)]
    apart = ranking(stats, per_experiment=True)
    assert sorted(zip(apart["experiment"], apart["rank"])) == [("dreams", 1), ("math", 1)]
    text = render(stats, {}, 20, 0, how=STUDY)
    joint_part = text.split("## Vulnerability ranking\n")[1].split("##")[0]
    assert joint_part.count("| mult_gauss |") == 2  # both tasks in the one table


def test_the_default_analysis_says_which_it_is() -> None:
    stats = level_stats(pd.DataFrame(records("mult_gauss", {0: 10, 0.1: 9}, "mattr")), n_boot=20)
    text = render(stats, {}, 20, 0)
    assert "Analysis: **default**" in text and "--stats study" in text
    assert not math.isnan(stats["d"].iloc[1])
