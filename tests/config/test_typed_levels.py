"""What the user typed is what runs: a typed level list or range beats a preset's, and the job says what it runs."""

from __future__ import annotations

import pytest
from conftest import compose_cfg, run_cli

TINY = ["model=tiny_random", "experiment.limit=1", "generation.max_new_tokens=2"]
STUDY_QUANT = [1024.0, 512.0, 256.0, 128.0, 64.0, 32.0, 16.0, 8.0, 4.0]


@pytest.mark.parametrize(
    ("overrides", "levels"),
    [
        (["variant=quant_attn"], STUDY_QUANT),  # the preset's range
        (["variant=quant_attn", "degradation.levels=[1024,4]"], [1024.0, 4.0]),  # typed list beats the preset's range
        (["variant=quant_attn", "degradation.range=null", "degradation.levels=[64]"], [64.0]),
        (["variant=quant_attn", "degradation.levels=[64]", "degradation.range=null"], [64.0]),
        (  # both typed: the last one wins
            ["degradation.levels=[0,0.1]", "degradation.range={min: 0, max: 1, steps: 3}"],
            [0.0, 0.5, 1.0],
        ),
        (
            ["degradation.range={min: 0, max: 1, steps: 3}", "degradation.levels=[0,0.1]"],
            [0.0, 0.1],
        ),
        (["degradation.range.min=0", "degradation.range.max=1", "degradation.range.steps=2"], [0.0, 1.0]),
    ],
)
def test_the_last_typed_levels_or_range_is_what_runs(overrides: list[str], levels: list[float]) -> None:
    assert compose_cfg(*overrides).degradation.levels == levels


def test_a_range_of_null_with_no_levels_left_says_what_to_give() -> None:
    from degrade.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^degradation.levels: missing; give a list"):
        compose_cfg("variant=quant_attn", "degradation.range=null")


def test_dry_run_names_the_method_group_and_levels_that_run(tmp_path) -> None:
    result = run_cli(
        *TINY, "variant=quant_attn", "degradation.levels=[1024,4]", "dry_run=true", f"hydra.run.dir={tmp_path}/run"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.endswith(
        "job: uni_quant (quant_attn) on param_group study_attn_only, 2 levels: 1024, 4; 1 repetition, 1 prompt"
    )
    assert "2 cells" in result.stdout and "9 cells" not in result.stdout
    assert not (tmp_path / "run").exists()
