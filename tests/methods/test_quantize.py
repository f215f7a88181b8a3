"""Quantisation as deployed: ``rtn`` (round-to-nearest, every grid and granularity) and ``minifloat`` (OCP MX).

The rounding is checked against values worked out by hand on small tensors (chosen so every scale is a
power of two or an integer, so float32 holds each step exactly); then the layout on real tiny models (a
row is an output's inputs, GPT-2's Conv1D stores them as columns), the registrations, the one-line
refusals, and a real job per method.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import build_tiny, compose_cfg

from degrade.config.schema import ParamGroupConfig
from degrade.errors import ConfigError
from degrade.job.runner import run_job
from degrade.methods import damage, level_axis
from degrade.methods.minifloat import FORMATS, mx_round, round_element
from degrade.methods.rtn import rtn_round
from degrade.model.groups import resolve_group
from degrade.model.restore import fingerprint


def rtn(weight: list, bits: int, granularity: str = "tensor", group_size: int = 128, sym: bool = True) -> list:
    """rtn_round on a float32 tensor whose rows run along the last dimension, as a nested list."""
    tensor = torch.tensor(weight, dtype=torch.float32)
    out = rtn_round(
        tensor, bits, dim=tensor.ndim - 1, granularity=granularity, group_size=group_size, symmetric_grid=sym
    )
    return out.tolist()


# --- rtn, by hand ----------------------------------------------------------------------------------


def test_rtn_symmetric_per_tensor_rounds_half_to_even_on_max_abs_over_2_to_b_minus_1() -> None:
    """b = 3: scale = 3 / (2² − 1) = 1; −1.5 is a tie (→ −2, even), 0.6 → 1, 2.4 → 2; the max lands on 3 exactly."""
    assert rtn([[3.0, -1.5, 0.6, 2.4]], 3) == [[3.0, -2.0, 1.0, 2.0]]
    # b = 2: scale = 3 / 1 = 3, codes {−1, 0, 1} (−2 is never reached): 3, −0.5 → 0 (tie), 0.2 → 0, 0.8 → 1
    assert rtn([[3.0, -1.5, 0.6, 2.4]], 2) == [[3.0, 0.0, 0.0, 3.0]]
    # the negative end: −4 is the largest magnitude, b = 3 gives scale 4/3 and the code −3, never −4
    out = rtn([[-4.0, 1.0]], 3)[0]
    assert out[0] == pytest.approx(-4.0) and out[1] == pytest.approx(4 / 3)


def test_rtn_asymmetric_has_a_zero_point_and_keeps_zero_exact() -> None:
    """b = 2: [−1, 2], scale = 3 / (2² − 1) = 1, zero = 1: codes 0…3 are −1, 0, 1, 2; 0.5 → 0 (tie to even)."""
    assert rtn([[-1.0, 0.5, 2.0, 0.2]], 2, sym=False) == [[-1.0, 0.0, 2.0, 0.0]]
    # all positive: the range is widened to [0, 6] so 0 stays exact; scale 6/3 = 2: 1 → 0, 2.9 → 2, 5 → 4 (ties to even)
    assert rtn([[1.0, 2.9, 5.0, 6.0]], 2, sym=False) == [[0.0, 2.0, 4.0, 6.0]]
    assert rtn([[0.0, 0.0]], 4, sym=False) == [[0.0, 0.0]]  # an all-zero block stays 0 (no division by 0)


def test_rtn_per_channel_gives_each_row_its_own_scale() -> None:
    """Row 0's max is 3 (scale 1), row 1's is 6 (scale 2); one scale for the tensor would be 2 for both."""
    rows = [[3.0, -1.5, 0.6, 2.4], [6.0, -3.0, 1.2, 4.8]]
    assert rtn(rows, 3, "channel") == [[3.0, -2.0, 1.0, 2.0], [6.0, -4.0, 2.0, 4.0]]
    assert rtn(rows, 3, "tensor") == [[4.0, -2.0, 0.0, 2.0], [6.0, -4.0, 2.0, 4.0]]


def test_rtn_groups_run_along_a_row_and_the_last_group_is_shorter() -> None:
    """Groups of 4 in a row of 6: [3, −1.5, 0.6, 2.4] (scale 1) and the short last group [0.75, −0.3] (scale 0.25)."""
    row = [[3.0, -1.5, 0.6, 2.4, 0.75, -0.3]]
    assert rtn(row, 3, "group", group_size=4) == [[3.0, -2.0, 1.0, 2.0, 0.75, -0.25]]
    # one scale for the row would round the last two on a step of 1
    assert rtn(row, 3, "channel") == [[3.0, -2.0, 1.0, 2.0, 1.0, 0.0]]
    # asymmetric, the same groups: [−1.5, 3] widened to hold 0, step 4.5/7; the last group [−0.3, 0.75], step 0.15
    out = rtn(row, 3, "group", group_size=4, sym=False)[0]
    assert out[4:] == pytest.approx([0.75, -0.3])


def test_rtn_more_bits_is_less_error_and_group_is_finer_than_tensor() -> None:
    """On one real weight: the error falls with every bit added, and per-group scales beat one per tensor."""
    weight = torch.randn(64, 300, generator=torch.Generator().manual_seed(0))
    weight[0, 0] = 40.0  # an outlier: it sets the step of the whole tensor, of its own group only
    errors = {}
    for gran in ("tensor", "channel", "group"):
        for bits in (2, 3, 4, 8):
            out = rtn_round(weight, bits, dim=1, granularity=gran, group_size=128, symmetric_grid=False)
            errors[gran, bits] = float((out - weight).norm() / weight.norm())
    for gran in ("tensor", "channel", "group"):
        assert errors[gran, 2] > errors[gran, 3] > errors[gran, 4] > errors[gran, 8]
    assert all(errors["group", b] < errors["channel", b] < errors["tensor", b] for b in (2, 3, 4))


# --- minifloat, by hand ------------------------------------------------------------------------------


def block(*values: float, length: int = 32) -> torch.Tensor:
    """One row of ``length`` values: those given, then zeros (which do not change a block's max)."""
    return torch.tensor([[*values, *[0.0] * (length - len(values))]], dtype=torch.float32)


def test_e2m1_elements_are_the_fp4_values_with_a_power_of_two_scale() -> None:
    """max 3: X = 2^(floor(log2 3) − 2) = 0.5; v/X: 6 → 6, 2.5 → 2 (tie to even), 0.4 → 0.5, 7.8 → saturated at 6."""
    out = mx_round(block(3.0, 1.25, 0.2, -0.7), 4, dim=1)[0, :4]
    # −0.7/0.5 = −1.4 → −1.5 (E2M1 steps of 0.5 between 1 and 2)
    assert out.tolist() == [3.0, 1.0, 0.25, -0.75]
    saturated = mx_round(block(3.9, 1.0), 4, dim=1)[0, :2]
    assert saturated.tolist() == [3.0, 1.0]  # 3.9/0.5 = 7.8 lies past E2M1's 6: saturated, not 8
    values = torch.linspace(-6, 6, 1001)
    assert set(round_element(values, FORMATS[4]).abs().tolist()) == {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0}


def test_e3m2_and_e4m3_round_in_their_own_mantissas() -> None:
    """max 1: E3M2's X = 2^(0 − 4), E4M3's X = 2^(0 − 8); 0.3 → 4.8 → 5 (E3M2), 76.8 → 80 (E4M3): both 0.3125."""
    assert mx_round(block(1.0, 0.3, -0.3), 6, dim=1)[0, :3].tolist() == [1.0, 0.3125, -0.3125]
    assert mx_round(block(1.0, 0.3, 0.9), 8, dim=1)[0, :3].tolist() == [1.0, 0.3125, 0.875]  # 230.4 → 224 (step 16)
    # saturation: max 1.99 → X = 2^−8, 509.44 rounds to 512, past E4M3's 448: 448·2^−8 = 1.75
    assert mx_round(block(1.99), 8, dim=1)[0, 0].item() == 1.75
    assert mx_round(block(1.99), 6, dim=1)[0, 0].item() == 1.75  # E3M2: 31.84 → 32, past its 28
    assert round_element(torch.tensor([460.0, 28.0, 30.0]), FORMATS[8]).tolist() == [448.0, 28.0, 30.0]


def test_e4m3_keeps_its_subnormals_down_to_2_to_the_minus_9_of_the_scale() -> None:
    """max 1, X = 2^−8: 2^−15 → 2^−7 (subnormal, exact); 2^−18 → half the least step, a tie, to 0; 3·2^−19 → 2^−17."""
    out = mx_round(block(1.0, 2.0**-15, 2.0**-18, 3 * 2.0**-19), 8, dim=1)[0, :4]
    assert out.tolist() == [1.0, 2.0**-15, 0.0, 2.0**-17]


def test_mx_blocks_are_32_inputs_and_a_shorter_last_block_has_its_own_scale() -> None:
    """A row of 40: the first 32 share X from their max 3 (E2M1: 0.5), the last 8 from theirs 0.3 (X = 2^−4)."""
    row = torch.zeros(1, 40)
    row[0, 0], row[0, 1] = 3.0, 0.3
    row[0, 32], row[0, 33] = 0.3, 0.1
    out = mx_round(row, 4, dim=1)[0]
    assert out[1].item() == 0.25  # 0.3/0.5 = 0.6 → 0.5: a step of 0.25 in the big block
    assert out[32].item() == 0.25 and out[33].item() == 0.09375  # 0.3 → 4.8 → 4; 0.1 → 1.6 → 1.5 (× 2^−4)


# --- on real tiny models ---------------------------------------------------------------------------


def test_a_row_is_an_outputs_inputs_and_gpt2s_conv1d_holds_them_in_columns() -> None:
    """Llama's down_proj (out, in) is grouped along its rows, GPT-2's c_fc (in, out) along its columns."""
    options = {"granularity": "group", "group_size": 32, "symmetric": True}
    for arch, name, dim in (
        ("llama", "model.layers.0.mlp.down_proj.weight", 1),
        ("gpt2", "transformer.h.0.mlp.c_fc.weight", 0),
    ):
        model = build_tiny(arch)
        clean = model.get_parameter(name).detach().clone()
        group = resolve_group(model, ParamGroupConfig(name="mlp", kinds=["mlp_gate", "mlp_up", "mlp_down"]))
        damage.apply(model, group, "rtn", 3, seed=0, repeat=0, options=options)
        got = model.get_parameter(name).detach()
        assert torch.equal(got, rtn_round(clean, 3, dim=dim, granularity="group", group_size=32, symmetric_grid=True))
        wrong = rtn_round(clean, 3, dim=1 - dim, granularity="group", group_size=32, symmetric_grid=True)
        assert not torch.equal(got, wrong), arch
        mx = build_tiny(arch)
        damage.apply(mx, group, "minifloat", 4, seed=0, repeat=0)
        assert torch.equal(mx.get_parameter(name).detach(), mx_round(clean, 4, dim=dim)), arch


@pytest.mark.parametrize(("name", "levels"), [("rtn", [8, 4, 3, 2]), ("minifloat", [8, 6, 4])])
def test_fewer_bits_is_more_damage_and_level_zero_is_clean(name: str, levels: list[int]) -> None:
    """The axis orders the levels from fine to coarse, and the model's change grows with it; level 0 changes nothing."""
    assert sorted(levels, key=level_axis(name).damage_order) == levels
    assert not level_axis(name).damage_grows_with_level
    model = build_tiny("llama")
    group = resolve_group(model, ParamGroupConfig(name="all", kinds=["attn_q", "attn_v", "mlp_up", "mlp_down"]))
    clean = {n: model.get_parameter(n).detach().clone() for n in group.names}
    before = fingerprint(model.parameters())
    damage.apply(model, group, name, 0, seed=0, repeat=0)
    assert fingerprint(model.parameters()) == before
    errors = []
    for level in levels:
        damage.apply(model, group, name, level, seed=0, repeat=0)
        errors.append(sum(float((model.get_parameter(n).detach() - w).norm() ** 2) for n, w in clean.items()))
        for n, w in clean.items():
            model.get_parameter(n).data.copy_(w)
    assert errors == sorted(errors) and errors[0] > 0


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["degradation=rtn", "degradation.levels=[0,1]"],
            "degradation.levels: 1 outside the domain of rtn: an integer b",
        ),
        (["degradation=rtn", "degradation.levels=[17]"], "degradation.levels: 17 outside the domain of rtn"),
        (["degradation=rtn", "degradation.levels=[3.5]"], "degradation.levels: 3.5 outside the domain of rtn"),
        (
            ["degradation=minifloat", "degradation.levels=[0,5]"],
            "degradation.levels: 5 outside the domain of minifloat: 8 (E4M3), 6 (E3M2) or 4 (E2M1) bits",
        ),
        (
            ["degradation=rtn", "degradation.options.group_size=100"],
            "degradation.options.group_size: 100; allowed: 32, 64, 128, 256",
        ),
        (
            ["degradation=rtn", "degradation.options.granularity=row"],
            "degradation.options.granularity: 'row'; allowed: group, channel, tensor",
        ),
        (
            ["degradation=minifloat", "+degradation.options.block=16"],
            "degradation.options.block: unknown option of minifloat; it takes no options",
        ),
    ],
)
def test_a_bad_level_or_option_is_one_line_naming_the_key(overrides: list[str], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_cfg(*overrides)
    assert str(info.value).startswith(line), str(info.value)


def test_a_range_of_bits_is_rounded_to_integers() -> None:
    cfg = compose_cfg("degradation=rtn", "degradation.range={min: 8, max: 2, steps: 4}")
    assert cfg.degradation.levels == [8.0, 6.0, 4.0, 2.0]
    assert compose_cfg("degradation=rtn").degradation.options == {
        "granularity": "group",
        "group_size": 128,
        "symmetric": False,
    }


@pytest.mark.slow
@pytest.mark.parametrize(("name", "levels"), [("rtn", "[0,4]"), ("minifloat", "[0,4]")])
def test_each_quantiser_runs_a_job_and_its_records_say_the_damage(tmp_path, embedded_dir, name: str, levels) -> None:
    """Through run_job on model=tiny_random: the levels recorded as given, the weights changed at 4 bits only."""
    cfg = compose_cfg(
        "model=tiny_random",
        f"degradation={name}",
        f"degradation.levels={levels}",
        "param_group=mlp",
        "experiment=iq",
        "experiment.limit=2",
        "generation.max_new_tokens=4",
    )
    run_job(cfg, tmp_path)
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert len(records) == 4 and set(records["degradation_method"]) == {name}
    by_level = records.groupby("level_value")
    assert by_level["weights_fingerprint"].nunique().tolist() == [1, 1]
    assert by_level["weights_fingerprint"].first().nunique() == 2
    assert by_level["weight_rel_error"].first().tolist()[0] == 0.0 and by_level["weight_rel_error"].first()[4.0] > 0
