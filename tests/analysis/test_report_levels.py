"""The report asks the method registry how to label, draw and order levels: a new method needs no report change."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from conftest import compose_cfg

from degrade.analysis.report import axis_label, figure, summarize, write_report
from degrade.job.runner import run_job
from degrade.methods import METHODS, LevelAxis, register
from degrade.records.collect import collect

NAME = "mantissa"
LEVELS = [0, 8, 2, 4]  # swept out of damage order on purpose
LABEL = "k (mantissa bits kept)"


def mantissa(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """Keep k = ``level`` bits of every element's mantissa; more bits is less damage, 0 leaves it clean."""
    if level == 0:
        return weight
    fraction, exponent = torch.frexp(weight)
    scale = 2.0 ** int(level)
    return torch.ldexp(torch.round(fraction * scale) / scale, exponent)


@pytest.fixture
def registered():
    """``mantissa`` registered as a method for one test, the registry left as it was after."""
    register(
        NAME,
        domain="an integer k ≥ 1 (or 0 for the clean model)",
        accepts=lambda k: k >= 0 and float(k).is_integer(),
        integer_levels=True,
        axis=LevelAxis(LABEL, log=True, damage_grows_with_level=False),
    )(mantissa)
    try:
        yield NAME
    finally:
        METHODS.pop(NAME, None)


def run_mantissa(out_dir) -> None:
    cfg = compose_cfg(
        "model=tiny_random",
        "experiment.limit=2",
        "generation.max_new_tokens=2",
        f"degradation.method={NAME}",
        f"degradation.levels=[{','.join(map(str, LEVELS))}]",
    )
    run_job(cfg, out_dir)


def data_lines(ax: plt.Axes) -> list:
    """The lines a reader sees: the level series and reference lines (not error-bar caps)."""
    return [line for line in ax.get_lines() if line.get_marker() == "o" or line.get_linestyle() == "--"]


def test_a_registered_method_is_labelled_drawn_and_ordered_by_its_registration(registered, tmp_path) -> None:
    run_mantissa(tmp_path / "job")
    records = collect(tmp_path)
    assert records.level_value.drop_duplicates().tolist() == LEVELS  # the job ran them in the order given
    summary = summarize(records)
    assert summary.level_value.tolist() == [0, 8, 4, 2]  # clean first, then fewer bits = more damage
    assert axis_label(NAME) == f"{LABEL} (log scale, reversed: larger is less damage)"
    fig = figure(records, "tokens_out")
    try:
        (ax,) = fig.axes
        assert ax.get_title() == NAME and ax.get_xlabel() == axis_label(NAME)
        assert ax.get_xscale() == "log" and ax.xaxis_inverted()
        line, clean = data_lines(ax)
        assert sorted(line.get_xdata()) == [2, 4, 8]  # level 0 cannot sit on a log axis…
        assert clean.get_label().endswith("(clean, level 0)")  # …so it is a reference line at the clean value
        assert set(clean.get_ydata()) == {summary.tokens_out[summary.level_value == 0].item()}
    finally:
        plt.close(fig)


def test_records_of_a_method_no_longer_registered_still_report(registered, tmp_path) -> None:
    run_mantissa(tmp_path / "job")
    METHODS.pop(NAME)  # the method is gone; its records stay
    paths = write_report(tmp_path)
    records = collect(tmp_path)
    assert summarize(records).level_value.tolist() == [0, 2, 4, 8]  # no registration: plain ascending levels
    assert axis_label(NAME) == "level"
    fig = figure(records, "tokens_out")
    try:
        (ax,) = fig.axes
        assert ax.get_xlabel() == "level" and ax.get_xscale() == "linear" and not ax.xaxis_inverted()
        assert [sorted(line.get_xdata()) for line in data_lines(ax)] == [[0, 2, 4, 8]]  # level 0 is a point
    finally:
        plt.close(fig)
    assert "tokens_out.png" in {p.name for p in paths["plots"]}


@pytest.mark.parametrize(
    "method, label, levels, order",
    [
        ("none", "level (0: the clean model)", [0], [0]),
        ("mult_gauss", "σ (multiplicative Gaussian noise)", [0.4, 0, 1.5, 0.1], [0, 0.1, 0.4, 1.5]),
        ("ablation", "p (fraction of weights zeroed)", [1, 0.4, 0, 0.1], [0, 0.1, 0.4, 1]),
        (
            "uni_quant",
            "n (quantisation levels per tensor) (log scale, reversed: larger is less damage)",
            [4, 0, 256, 16, 2],
            [0, 256, 16, 4, 2],
        ),
    ],
)
def test_the_built_in_methods_label_and_order_their_levels(method, label, levels, order) -> None:
    assert axis_label(method) == label
    assert all(METHODS[method].accepts(v) for v in levels)
    assert sorted(levels, key=METHODS[method].axis.damage_order) == order
