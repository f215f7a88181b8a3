"""Damage then restore on tiny Llama: bit-exact restore, untouched outsiders, per-parameter seeding."""

from __future__ import annotations

import copy
from functools import cache

import pytest
import torch
from conftest import build_tiny, compose_cfg
from torch import nn

from degrade.config.schema import ParamGroupConfig
from degrade.methods import METHODS, damage
from degrade.methods.damage import param_seed
from degrade.model.groups import ResolvedGroup, resolve_group
from degrade.model.restore import Snapshot, fingerprint, legacy_fingerprint, model_fingerprint

DTYPES = [torch.float32, torch.bfloat16]
DAMAGE = [("mult_gauss", 0.5), ("ablation", 0.5), ("uni_quant", 4), ("rtn", 3), ("minifloat", 4)]


@cache
def group_cfg(name: str) -> ParamGroupConfig:
    """The typed config of ``param_group=name`` (composed once per name)."""
    return compose_cfg(f"param_group={name}").param_group


def tiny_llama(dtype: torch.dtype = torch.float32, group: str = "all") -> tuple[nn.Module, ResolvedGroup]:
    """A tiny random Llama in ``dtype`` and the resolved ``group`` on it."""
    model = build_tiny("llama", dtype)
    return model, resolve_group(model, group_cfg(group))


def params_of(model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    return [model.get_parameter(n) for n in names]


def assert_model_equal(model: nn.Module, clean: nn.Module) -> None:
    """Every parameter and buffer of ``model`` is bit-identical to ``clean``'s."""
    got, want = model.state_dict(keep_vars=True), clean.state_dict(keep_vars=True)
    assert got.keys() == want.keys()
    differ = [k for k in got if got[k].dtype != want[k].dtype or not torch.equal(got[k], want[k])]
    assert not differ, f"differ from the clean model: {differ}"


def snapshot_of(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    return {n: model.get_parameter(n).detach().clone() for n in names}


# --- damage, restore, bit-exact -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "bfloat16"])
@pytest.mark.parametrize(("method", "level"), DAMAGE, ids=[m for m, _ in DAMAGE])
def test_restore_brings_back_every_bit(dtype: torch.dtype, method: str, level: float) -> None:
    """Damage changes every weight of the group; restore makes the WHOLE model bit-identical to a deep copy."""
    model, group = tiny_llama(dtype)
    clean = copy.deepcopy(model)
    snap = Snapshot(model, group.names)
    assert snap.clean_fingerprint == fingerprint(params_of(clean, group.names))

    damage.apply(model, group, method, level, seed=1, repeat=0)
    unchanged = [n for n in group.names if torch.equal(model.get_parameter(n), clean.get_parameter(n))]
    assert not unchanged, f"{method}={level} left these untouched: {unchanged}"
    assert fingerprint(params_of(model, group.names)) != snap.clean_fingerprint

    snap.restore()
    assert_model_equal(model, clean)
    assert fingerprint(params_of(model, group.names)) == snap.clean_fingerprint
    snap.restore(verify=True)  # passes: the weights are clean


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "bfloat16"])
def test_many_cells_in_a_row_restore_exactly(dtype: torch.dtype) -> None:
    """A sweep of cells (method × level × repeat) with a restore before each ends on the clean model."""
    model, group = tiny_llama(dtype)
    clean = copy.deepcopy(model)
    snap = Snapshot(model, group.names)
    for method, level in [*DAMAGE, ("mult_gauss", 0.1), ("ablation", 1.0), ("uni_quant", 1024)]:
        for repeat in range(2):
            snap.restore(verify=True)
            damage.apply(model, group, method, level, seed=3, repeat=repeat)
    snap.restore(verify=True)
    assert_model_equal(model, clean)


def test_snapshot_holds_clean_copy_on_cpu_in_param_dtype() -> None:
    """The snapshot keeps a separate CPU copy in the parameter's dtype, sized like the group."""
    model, group = tiny_llama(torch.bfloat16)
    snap = Snapshot(model, group.names)
    assert snap.names == group.names
    assert all(s.device.type == "cpu" and s.dtype == torch.bfloat16 for s in snap.saved)
    assert snap.nbytes == 2 * group.numel
    assert all(s.data_ptr() != p.data_ptr() for s, p in zip(snap.saved, snap.params))


def test_restore_verify_raises_when_clean_copy_is_wrong() -> None:
    """verify=True is a real check: a corrupted clean copy makes restore raise."""
    model, group = tiny_llama()
    snap = Snapshot(model, group.names)
    snap.saved[0].view(-1)[0] += 1.0
    with pytest.raises(RuntimeError, match="fingerprint"):
        snap.restore(verify=True)


def test_fingerprint_sees_one_ulp_and_order() -> None:
    """A one-ulp change anywhere, or swapping two tensors, changes the fingerprint; equal bits give equal prints."""
    a = torch.randn(300, generator=torch.Generator().manual_seed(0))
    b = torch.randn(300, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    base = fingerprint([a, b])
    assert fingerprint([a.clone(), b.clone()]) == base
    assert fingerprint([b, a]) != base
    nudged = a.clone()
    nudged[123] = torch.nextafter(nudged[123], torch.tensor(float("inf")))
    assert fingerprint([nudged, b]) != base
    minus_zero = torch.zeros(4)
    minus_zero[0] = -0.0
    assert fingerprint([minus_zero]) != fingerprint([torch.zeros(4)])  # bits, not values


def test_fingerprint_sees_a_permutation() -> None:
    """Elements in another order (same multiset of bits), or a tensor reshaped, give another fingerprint."""
    a = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
    shuffled = a.reshape(-1)[torch.randperm(a.numel(), generator=torch.Generator().manual_seed(1))].reshape(a.shape)
    swapped = a.clone()
    swapped[[0, 1]] = a[[1, 0]]  # two rows exchanged
    assert fingerprint([shuffled]) != fingerprint([a])
    assert fingerprint([swapped]) != fingerprint([a])
    assert fingerprint([a.T.contiguous()]) != fingerprint([a])
    assert fingerprint([a.reshape(48, 64)]) != fingerprint([a])


def test_the_whole_model_fingerprint_sees_every_parameter() -> None:
    """One ulp in a parameter outside any group changes the model's fingerprint; a deep copy prints the same."""
    model, _ = tiny_llama()
    base = model_fingerprint(model)
    assert model_fingerprint(copy.deepcopy(model)) == base
    norm = model.get_parameter("model.norm.weight")
    with torch.no_grad():
        norm[0] = torch.nextafter(norm[0], torch.tensor(float("inf")))
    assert model_fingerprint(model) != base


# The integer view of each element size: the bits the legacy fingerprint adds up.
BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def exact_legacy_fingerprint(tensors: list[torch.Tensor]) -> str:
    """The legacy fingerprint's definition in exact integers, with no chunks and no int64 wrap-around on the way.

    Each tensor contributes Σb + 31·Σb² over the integer views b of its elements, tensors folded in order;
    everything modulo 2**64.
    """
    acc = 0
    for index, tensor in enumerate(tensors):
        bits = tensor.reshape(-1).view(BITS[tensor.element_size()]).tolist()
        value = sum(bits) + 31 * sum(b * b for b in bits)
        acc = (acc * 1_000_003 + value + index) % (1 << 64)
    return f"{acc:016x}"


def test_legacy_fingerprint_is_the_exact_sum_whatever_the_chunks() -> None:
    """The print older job dirs hold, still computed as they computed it, so their weights can be checked."""
    tensors = [
        torch.randn(1000, 237, generator=torch.Generator().manual_seed(2)),  # 237 000 elements: 4 CPU chunks
        torch.arange(70_001, dtype=torch.int64).remainder(256).to(torch.uint8),
        torch.randn(100_003, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16),
        torch.randn(5).to(torch.float16),
    ]
    assert legacy_fingerprint(tensors) == exact_legacy_fingerprint(tensors)
    assert legacy_fingerprint(tensors[:1]) == exact_legacy_fingerprint(tensors[:1])


# --- what apply touches -------------------------------------------------------------------


@pytest.mark.parametrize("group_name", ["attn_only", "mlp_only", "embed_only"])
def test_apply_touches_only_the_group(group_name: str) -> None:
    """Every parameter and buffer outside the group is bit-identical after apply; every one inside changed."""
    model, group = tiny_llama(group=group_name)
    clean = copy.deepcopy(model)
    damage.apply(model, group, "mult_gauss", 0.5, seed=1, repeat=0)
    state, clean_state = model.state_dict(), clean.state_dict()
    inside = set(group.names)
    if group_name == "embed_only":  # Llama ties the LM head to the embedding: one tensor, two names
        inside.add("lm_head.weight")
    changed = {k for k in state if not torch.equal(state[k], clean_state[k])}
    assert changed == inside
    assert len(inside) < len(state)  # the group is a strict part of the model


def test_apply_keeps_parameter_objects_and_ties() -> None:
    """apply writes in place: the same Parameter objects, dtype and storage; tied weights stay tied."""
    model, group = tiny_llama(torch.bfloat16)
    before = {n: (p, p.data_ptr()) for n, p in model.named_parameters()}
    damage.apply(model, group, "mult_gauss", 0.5, seed=1, repeat=0)
    for name, param in model.named_parameters():
        assert param is before[name][0] and param.data_ptr() == before[name][1]
        assert param.dtype == torch.bfloat16
    assert model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize(("method", "level"), DAMAGE, ids=[m for m, _ in DAMAGE])
def test_bfloat16_damage_is_float32_arithmetic_cast_back(method: str, level: float) -> None:
    """In bf16, each damaged weight equals the method run in float32 on the clean weight, then cast to bf16."""
    model, group = tiny_llama(torch.bfloat16)
    in_float32 = copy.deepcopy(model).float()  # the same clean values, widened exactly
    damage.apply(model, group, method, level, seed=1, repeat=0)
    damage.apply(in_float32, group, method, level, seed=1, repeat=0)
    for name in group.names:
        param = model.get_parameter(name)
        assert param.dtype == torch.bfloat16
        assert torch.equal(param, in_float32.get_parameter(name).to(torch.bfloat16)), name


def test_a_per_tensor_method_draws_from_its_parameters_own_generator() -> None:
    """Each damaged weight is the method's function on its clean values, drawing from (seed, repeat, name)."""
    model, group = tiny_llama()
    clean = snapshot_of(model, group.names)
    damage.apply(model, group, "mult_gauss", 0.5, seed=1, repeat=0)
    for name in group.names:
        generator = torch.Generator().manual_seed(param_seed(1, 0, name))
        assert torch.equal(model.get_parameter(name), METHODS["mult_gauss"].fn(clean[name], 0.5, generator=generator))


def test_snapshots_sharing_clean_copies_copy_each_parameter_once() -> None:
    """Groups of one sweep share the clean copies: overlapping groups restore bit-exact, no copy twice."""
    model, mlp = tiny_llama(group="mlp")
    everything = resolve_group(model, group_cfg("all"))
    clean_model, shared = copy.deepcopy(model), {}
    first = Snapshot(model, mlp.names, shared)
    assert sorted(shared) == sorted(mlp.names)
    held = {n: shared[n] for n in mlp.names}
    damage.apply(model, mlp, "mult_gauss", 0.5, seed=1, repeat=0)
    first.restore()
    second = Snapshot(model, everything.names, shared)  # the next job of the sweep, on the clean model
    assert sorted(shared) == sorted(everything.names)
    assert all(shared[n] is held[n] for n in mlp.names)  # the mlp copies were not taken again
    assert second.clean_fingerprint == fingerprint(params_of(clean_model, everything.names))
    damage.apply(model, everything, "ablation", 0.5, seed=1, repeat=0)
    second.restore(verify=True)
    assert_model_equal(model, clean_model)


# --- per-parameter seeding ----------------------------------------------------------------


@pytest.mark.parametrize("common_noise", [True, False], ids=["common", "fresh"])
@pytest.mark.parametrize("method", ["mult_gauss", "ablation"])
def test_cell_is_the_same_alone_or_after_other_cells(method: str, common_noise: bool) -> None:
    """Level 0.3 applied directly equals 0.3 applied after 0.1 → restore and repeat 1 → restore."""
    alone, group = tiny_llama()
    damage.apply(alone, group, method, 0.3, seed=1, repeat=0, common_noise=common_noise)

    swept, _ = tiny_llama()
    snap = Snapshot(swept, group.names)
    for level, repeat in [(0.1, 0), (0.5, 1), (0.3, 2)]:
        damage.apply(swept, group, method, level, seed=1, repeat=repeat, common_noise=common_noise)
        snap.restore()
    damage.apply(swept, group, method, 0.3, seed=1, repeat=0, common_noise=common_noise)
    for name in group.names:
        assert torch.equal(swept.get_parameter(name), alone.get_parameter(name)), name


def test_damage_of_a_parameter_does_not_depend_on_the_rest_of_the_group() -> None:
    """A v_proj gets the same noise whether it is damaged within attn_only or within all."""
    small, small_group = tiny_llama(group="attn_only")
    big, _ = tiny_llama(group="all")
    big_group = resolve_group(big, group_cfg("all"))
    damage.apply(small, small_group, "mult_gauss", 0.5, seed=1, repeat=0)
    damage.apply(big, big_group, "mult_gauss", 0.5, seed=1, repeat=0)
    for name in small_group.names:
        assert torch.equal(small.get_parameter(name), big.get_parameter(name)), name


@pytest.mark.parametrize("common_noise", [True, False], ids=["common", "fresh"])
def test_repeats_and_seeds_give_different_damage(common_noise: bool) -> None:
    """Repeats 0 and 1 (and seeds 1 and 2) damage every parameter differently."""
    results = {}
    for seed, repeat in [(1, 0), (1, 1), (2, 0)]:
        model, group = tiny_llama()
        damage.apply(model, group, "mult_gauss", 0.5, seed=seed, repeat=repeat, common_noise=common_noise)
        results[seed, repeat] = snapshot_of(model, group.names)
    for name in group.names:
        assert not torch.equal(results[1, 0][name], results[1, 1][name]), name
        assert not torch.equal(results[1, 0][name], results[2, 0][name]), name


def noise_direction(common_noise: bool, level: float, method: str = "mult_gauss") -> torch.Tensor:
    """The flattened change W′ − W over the group ``all`` at ``level`` (seed 1, repeat 0)."""
    model, group = tiny_llama()
    clean = torch.cat([p.detach().flatten().clone() for p in params_of(model, group.names)])
    damage.apply(model, group, method, level, seed=1, repeat=0, common_noise=common_noise)
    return torch.cat([p.detach().flatten() for p in params_of(model, group.names)]) - clean


def test_common_noise_scales_one_direction() -> None:
    """common_noise=True: the change at σ = 0.2 is exactly twice the change at σ = 0.1."""
    d1, d2 = noise_direction(True, 0.1), noise_direction(True, 0.2)
    assert torch.allclose(d2, 2 * d1, rtol=1e-4, atol=1e-7)


def test_fresh_noise_differs_in_direction_but_is_reproducible() -> None:
    """common_noise=False: the changes at σ = 0.1 and 0.2 are near-orthogonal, yet each level repeats exactly."""
    d1, d2 = noise_direction(False, 0.1), noise_direction(False, 0.2)
    cosine = torch.nn.functional.cosine_similarity(d1, d2, dim=0).item()
    assert abs(cosine) < 0.05, cosine
    assert torch.equal(noise_direction(False, 0.2), d2)


def test_fresh_noise_ablation_masks_are_not_nested() -> None:
    """common_noise=False draws a new mask per level; common_noise=True nests them."""

    def zeros(common: bool, p: float) -> torch.Tensor:
        model, group = tiny_llama(group="mlp_only")
        damage.apply(model, group, "ablation", p, seed=1, repeat=0, common_noise=common)
        return torch.cat([p_.detach().flatten() == 0 for p_ in params_of(model, group.names)])

    assert not (zeros(True, 0.2) & ~zeros(True, 0.5)).any()
    # Independent masks: a weight is zero at p = 0.2 and kept at p = 0.5 with probability 0.2 × 0.5 = 0.1.
    fresh = zeros(False, 0.2) & ~zeros(False, 0.5)
    assert fresh.double().mean().item() == pytest.approx(0.1, abs=5 * (0.1 * 0.9 / fresh.numel()) ** 0.5)


def test_param_seed_separates_names_repeats_seeds_and_levels() -> None:
    """Seeds are deterministic, fit a generator, and differ whenever any part of the key differs."""
    base = param_seed(1, 0, "model.layers.0.self_attn.v_proj.weight")
    assert base == param_seed(1, 0, "model.layers.0.self_attn.v_proj.weight")
    variants = [
        param_seed(1, 0, "model.layers.1.self_attn.v_proj.weight"),
        param_seed(1, 0, "model.layers.0.self_attn.k_proj.weight"),
        param_seed(1, 1, "model.layers.0.self_attn.v_proj.weight"),
        param_seed(2, 0, "model.layers.0.self_attn.v_proj.weight"),
        param_seed(1, 0, "model.layers.0.self_attn.v_proj.weight", 0.1),
        param_seed(1, 0, "model.layers.0.self_attn.v_proj.weight", 0.2),
    ]
    assert len({base, *variants}) == 1 + len(variants)
    assert param_seed(1, 0, "w", 4) == param_seed(1, 0, "w", 4.0)  # a level is a level, int or float
    assert all(0 <= s < 2**63 for s in [base, *variants])
    # Names and repeats must not run together: (1, "1x") is not (11, "x").
    assert param_seed(1, 1, "1.w") != param_seed(1, 11, ".w")
