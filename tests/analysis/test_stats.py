"""The study's statistics on synthetic records whose effect sizes and crossings are known by construction."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from degrade.analysis.plots import spread
from degrade.analysis.stats import cohens_d, critical_level, level_stats, nested_bootstrap, ranking, spearman_decline
from degrade.analysis.stats.figures import breaking_figure
from degrade.methods import level_axis
from degrade.search.files import Found

# Mean 0 and standard deviation exactly 1 (ddof 1): every level is its mean plus this, so the pooled SD is 1
# and Cohen's d of a level is its mean minus the clean mean. Two repetitions of 8 prompts, one row each.
Z = np.tile([-1.5, -1.0, -0.5, -0.2, 0.2, 0.5, 1.0, 1.5], 2)  # both repetitions: the same values, mean 0
Z = (Z / Z.std(ddof=1)).reshape(2, 8)


def records(method: str, means: dict[float, float], measure: str = "tokens_out", **line) -> list:
    """Records of one line: at each level, 2 repetitions of 8 prompts, the level's values its mean + Z."""
    return [
        {
            "experiment": line.get("experiment", "iq"),
            "model_name": "m",
            "degradation_method": method,
            "param_group_name": line.get("group", "mlp_only"),
            "level_value": float(level),
            "repeat_index": rep,
            "prompt_id": str(i),
            measure: mean + z,
        }
        for level, mean in means.items()
        for rep in range(2)
        for i, z in enumerate(Z[rep])
    ]


def line_of(stats: pd.DataFrame, measure: str = "tokens_out", **where) -> pd.DataFrame:
    rows = stats[stats["measure"] == measure]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return rows


def test_d_and_the_interpolated_crossing_on_a_linear_axis() -> None:
    """Level 0: mean 10, sd 1; 0.1: 9.5 (d −0.5); 0.2: 8 (d −2): |d| = 0.8 at 0.1 + (0.3 / 1.5)·0.1 = 0.12."""
    stats = level_stats(pd.DataFrame(records("mult_gauss", {0: 10, 0.1: 9.5, 0.2: 8})), n_boot=200)
    line = line_of(stats)
    assert line["level_value"].tolist() == [0.0, 0.1, 0.2]
    assert line["mean"].tolist() == pytest.approx([10, 9.5, 8])
    assert line["sd"].tolist() == pytest.approx([1, 1, 1])
    assert line["d"].tolist() == pytest.approx([0, -0.5, -2])
    assert line["n"].tolist() == [16, 16, 16] and line["n_rep"].tolist() == [2, 2, 2]
    assert line["critical_level"].iloc[0] == pytest.approx(0.12)
    assert set(line["critical_how"]) == {"interpolated"}
    for _, row in line.iloc[1:].iterrows():  # the intervals hold their estimates
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        assert row["d_ci_low"] <= row["d"] <= row["d_ci_high"]
    assert line["d_ci_high"].iloc[2] < -0.8  # −2 is a large effect beyond doubt


def test_uni_quant_reads_its_levels_in_order_of_damage() -> None:
    """n = 256, 64, 16, 4 is growing damage; the crossing between 64 and 16 is interpolated in log n."""
    means = {0: 10, 256: 9.8, 64: 9.5, 16: 8, 4: 5}
    line = line_of(level_stats(pd.DataFrame(records("uni_quant", means)), n_boot=200))
    assert line["level_value"].tolist() == [0, 256, 64, 16, 4]
    assert line["d"].tolist() == pytest.approx([0, -0.2, -0.5, -2, -5])
    # t = (0.8 − 0.5) / (2 − 0.5) = 0.2 of the way from log 64 to log 16: 64 · (16/64)^0.2 = 48.503
    assert line["critical_level"].iloc[0] == pytest.approx(48.503, abs=1e-3)
    # Measured against damage, not against n: the mean falls as damage grows, so ρ < 0 (it rises with n).
    assert line["spearman_rho"].iloc[0] < -0.5 and line["spearman_p"].iloc[0] < 1e-6


def test_a_crossing_at_the_first_damaged_level() -> None:
    """From 0 on a linear axis it is interpolated; on a log axis level 0 has no place, so it is that level."""
    linear = line_of(level_stats(pd.DataFrame(records("mult_gauss", {0: 10, 0.4: 8})), n_boot=50))
    assert linear["critical_level"].iloc[0] == pytest.approx(0.16)  # 0.8 / 2 of the way from 0 to 0.4
    log = line_of(level_stats(pd.DataFrame(records("uni_quant", {0: 10, 64: 8, 4: 5})), n_boot=50))
    assert log["critical_level"].iloc[0] == 64 and log["critical_how"].iloc[0] == "first damaged level"


def test_a_measure_that_never_crosses_is_not_reached_and_ranks_last() -> None:
    flat = records("mult_gauss", {0: 10, 0.1: 9.9, 0.2: 9.8}, measure="mattr")
    steep = records("mult_gauss", {0: 10, 0.1: 9.5, 0.2: 8}, measure="tokens_out")
    early = records("mult_gauss", {0: 10, 0.1: 8, 0.2: 7}, measure="tokens_out", experiment="dreams")
    stats = level_stats(pd.DataFrame(flat + steep + early), n_boot=50)
    mattr = line_of(stats, "mattr")
    assert mattr["d"].tolist() == pytest.approx([0, -0.1, -0.2])
    assert math.isnan(mattr["critical_level"].iloc[0]) and mattr["critical_how"].iloc[0] == "not reached"
    ranked = ranking(stats)
    assert list(zip(ranked["experiment"], ranked["measure"])) == [
        ("dreams", "tokens_out"),  # 0.04
        ("iq", "tokens_out"),  # 0.12
        ("iq", "mattr"),  # not reached
    ]
    assert ranked["rank"].tolist()[:2] == [1, 2] and ranked["rank"].isna().tolist() == [False, False, True]


def test_spearman_is_one_sided_in_the_direction_of_decline() -> None:
    rising = {0: 1, 0.1: 4, 0.2: 8}
    frame = pd.DataFrame(
        records("mult_gauss", rising, measure="repetition_rate")  # lower is better: rising is decline
        + records("mult_gauss", rising, measure="mattr")  # higher is better: rising is no decline
    )
    stats = level_stats(frame, n_boot=50)
    repetition, mattr = line_of(stats, "repetition_rate"), line_of(stats, "mattr")
    assert repetition["spearman_rho"].iloc[0] == pytest.approx(mattr["spearman_rho"].iloc[0])
    assert repetition["spearman_rho"].iloc[0] > 0.5
    assert repetition["spearman_p"].iloc[0] < 1e-6
    assert mattr["spearman_p"].iloc[0] > 0.99
    # Normalised: 1 is the best level; lower-is-better measures inverted.
    assert repetition["normalised"].tolist() == pytest.approx([1, 4 / 7, 0])
    assert mattr["normalised"].tolist() == pytest.approx([0, 3 / 7, 1])
    rho, p = spearman_decline(np.array([0, 1, 2, 3]), np.array([4.0, 3, 2, 1]), "higher")
    assert rho == pytest.approx(-1) and p < 0.05
    assert all(math.isnan(v) for v in spearman_decline(np.array([0, 1, 2]), np.array([1.0, 1, 1]), "higher"))


def test_cohens_d_pools_unequal_groups() -> None:
    """[2, 4, 6, 8] against [1, 2, 3]: means 5 and 2, pooled variance (2·1 + 3·20/3) / 5 = 4.4."""
    a, b = np.array([1.0, 2, 3]), np.array([2.0, 4, 6, 8])
    d = cohens_d(b.mean(), b.std(ddof=1), len(b), a.mean(), a.std(ddof=1), len(a))
    assert d == pytest.approx(3 / math.sqrt(4.4))
    assert cohens_d(5, 0, 4, 5, 0, 4) == 0 and cohens_d(4, 0, 4, 5, 0, 4) == -math.inf


def test_critical_level_needs_the_clean_level() -> None:
    axis = level_axis("mult_gauss")
    assert critical_level([0.1, 0.2], [-0.5, -2], axis)[1] == "no clean level"
    assert critical_level([0, 0.1, 0.2], [0, math.nan, -2], axis) == (pytest.approx(0.08), "interpolated")


def test_the_bootstrap_resamples_repetitions_then_prompts_and_is_seeded() -> None:
    """Two repetitions 10 apart with little spread inside: the interval of the mean spans most of the gap."""
    values = np.concatenate([np.resize(Z, 50) * 0.1, np.full(50, 10.0)])
    groups = np.repeat([0, 1], 50)
    draws = nested_bootstrap(values, groups, np.random.default_rng(0), 2000)
    low, high = np.percentile(draws.mean, [2.5, 97.5])
    assert low < 1 and high > 9  # a flat bootstrap of the 100 records would give about 5 ± 1
    again = nested_bootstrap(values, groups, np.random.default_rng(0), 2000)
    assert np.array_equal(draws.mean, again.mean)
    frame = pd.DataFrame(records("mult_gauss", {0: 10, 0.1: 9.5}))
    assert level_stats(frame, seed=3, n_boot=100).equals(level_stats(frame, seed=3, n_boot=100))
    assert not level_stats(frame, seed=3, n_boot=100).equals(level_stats(frame, seed=4, n_boot=100))


def test_measures_are_picked_up_when_present() -> None:
    """Absent and all-null columns are skipped; a judge rating is a measure, its model's name is not."""
    frame = pd.DataFrame(records("mult_gauss", {0: 10, 0.1: 9.5, 0.2: 8}))
    frame = frame.assign(
        mattr=None,  # all null
        judge_language_grammar=frame["tokens_out"] / 2,
        judge_discourse_derailment=frame["tokens_out"],
        judge_model="a judge",
        perplexity=frame["level_value"].map({0: 5.0, 0.1: 6.0, 0.2: 50.0}),  # one value per level
    )
    stats = level_stats(frame, n_boot=50)
    measures = list(dict.fromkeys(stats["measure"]))
    assert measures == ["perplexity", "tokens_out", "judge_language_grammar", "judge_discourse_derailment"]
    better = dict(zip(stats["measure"], stats["better"]))
    assert better["judge_discourse_derailment"] == "lower" and better["judge_language_grammar"] == "higher"
    perplexity = line_of(stats, "perplexity")
    assert perplexity["n"].tolist() == [1, 1, 1]  # one measurement per level, not one per record
    assert perplexity["d"].iloc[1:].isna().all()
    assert perplexity["critical_how"].iloc[0] == "one value per level (no spread)"
    grammar = line_of(stats, "judge_language_grammar")
    assert grammar["d"].tolist() == pytest.approx([0, -0.5, -2])  # d does not change with the scale
    assert grammar["critical_level"].iloc[0] == pytest.approx(0.12)


def test_measures_breaking_at_the_same_level_share_a_rank() -> None:
    frame = pd.DataFrame(
        records("uni_quant", {0: 10, 64: 8, 4: 5}, measure="tokens_out")
        + records("uni_quant", {0: 10, 64: 7, 4: 5}, measure="mattr")
        + records("uni_quant", {0: 10, 64: 9.5, 4: 5}, measure="correct")
    )
    ranked = ranking(level_stats(frame, n_boot=20))
    assert dict(zip(ranked["measure"], ranked["rank"])) == {"tokens_out": 1, "mattr": 1, "correct": 3}


def test_a_search_answer_is_marked_on_its_own_line_and_measure_only() -> None:
    rows = pd.DataFrame(
        records("ablation", {0.0: 0.0, 0.1: -0.5, 0.2: -2.0}, measure="correct")
        + records("ablation", {0.0: 0.0, 0.1: -0.5, 0.2: -2.0}, measure="correct", group="attn_only")
    )
    rows["settings_hash"] = np.where(rows["param_group_name"] == "mlp_only", "aaa", "bbb")
    rows["tokens_out"] = 10.0
    stats = level_stats(rows, n_boot=50)
    answer = Found("ablation on mlp_only", "aaa", "ablation", "correct", 0.15, -1.0, "found")
    elsewhere = Found("ablation on other", "ccc", "ablation", "correct", 0.05, -0.3, "found")  # no jobs of its own

    fig = breaking_figure(stats, "iq", found=[answer, elsewhere])
    marks = {
        ax.get_title(): [tuple(line.get_xydata()[0]) for line in ax.get_lines() if line.get_marker() == "D"]
        for ax in fig.axes
    }
    assert marks["ablation: accuracy"] == [(0.15, -1.0)]  # on the mlp_only line, not on attn_only's
    assert marks["ablation: tokens out"] == []
    assert "◆ = breaking point found by search" in fig.get_suptitle()
    assert "◆" not in breaking_figure(stats, "iq").get_suptitle()
    plt.close("all")


def test_a_log_axis_labels_a_searchs_clustered_probes_apart_by_their_length() -> None:
    bit_flip = [1e-09, 5.623e-09, 6.977e-09, 7.772e-09, 8.203e-09, 8.658e-09, 1.333e-08, 3.162e-08, 1e-06, 0.001]
    uni_quant = [2.0, 45.0, 66.0, 80.0, 84.0, 89.0, 98.0, 215.0, 1024.0]
    for probes, longest in ((bit_flip, len("7.772e-09")), (uni_quant, len("1024"))):
        ticked = spread(probes)
        assert ticked[0] == probes[0] and ticked[-1] == probes[-1]  # both ends labelled
        room = 0.025 * longest * (math.log10(probes[-1]) - math.log10(probes[0]))
        assert all(math.log10(b) - math.log10(a) >= room for a, b in zip(ticked, ticked[1:]))
    assert len(spread(uni_quant)) > len(spread(bit_flip))  # short labels need less room
