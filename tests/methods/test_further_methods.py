"""The methods beyond the original study's: add_gauss, bit_flip, prune_magnitude, neuron_ablation, activation_noise.

Statistical properties on real tensors and tiny real models (Llama, Qwen2, Mistral with grouped-query
attention: 4 query heads, 2 key/value heads; GPT-2's fused c_attn), bit-exact restore in fp32 and
bf16, the one-line refusals, the options' checks, and one real job per method.
"""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
from conftest import build_tiny, compose_cfg, run_cli
from torch import nn

from degrade.config.schema import ParamGroupConfig
from degrade.errors import ConfigError, DegradeError
from degrade.job.runner import run_job
from degrade.methods import METHODS, add_gauss, check_options, damage, level_axis
from degrade.methods.bit_flip import LAYOUTS, eligible_bits, flip_bits
from degrade.model import hooks, loading
from degrade.model.groups import ResolvedGroup, resolve_group
from degrade.model.restore import Snapshot, fingerprint
from degrade.model.structure import head_layout

NEW = ("add_gauss", "bit_flip", "prune_magnitude", "neuron_ablation", "activation_noise")
GROUP_KINDS = {
    "all": ["attn_q", "attn_k", "attn_v", "attn_o", "attn_qkv", "mlp_gate", "mlp_up", "mlp_down", "embed", "norm"],
    "attn": ["attn_q", "attn_k", "attn_v", "attn_o", "attn_qkv"],
    "mlp": ["mlp_gate", "mlp_up", "mlp_down"],
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def group_on(model: nn.Module, name: str) -> ResolvedGroup:
    return resolve_group(model, ParamGroupConfig(name=name, kinds=GROUP_KINDS[name]))


def bits_of(tensor: torch.Tensor) -> torch.Tensor:
    """Each element's bits as a (numel, width) 0/1 int tensor, bit 0 the least significant."""
    width = tensor.element_size() * 8
    ints = tensor.reshape(-1).view(LAYOUTS[tensor.dtype][0]).to(torch.int64)
    return (ints.unsqueeze(1) >> torch.arange(width)) & 1


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


# --- the registrations -------------------------------------------------------------------------


def test_every_new_method_is_registered_with_its_axis_and_a_yaml() -> None:
    """Each method has its domain, its axis (bit_flip's is logarithmic) and a preset that composes."""
    for name in NEW:
        cfg = compose_cfg(f"degradation={name}").degradation
        assert cfg.method == name and cfg.levels[0] == 0
        assert cfg.options == check_options(name, {})
        assert METHODS[name].domain
    assert level_axis("bit_flip").log and not level_axis("prune_magnitude").log
    assert all(level_axis(n).damage_grows_with_level for n in NEW)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["degradation=bit_flip", "degradation.options.spare_sign=maybe"],
            "degradation.options.spare_sign: 'maybe'; allowed: false, true",
        ),
        (
            ["degradation=prune_magnitude", "degradation.options.scope=layer"],
            "degradation.options.scope: 'layer'; allowed: tensor, group",
        ),
        (
            ["degradation=neuron_ablation", "degradation.options.unit=block"],
            "degradation.options.unit: 'block'; allowed: neuron, head, layer",
        ),
        (
            ["degradation=bit_flip", "+degradation.options.spare_mantissa=true"],
            "degradation.options.spare_mantissa: unknown option of bit_flip; its options are spare_sign, "
            "spare_exponent",
        ),
        (
            ["degradation=mult_gauss", "+degradation.options.scope=group"],
            "degradation.options.scope: unknown option of mult_gauss; it takes no options",
        ),
        (["degradation=bit_flip", "degradation.levels=[0,2]"], "degradation.levels: 2 outside the domain of bit_flip"),
    ],
)
def test_a_bad_option_is_one_line_naming_the_key(overrides: list[str], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        compose_cfg(*overrides)
    assert str(info.value).startswith(line), str(info.value)


# --- add_gauss --------------------------------------------------------------------------------


def test_add_gauss_noise_is_sigma_times_the_tensors_own_std() -> None:
    """W′ − W has mean 0 and std σ·std(W), whatever the tensor's scale; level 0 and a constant tensor are clean."""
    for scale in (0.02, 3.0):
        w = torch.randn(256, 256, generator=gen(1)) * scale
        noise = add_gauss(w, 0.3, generator=gen(2)) - w
        assert abs(noise.mean().item()) < 0.01 * 0.3 * scale
        assert noise.std().item() == pytest.approx(0.3 * w.std(correction=0).item(), rel=0.01)
    assert torch.equal(add_gauss(w, 0.0, generator=gen(2)), w)
    flat = torch.full((8, 8), 0.5)
    assert torch.equal(add_gauss(flat, 0.3, generator=gen(2)), flat)
    # common random numbers: σ = 0.4 is exactly twice the noise of σ = 0.2 (to float32 rounding)
    twice = add_gauss(w, 0.4, generator=gen(3)) - w
    torch.testing.assert_close(twice, 2 * (add_gauss(w, 0.2, generator=gen(3)) - w), rtol=1e-4, atol=1e-4)


# --- bit_flip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_bit_flip_rate_is_binomial_over_every_bit_of_the_dtype(dtype: torch.dtype) -> None:
    """The flipped bits number within 5σ of n·p, fall on sign, exponent and mantissa, and are reported exactly."""
    w = torch.randn(512, 256, generator=gen(1)).to(dtype)
    clean = w.clone()
    p = 2e-3
    flips = flip_bits(w, p, gen(4))
    changed = bits_of(w) ^ bits_of(clean)
    width = w.element_size() * 8
    assert int(changed.sum()) == flips
    assert within_binomial(flips, w.numel() * width, p)
    per_bit = changed.sum(dim=0)
    assert (per_bit > 0).all(), "every bit position of the dtype can flip"
    assert all(within_binomial(int(c), w.numel(), p) for c in per_bit)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_bit_flip_spares_the_exponent_and_the_sign_when_asked(dtype: torch.dtype) -> None:
    """With spare_exponent no exponent bit changes (no inf, no NaN, no change of scale); spare_sign keeps signs."""
    _, mantissa, exponent = LAYOUTS[dtype]
    w = torch.randn(512, 256, generator=gen(1)).to(dtype)
    clean = w.clone()
    flips = flip_bits(w, 0.01, gen(5), spare_exponent=True, spare_sign=True)
    changed = (bits_of(w) ^ bits_of(clean)).sum(dim=0)
    assert changed[mantissa:].sum() == 0 and changed[:mantissa].all()
    assert within_binomial(flips, w.numel() * mantissa, 0.01)
    assert torch.isfinite(w).all() and torch.equal(torch.sign(w), torch.sign(clean))
    w = clean.clone()
    flip_bits(w, 0.01, gen(5), spare_exponent=True)
    changed = (bits_of(w) ^ bits_of(clean)).sum(dim=0)
    assert changed[mantissa : mantissa + exponent].sum() == 0 and changed[-1] > 0
    assert eligible_bits(dtype, spare_sign=True) == list(range(mantissa + exponent))


def test_bit_flip_at_high_p_and_zero() -> None:
    """A high p keeps the binomial law; p = 0 flips nothing and p = 1 every bit."""
    w = torch.randn(64, 64, generator=gen(1))
    clean = w.clone()
    flips = flip_bits(w, 0.9, gen(2))
    assert int((bits_of(w) ^ bits_of(clean)).sum()) == flips and within_binomial(flips, w.numel() * 32, 0.9)
    w = clean.clone()
    assert flip_bits(w, 0.0, gen(2)) == 0 and torch.equal(w, clean)
    assert flip_bits(w, 1.0, gen(2)) == w.numel() * 32
    assert torch.equal(w.view(torch.int32), ~clean.view(torch.int32))


def test_bit_flip_acts_on_the_parameters_own_dtype() -> None:
    """On a bf16 model the flips are in bf16's 16 bits, not in a float32 copy cast back."""
    model = build_tiny("llama", torch.bfloat16)
    group = group_on(model, "mlp")
    clean = {n: model.get_parameter(n).detach().clone() for n in group.names}
    damage.apply(model, group, "bit_flip", 1e-3, seed=1, repeat=0)
    total = sum(int((bits_of(model.get_parameter(n).data) ^ bits_of(clean[n])).sum()) for n in group.names)
    assert within_binomial(total, group.numel * 16, 1e-3)


# --- prune_magnitude --------------------------------------------------------------------------


def test_prune_per_tensor_zeroes_exactly_the_smallest_fraction() -> None:
    model = build_tiny("qwen2")
    group = group_on(model, "mlp")
    clean = {n: model.get_parameter(n).detach().clone() for n in group.names}
    damage.apply(model, group, "prune_magnitude", 0.3, seed=1, repeat=0)
    for name in group.names:
        w, c = model.get_parameter(name).detach(), clean[name]
        zero = w == 0
        assert int(zero.sum()) == round(0.3 * c.numel()), name
        assert c[zero].abs().max() <= c[~zero].abs().min()
        assert torch.equal(w[~zero], c[~zero])


def test_prune_across_the_group_uses_one_threshold_and_is_nested() -> None:
    model = build_tiny("llama")
    group = group_on(model, "all")
    snap = Snapshot(model, group.names)
    zeros: dict[float, dict[str, torch.Tensor]] = {}
    for p in (0.2, 0.5):
        snap.restore()
        damage.apply(model, group, "prune_magnitude", p, seed=1, repeat=0, options={"scope": "group"})
        zeros[p] = {n: model.get_parameter(n).detach() == 0 for n in group.names}
        assert sum(int(z.sum()) for z in zeros[p].values()) == round(p * group.numel)
    snap.restore()
    clean = {n: model.get_parameter(n).detach() for n in group.names}
    pruned = torch.cat([clean[n][zeros[0.5][n]].abs() for n in group.names])
    kept = torch.cat([clean[n][~zeros[0.5][n]].abs() for n in group.names])
    assert pruned.max() <= kept.min()
    fractions = {n: z.float().mean().item() for n, z in zeros[0.5].items()}
    assert max(fractions.values()) - min(fractions.values()) > 0.2, "one threshold prunes tensors unevenly"
    assert all((zeros[0.2][n] <= zeros[0.5][n]).all() for n in group.names)


def test_prune_ties_still_give_the_exact_count() -> None:
    model = build_tiny("llama")
    group = group_on(model, "mlp")
    param = model.get_parameter(group.names[0])
    with torch.no_grad():
        param.copy_(torch.where(torch.rand(param.shape, generator=gen(1)) < 0.5, 0.25, -0.25))
    damage.apply(model, ResolvedGroup("one", group.targets[:1]), "prune_magnitude", 0.3, seed=1, repeat=0)
    assert int((param == 0).sum()) == round(0.3 * param.numel())


# --- neuron_ablation --------------------------------------------------------------------------


def weight_getter(model: nn.Module, prefix: str):
    """A function from a projection's name under ``prefix`` to its weight."""
    return lambda kind: model.get_parameter(f"{prefix}.{kind}.weight").detach()


def dead_blocks(weight: torch.Tensor, dim: int, size: int) -> list[bool]:
    """For each block of ``size`` along ``dim``: whether it is all zero."""
    moved = weight.movedim(dim, 0)
    blocks = moved.reshape(-1, size, *moved.shape[1:])
    return [bool((b == 0).all()) for b in blocks]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral"])
def test_heads_are_zeroed_whole_and_only_those_under_grouped_query_attention(arch: str) -> None:
    """Dead query heads: their q rows and o columns; a k/v head only when every query head reading it is dead."""
    model = build_tiny(arch)
    layout = head_layout(model, "language")
    assert layout.kv_heads < layout.heads
    group = group_on(model, "attn")
    clean = copy.deepcopy(model)
    snap = Snapshot(model, group.names)
    seen_kv_dead = seen_kv_kept_with_a_dead_head = 0
    for repeat in range(6):
        snap.restore()
        damage.apply(model, group, "neuron_ablation", 0.6, seed=1, repeat=repeat, options={"unit": "head"})
        for layer in range(2):
            get = weight_getter(model, f"model.layers.{layer}.self_attn")
            dead_q = dead_blocks(get("q_proj"), 0, layout.head_dim)
            assert dead_q == dead_blocks(get("o_proj"), 1, layout.head_dim)
            per_group = layout.heads // layout.kv_heads
            want_kv = [all(dead_q[g * per_group : (g + 1) * per_group]) for g in range(layout.kv_heads)]
            assert dead_blocks(get("k_proj"), 0, layout.head_dim) == want_kv
            assert dead_blocks(get("v_proj"), 0, layout.head_dim) == want_kv
            seen_kv_dead += sum(want_kv)
            seen_kv_kept_with_a_dead_head += sum(
                not want_kv[g] and any(dead_q[g * per_group : (g + 1) * per_group]) for g in range(layout.kv_heads)
            )
            for kind in ("q_proj", "k_proj", "v_proj", "o_proj"):  # nothing else changed
                w, c = get(kind), clean.get_parameter(f"model.layers.{layer}.self_attn.{kind}.weight")
                assert torch.equal(w[w != 0], c[w != 0])
    assert seen_kv_dead and seen_kv_kept_with_a_dead_head


def test_heads_of_gpt2s_fused_qkv_are_columns_of_c_attn() -> None:
    """GPT-2's Conv1D c_attn is (in, q|k|v): a dead head is its 16 columns in each of q, k and v, and c_proj's rows."""
    model = build_tiny("gpt2")
    group = group_on(model, "attn")
    snap = Snapshot(model, group.names)
    partly = 0
    for repeat in range(6):
        snap.restore()
        damage.apply(model, group, "neuron_ablation", 0.5, seed=1, repeat=repeat, options={"unit": "head"})
        for layer in range(2):
            get = weight_getter(model, f"transformer.h.{layer}.attn")
            dead = dead_blocks(get("c_attn"), 1, 16)
            assert dead[:4] == dead[4:8] == dead[8:]
            assert dead_blocks(get("c_proj"), 0, 16) == dead[:4]
            partly += any(dead[:4]) and not all(dead[:4])
    assert partly


def test_neurons_are_rows_of_gate_and_up_and_columns_of_down_nested_across_p() -> None:
    model = build_tiny("llama")
    group = group_on(model, "mlp")
    snap = Snapshot(model, group.names)
    dead = {}
    for p in (0.2, 0.5):
        snap.restore()
        damage.apply(model, group, "neuron_ablation", p, seed=2, repeat=0)
        gates = [model.get_parameter(f"model.layers.{i}.mlp.gate_proj.weight").detach() for i in range(2)]
        dead[p] = torch.cat([(g == 0).all(dim=1) for g in gates])
        for i in range(2):
            get = weight_getter(model, f"model.layers.{i}.mlp")
            rows = (get("gate_proj") == 0).all(dim=1)
            assert torch.equal(rows, (get("up_proj") == 0).all(dim=1))
            assert torch.equal(rows, (get("down_proj") == 0).all(dim=0))
            assert int((get("gate_proj") == 0).sum()) == int(rows.sum()) * get("gate_proj").shape[1]
        assert within_binomial(int(dead[p].sum()), dead[p].numel(), p)
    assert (dead[0.2] <= dead[0.5]).all() and dead[0.2].sum() < dead[0.5].sum()


def test_a_dead_layer_is_zeroed_whole_and_the_others_are_untouched() -> None:
    model = build_tiny("llama")
    group = group_on(model, "all")
    clean = copy.deepcopy(model)
    damage.apply(model, group, "neuron_ablation", 0.5, seed=1, repeat=1, options={"unit": "layer"})
    state = {t.layer: [] for t in group.targets}
    for t in group.targets:
        w, c = model.get_parameter(t.name), clean.get_parameter(t.name)
        state[t.layer].append("zero" if (w == 0).all() else "clean" if torch.equal(w, c) else "partly")
    assert state.pop(None) == ["clean"] * len([t for t in group.targets if t.layer is None])  # embed, final norm
    assert sorted(set(s) for s in state.values()) == [{"clean"}, {"zero"}]


@pytest.mark.parametrize(("group", "unit", "says"), [("mlp", "head", "attention heads"), ("attn", "neuron", "MLP")])
def test_a_group_without_the_unit_is_refused_in_one_line(group: str, unit: str, says: str) -> None:
    model = build_tiny("llama")
    before = fingerprint(model.parameters())
    with pytest.raises(DegradeError) as info:
        damage.apply(model, group_on(model, group), "neuron_ablation", 0.5, seed=1, repeat=0, options={"unit": unit})
    assert f"degradation.options.unit={unit}: param_group={group} holds no {says}" in str(info.value)
    assert "\n" not in str(info.value) and fingerprint(model.parameters()) == before


@pytest.mark.parametrize(("name", "says"), [("bit_flip", "packed 4-bit codes"), ("neuron_ablation", "4-bit codes")])
def test_bit_flips_and_structured_ablation_refuse_4bit_weights(embedded_dir, name: str, says: str) -> None:
    cfg = compose_cfg("model=tiny_random", "model.load_4bit=true")
    model = loading.load(cfg.model, "cpu").model
    with pytest.raises(DegradeError, match=says) as info:
        damage.apply(model, resolve_group(model, cfg.param_group), name, 0.5, seed=1, repeat=0)
    assert str(info.value).startswith(f"degradation={name}") and "\n" not in str(info.value)


# --- activation_noise -------------------------------------------------------------------------


def test_activation_noise_spread_is_sigma_times_each_outputs_std_and_reproducible() -> None:
    model = build_tiny("llama")
    group = group_on(model, "mlp")
    module = model.get_submodule("model.layers.0.mlp.up_proj")
    x = torch.randn(4, 32, 64, generator=gen(1))
    clean = module(x)
    snap = Snapshot(model, group.names)
    outputs = {}
    for sigma in (0.1, 0.2):
        snap.restore()
        damage.apply(model, group, "activation_noise", sigma, seed=1, repeat=0)
        assert hooks.attached(model) == len(group.targets)
        outputs[sigma] = module(x)
    noise = (outputs[0.2] - clean) / clean.std(dim=-1, keepdim=True, correction=0)
    assert noise.mean().item() == pytest.approx(0, abs=0.02) and noise.std().item() == pytest.approx(0.2, rel=0.03)
    torch.testing.assert_close(outputs[0.2] - clean, 2 * (outputs[0.1] - clean), rtol=1e-3, atol=1e-5)
    snap.restore()
    damage.apply(model, group, "activation_noise", 0.2, seed=1, repeat=0)
    assert torch.equal(module(x), outputs[0.2]), "same seed, same calls: same noise"
    snap.restore()
    damage.apply(model, group, "activation_noise", 0.2, seed=1, repeat=1)
    assert not torch.equal(module(x), outputs[0.2])
    snap.restore()
    assert hooks.attached(model) == 0 and torch.equal(module(x), clean)


# --- restore, every method, fp32 and bf16 -----------------------------------------------------

DAMAGING = {
    "add_gauss": (0.5, None),
    "bit_flip": (1e-3, None),
    "prune_magnitude": (0.5, {"scope": "group"}),
    "neuron_ablation": (0.9, {"unit": "neuron"}),
    "activation_noise": (0.5, None),
}


@pytest.mark.parametrize("name", NEW)
def test_level_zero_leaves_the_model_clean(name: str) -> None:
    """Level 0 is the clean model for every method, whatever its options: no bit changed, no hook attached."""
    model = build_tiny("llama")
    before = fingerprint(model.parameters())
    damage.apply(model, group_on(model, "all"), name, 0.0, seed=1, repeat=0, options=DAMAGING[name][1])
    assert fingerprint(model.parameters()) == before and hooks.attached(model) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", NEW)
def test_restore_is_bit_exact_after_every_method(name: str, dtype: torch.dtype) -> None:
    """Damage changes the model's output; restore brings back every bit, the clean fingerprint and the output."""
    model = build_tiny("qwen2", dtype)
    clean = copy.deepcopy(model)
    group = group_on(model, "all")
    snap = Snapshot(model, group.names)
    ids = torch.randint(0, 512, (2, 12), generator=gen(1))
    with torch.no_grad():
        clean_logits = model(ids).logits
        level, options = DAMAGING[name]
        damage.apply(model, group, name, level, seed=1, repeat=0, options=options)
        assert not torch.equal(model(ids).logits, clean_logits)
        snap.restore(verify=True)
        assert torch.equal(model(ids).logits, clean_logits)
    assert fingerprint(snap.tensors) == snap.clean_fingerprint and hooks.attached(model) == 0
    for key, value in clean.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


# --- one real job per method ------------------------------------------------------------------

JOB_LEVELS = {
    "add_gauss": "[0,0.5]",
    "bit_flip": "[0,0.001]",
    "prune_magnitude": "[0,0.5]",
    "neuron_ablation": "[0,0.5]",
    "activation_noise": "[0,0.5]",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_each_method_runs_a_job_end_to_end(tmp_path, embedded_dir, name: str) -> None:
    """Through run_job on model=tiny_random: two levels × two prompts recorded; weight methods change the weights."""
    cfg = compose_cfg(
        "model=tiny_random",
        f"degradation={name}",
        f"degradation.levels={JOB_LEVELS[name]}",
        "param_group=mlp",
        "experiment=iq",
        "experiment.limit=2",
        "generation.max_new_tokens=4",
    )
    run_job(cfg, tmp_path)
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert len(records) == 4 and set(records["degradation_method"]) == {name}
    assert sorted(records["level_value"].unique()) == [0.0, float(JOB_LEVELS[name].strip("[]").split(",")[1])]
    prints = records.groupby("level_value")["weights_fingerprint"].first()
    assert (prints.iloc[0] == prints.iloc[1]) == (name == "activation_noise")


@pytest.mark.slow
def test_a_method_that_cannot_apply_stops_the_run_in_one_line_before_generation(tmp_path, embedded_dir) -> None:
    """Head ablation on the MLP group: one error line naming the option and the group, exit 2, nothing generated."""
    out = tmp_path / "run"
    result = run_cli(
        "model=tiny_random",
        "degradation=neuron_ablation",
        "degradation.options.unit=head",
        "param_group=mlp",
        "experiment.limit=1",
        "generation.max_new_tokens=4",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and errors[0].endswith(
        "degradation.options.unit=head: param_group=mlp holds no attention heads (attn_q, attn_k, attn_v, attn_o, "
        "attn_qkv, e.g. param_group=attn); pick another group or another unit (neuron, head, layer)"
    ), errors
    assert "Traceback" not in result.stderr
    journal = out / "records.jsonl"
    assert not journal.exists() or journal.read_text() == ""
