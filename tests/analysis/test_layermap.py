"""The layer map: one layer damaged per job, the report's heatmap and ranking, read back against the records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg, run_cli

from degrade.analysis.layermap import grid, ranking, with_layers
from degrade.analysis.report import write_report
from degrade.analysis.stats.measures import MEASURES
from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.records.collect import read_settings

PNG = b"\x89PNG\r\n\x1a\n"
BASE = ["model=tiny_random", "generation.max_new_tokens=4", "experiment.limit=2", "experiment.fidelity.enabled=true"]
LEVELS = "degradation.levels=[0,0.5,2.0]"


@pytest.fixture(scope="module")
def layer_sweep(tmp_path_factory) -> tuple[Path, dict]:
    """Two jobs of one sweep, each damaging the MLP of one of the tiny model's two layers; a job of another group."""
    root = tmp_path_factory.mktemp("layers")
    for layer in (0, 1):
        run_job(compose_cfg(*BASE, LEVELS, f"param_group.layer={layer}"), root / f"param_group.layer={layer}")
    run_job(compose_cfg(*BASE, LEVELS, "param_group=attn"), root / "param_group=attn")  # no layer range: no map
    return root, write_report(root)


def test_one_layer_per_job_is_what_the_records_and_metadata_say(layer_sweep) -> None:
    root, _ = layer_sweep
    for layer in (0, 1):
        meta = json.loads((root / f"param_group.layer={layer}" / "metadata.json").read_text(encoding="utf-8"))
        assert meta["settings"]["param_group.layers"] == [layer, layer + 1]
        assert {n.split(".")[2] for n in meta["param_group"]["names"]} == {str(layer)}  # model.layers.<i>.mlp…
        assert meta["param_group"]["count"] == 3  # gate, up and down of that layer alone


def test_the_heatmap_holds_the_mean_of_each_layer_and_level(layer_sweep) -> None:
    root, paths = layer_sweep
    maps = [p for p in paths["plots"] if p.name.startswith("layers_")]
    assert [p.name for p in maps] == ["layers_dreams_mult_gauss_mlp_only.png"]  # attn ran no layer range
    assert maps[0].read_bytes()[:8] == PNG
    records = pd.read_parquet(root / "report" / "all_records.parquet")
    mine = records[records.param_group_name == "mlp_only"]
    kl = next(m for m in MEASURES if m.column == "kl_to_clean")
    table = grid(with_layers(mine, read_settings(root, mine)), kl)
    assert list(table.index) == ["0", "1"] and list(table.columns) == [0.0, 0.5, 2.0]
    for layer in (0, 1):
        job = pd.read_parquet(root / f"param_group.layer={layer}" / "records.parquet")
        assert table.loc[str(layer)].tolist() == job.groupby("level_value").kl_to_clean.mean().tolist()
    assert (table[0.0] == 0).all() and (table[2.0] > 0).all()


def test_the_ranking_puts_the_layer_that_moved_most_first(layer_sweep) -> None:
    root, _ = layer_sweep
    ranking = pd.read_csv(root / "report" / "layers.csv", dtype={"layers": str})
    kl = ranking[ranking.measure == "kl_to_clean"].sort_values("rank")
    agreement = ranking[ranking.measure == "top1_agreement"]
    assert len(kl) == 2 and set(ranking.param_group_name) == {"mlp_only"}
    for layer in ("0", "1"):  # damage: the mean over the damaged levels of KL − clean KL (0)
        job = pd.read_parquet(root / f"param_group.layer={layer}" / "records.parquet")
        expected = job[job.level_value > 0].groupby("level_value").kl_to_clean.mean().mean()
        assert kl.set_index("layers").damage[layer] == pytest.approx(expected)
        # agreement is higher-is-better: its damage is how far it fell
        fell = 1 - job[job.level_value > 0].groupby("level_value").top1_agreement.mean().mean()
        assert agreement.set_index("layers").damage[layer] == pytest.approx(fell)
    assert kl.damage.is_monotonic_decreasing
    text = (root / "report" / "layers.md").read_text(encoding="utf-8")
    assert "| KL to clean | " + ", ".join(f"{r.layers} ({r.damage:.3g})" for r in kl.itertuples()) + " |" in text


def test_without_level_zero_the_order_is_the_same(layer_sweep) -> None:
    root, _ = layer_sweep
    records = pd.read_parquet(root / "report" / "all_records.parquet")
    layered = with_layers(records, read_settings(root, records))
    for measure in MEASURES:
        if measure.column not in ("kl_to_clean", "top1_agreement", "correct") or layered[measure.column].isna().all():
            continue
        both, damaged_only = ranking(layered, measure), ranking(layered[layered.level_value > 0], measure)
        assert damaged_only.layers.tolist() == both.layers.tolist(), measure.column
        assert damaged_only["mean"].tolist() == pytest.approx(both["mean"].tolist())
        assert damaged_only.damage.isna().all() and both.damage.notna().all()
    tokens = next(m for m in MEASURES if m.column == "tokens_out")  # no good direction and no clean level: no order
    assert ranking(layered[layered.level_value > 0], tokens).empty


def test_a_block_of_layers_and_the_bad_ones() -> None:
    assert compose_cfg("param_group.layer=4", "param_group.block=3").param_group.layers == [4, 7]
    for overrides, needle in [
        (["param_group.layer=-1"], "param_group.layer: -1; must be an integer ≥ 0"),
        (["param_group.block=2"], "param_group.block: 2; the layers damaged together from param_group.layer"),
        (["param_group.layer=1", "param_group.block=0"], "param_group.block: 0;"),
        (["param_group.layer=1", "param_group.layers=[0,2]"], "param_group.layer: given with param_group.layers"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            compose_cfg(*overrides)


def test_a_layer_beyond_the_model_names_the_key_typed(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"param_group.layer: 2 \(block 1\) goes beyond this model's 2 layers"):
        run_job(compose_cfg(*BASE, "param_group.layer=2"), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_one_command_maps_every_layer(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    done = run_cli(
        "--multirun", *BASE, "degradation.levels=[0,2.0]", "param_group.layer=range(0,2)", f"hydra.sweep.dir={sweep}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = write_report(sweep)
    assert any(p.name == "layers_dreams_mult_gauss_mlp_only.png" for p in report["plots"])
    ranking = pd.read_csv(sweep / "report" / "layers.csv", dtype={"layers": str})
    assert sorted(ranking[ranking.measure == "kl_to_clean"].layers) == ["0", "1"]
