"""Every record says what its cell's damage did to the weights: real jobs, their JSON and Parquet read back."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.job.runner import run_job
from degrade.methods.bit_flip import eligible_bits
from degrade.model import loading
from degrade.model.groups import resolve_group

DAMAGE = ["weight_rel_error", "weight_snr_db", "weights_changed_share", "bits_flipped"]
COMMON = ("model=tiny_random", "experiment=iq", "experiment.limit=3", "generation.max_new_tokens=4", "param_group=mlp")


@pytest.mark.slow
def test_each_cell_has_one_measure_in_every_record_and_level_zero_is_exactly_clean(tmp_path, embedded_dir) -> None:
    """mult_gauss at σ: the error is σ give or take, the SNR −20·log10 of it; level 0: 0, null (not Infinity), 0, 0."""
    cfg = compose_cfg(*COMMON, "degradation=mult_gauss", "degradation.levels=[0,0.05,0.4]", "experiment.n_rep=2")
    run_job(cfg, tmp_path)
    frame = pd.read_parquet(tmp_path / "records.parquet")
    cells = frame.groupby(["level_value", "repeat_index"])[DAMAGE]
    assert (cells.nunique(dropna=False) == 1).all().all()  # one measure per cell, in each of its records
    per_cell = cells.first()
    clean = per_cell.loc[0.0]
    assert (clean["weight_rel_error"] == 0).all() and clean["weight_snr_db"].isna().all()
    assert (clean["weights_changed_share"] == 0).all() and (clean["bits_flipped"] == 0).all()
    for sigma in (0.05, 0.4):
        damaged = per_cell.loc[sigma]
        assert damaged["weight_rel_error"].between(0.9 * sigma, 1.1 * sigma).all(), damaged
        snr = [-20 * math.log10(e) for e in damaged["weight_rel_error"]]
        assert damaged["weight_snr_db"].tolist() == pytest.approx(snr)
        assert (damaged["weights_changed_share"] > 0.99).all()
    # common noise: the two repetitions draw apart, so their errors differ (a little)
    assert per_cell.loc[0.4, "weight_rel_error"].nunique() == 2
    written = json.loads(next(tmp_path.glob("outputs_*.json")).read_text(encoding="utf-8"))
    assert {r["weight_snr_db"] for r in written if r["level_value"] == 0} == {None}  # JSON null
    assert frame["bits_flipped"].dtype == "int64"


@pytest.mark.slow
def test_bit_flip_records_count_the_flips_the_rate_asks_for(tmp_path, embedded_dir) -> None:
    """p = 1e-3 over every bit of the group: bits_flipped within 5 s.d. of n·p; so few weights changed."""
    cfg = compose_cfg(*COMMON, "degradation=bit_flip", "degradation.levels=[0,0.001]")
    run_job(cfg, tmp_path)
    flipped = pd.read_parquet(tmp_path / "records.parquet").groupby("level_value")[DAMAGE].first()
    model = loading.load(cfg.model, "cpu").model
    n_weights = resolve_group(model, cfg.param_group).numel
    n_bits = n_weights * len(eligible_bits(next(model.parameters()).dtype))
    count = flipped.loc[0.001, "bits_flipped"]
    assert abs(count - n_bits * 1e-3) < 5 * math.sqrt(n_bits * 1e-3)
    # each changed weight took at least one flip; two in one weight are rare at this rate
    changed = flipped.loc[0.001, "weights_changed_share"] * n_weights
    assert 0.95 * count <= changed <= count
    assert flipped.loc[0.0, "bits_flipped"] == 0
