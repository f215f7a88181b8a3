"""The report puts every method on one axis: each measure against the relative weight error, from real jobs."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.analysis.damage_axis import FILE, figure, points
from degrade.analysis.report import write_report
from degrade.job.runner import run_job
from degrade.records.collect import collect

JOBS = {"rtn": "[0,8,3]", "uni_quant": "[0,256,8]", "activation_noise": "[0,0.5]"}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, embedded_dir) -> Path:
    """Three real tiny-model jobs: two quantisers, and a method that leaves the weights clean."""
    root = tmp_path_factory.mktemp("damage_axis") / "multirun"
    for method, levels in JOBS.items():
        cfg = compose_cfg(
            "model=tiny_random",
            "experiment=iq",
            "experiment.limit=3",
            "experiment.n_rep=2",
            "generation=sampling",
            "generation.max_new_tokens=4",
            "param_group=mlp",
            f"degradation={method}",
            f"degradation.levels={levels}",
        )
        run_job(cfg, root / f"degradation={method}")
    return root


@pytest.mark.slow
def test_each_level_is_a_point_at_its_mean_relative_error(sweep) -> None:
    """x: the level's mean weight_rel_error over its cells; y: the mean over repetitions of their means."""
    records = collect(sweep)
    got = points(records, "repetition_rate").set_index(["degradation_method", "level_value"])
    for (method, level), part in records.groupby(["degradation_method", "level_value"]):
        cells = part.groupby("repeat_index")[["weight_rel_error", "repetition_rate"]].mean()
        assert got.loc[(method, level), "error"] == pytest.approx(cells["weight_rel_error"].mean())
        assert got.loc[(method, level), "mean"] == pytest.approx(cells["repetition_rate"].mean())
    # in damage order: rtn's 8 bits before its 3, uni_quant's 256 levels before its 8
    rtn = got.loc["rtn"]
    assert (
        list(rtn.index) == [0.0, 8.0, 3.0] and 0 == rtn["error"].iloc[0] < rtn["error"].iloc[1] < rtn["error"].iloc[2]
    )


@pytest.mark.slow
def test_the_figure_draws_a_line_per_method_that_changed_the_weights(sweep) -> None:
    """rtn and uni_quant have a line each through their damaged levels; activation_noise (weights clean) has none."""
    records = collect(sweep)
    fig = figure(records)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_ylabel().split("\n")[0] for ax in panels] == ["accuracy", "repetition rate", "tokens out"]
    expected = points(records, "tokens_out")
    tokens = panels[2]
    lines = {bars.get_label(): bars.lines[0] for bars in tokens.containers}  # errorbar: its data line first
    assert sorted(lines) == ["rtn / mlp", "uni_quant / mlp"]
    for method, line in lines.items():
        want = expected[(expected["degradation_method"] == method.split(" / ")[0]) & (expected["level_value"] != 0)]
        assert list(line.get_xdata()) == pytest.approx(want["error"].tolist())
        assert list(line.get_ydata()) == pytest.approx(want["mean"].tolist())
    assert tokens.get_xscale() == "log"
    # the clean level (error 0, no place on a log axis): a dashed line at each drawn method's level-0 mean
    dashed = sorted(line.get_ydata()[0] for line in tokens.get_lines() if line.get_linestyle() == "--")
    clean = expected[(expected["level_value"] == 0) & (expected["degradation_method"] != "activation_noise")]
    assert dashed == pytest.approx(sorted(clean["mean"]))
    plt.close(fig)


@pytest.mark.slow
def test_the_report_writes_the_figure_and_the_summary_gives_each_levels_error(sweep, tmp_path) -> None:
    paths = write_report(sweep, tmp_path / "report")
    png = tmp_path / "report" / FILE
    assert png in paths["plots"] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert (width, height) == (1650, 400)  # three panels of 5.5 × 4 inches at 100 dpi
    summary = pd.read_csv(paths["summary_csv"]).set_index(["degradation_method", "level_value"])
    records = pd.read_parquet(paths["records"])
    means = records.groupby(["degradation_method", "level_value"])["weight_rel_error"].mean()
    assert summary["weight_rel_error"].to_dict() == pytest.approx(means.to_dict())
    assert (summary.loc["activation_noise", "weight_rel_error"] == 0).all()


def test_no_figure_without_a_damaged_cell(tmp_path) -> None:
    """Records without the measure (older ones) or with only clean cells: nothing is drawn."""
    from degrade.analysis.damage_axis import write_damage_axis

    clean = pd.DataFrame({"weight_rel_error": [0.0, None]})
    assert write_damage_axis(clean, tmp_path) == [] and write_damage_axis(pd.DataFrame({"x": [1]}), tmp_path) == []
    assert not (tmp_path / FILE).exists()
