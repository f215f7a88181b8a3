"""How much damage a cell did to the weights, against the restore's clean copy: on tiny real models, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import build_tiny, compose_cfg

from degrade.config.schema import ParamGroupConfig
from degrade.methods import damage
from degrade.model import loading
from degrade.model.groups import resolve_group
from degrade.model.restore import Snapshot, fingerprint
from degrade.model.weight_error import measure, popcount, popcount_torch, summarize

MLP = ParamGroupConfig(name="mlp", kinds=["mlp_gate", "mlp_up", "mlp_down"])


def setup(arch: str = "llama", dtype: torch.dtype = torch.float32, group: ParamGroupConfig = MLP):
    model = build_tiny(arch, dtype)
    resolved = resolve_group(model, group)
    return model, resolved, Snapshot(model, resolved.names)


def reference(model, group, snapshot) -> tuple[float, float]:
    """‖W′ − W‖ and ‖W‖ over the group, straight from whole float64 tensors (no chunks)."""
    clean = dict(zip(snapshot.names, snapshot.saved))
    new = torch.cat([model.get_parameter(n).detach().double().reshape(-1) for n in group.names])
    old = torch.cat([clean[n].double().reshape(-1) for n in group.names])
    return float((new - old).norm()), float(old.norm())


def test_a_clean_group_is_exactly_zero_with_no_snr() -> None:
    """Level 0: error 0.0, share 0.0, no bit, and an SNR of None (infinite: JSON has no infinity)."""
    model, group, snap = setup()
    damage.apply(model, group, "mult_gauss", 0.0, seed=0, repeat=0)
    got = measure(model, group, snap)
    assert got.to_dict() == {
        "weight_rel_error": 0.0,
        "weight_snr_db": None,
        "weights_changed_share": 0.0,
        "bits_flipped": 0,
    }
    assert measure(model, group, snap, unchanged=True) == got  # what a cell whose fingerprint is clean writes


def test_zeroing_every_weight_is_a_relative_error_of_one_and_0_db() -> None:
    """W′ = 0: ‖0 − W‖/‖W‖ = 1 exactly, SNR 0 dB; every nonzero weight changed, each losing all its set bits."""
    model, group, snap = setup()
    set_bits = sum(int(popcount(model.get_parameter(n).detach().view(torch.int32))) for n in group.names)
    damage.apply(model, group, "ablation", 1.0, seed=0, repeat=0)
    got = measure(model, group, snap)
    assert got.weight_rel_error == pytest.approx(1.0, abs=1e-12)
    assert got.weight_snr_db == pytest.approx(0.0, abs=1e-9)
    nonzero = sum(int((t != 0).sum()) for t in snap.saved)
    assert got.weights_changed_share == nonzero / group.numel
    assert got.bits_flipped == set_bits


def test_hand_made_changes_give_their_counts_and_error() -> None:
    """Three weights get their lowest bit flipped, two their sign: 5 weights, 5 bits; the sign flips make the error."""
    model, group, snap = setup()
    weight = model.get_parameter(group.names[0])
    flat = weight.data.view(-1)
    a, b = float(flat[10]), float(flat[20])
    flat.view(torch.int32)[[0, 1, 2]] ^= 1
    flat[[10, 20]] *= -1
    got = measure(model, group, snap)
    assert got.weights_changed_share == 5 / group.numel and got.bits_flipped == 5
    error, norm = reference(model, group, snap)
    assert error == pytest.approx(math.sqrt((2 * a) ** 2 + (2 * b) ** 2), rel=1e-6)
    assert got.weight_rel_error == pytest.approx(error / norm, rel=1e-6)  # squares in float32, summed in float64
    assert got.weight_snr_db == pytest.approx(-20 * math.log10(error / norm), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("method", "level"), [("mult_gauss", 0.1), ("rtn", 3), ("minifloat", 4), ("uni_quant", 16)])
def test_the_measures_agree_with_whole_tensors_in_float64(method: str, level: float, dtype: torch.dtype) -> None:
    """Chunked on the device against the clean copy = the norms of the whole group in float64; mult_gauss(σ) ≈ σ."""
    model, group, snap = setup(dtype=dtype)
    damage.apply(model, group, method, level, seed=0, repeat=0)
    got = measure(model, group, snap)
    error, norm = reference(model, group, snap)
    assert got.weight_rel_error == pytest.approx(error / norm, rel=1e-6)
    assert got.weight_snr_db == pytest.approx(20 * math.log10(norm / error), rel=1e-6)
    if method == "mult_gauss":
        assert got.weight_rel_error == pytest.approx(0.1, rel=0.05)  # ‖W⊙ε‖/‖W‖ ≈ σ over many weights


def test_measuring_leaves_the_clean_copy_and_the_damage_as_they_were() -> None:
    """The measure reads the snapshot's clean copy in place: after it, restore still brings back every bit."""
    model, group, snap = setup()
    damage.apply(model, group, "rtn", 3, seed=0, repeat=0)
    damaged = fingerprint(snap.tensors)
    first = measure(model, group, snap)
    assert fingerprint(snap.clean_tensors) == snap.clean_fingerprint
    assert fingerprint(snap.tensors) == damaged and measure(model, group, snap) == first
    snap.restore(verify=True)


def test_a_difference_past_float32_is_measured_in_float64_and_a_nan_is_no_number() -> None:
    """A weight sent to −3e38 from +3e38 differs by 6e38 (past float32's 3.4e38): measured; a NaN weight: None."""
    model, group, snap = setup()
    flat = model.get_parameter(group.names[0]).data.view(-1)
    clean = float(flat[0])
    flat[0] = 3e38
    snap.saved[0].view(-1)[0] = -3e38  # the clean copy's value, for this test only
    got = measure(model, group, snap)
    norm = math.sqrt(reference(model, group, snap)[1] ** 2)
    expected = float(torch.tensor(3e38).double() * 2) / norm
    assert got.weight_rel_error == pytest.approx(expected, rel=1e-6) and math.isfinite(got.weight_snr_db)
    snap.saved[0].view(-1)[0] = clean
    flat[0] = float("nan")
    got = measure(model, group, snap)
    assert got.weight_rel_error is None and got.weight_snr_db is None
    assert got.weights_changed_share == 1 / group.numel


def test_a_slice_is_measured_over_its_own_rows() -> None:
    """attn_only on GPT-2 takes the V columns of c_attn: zeroing them is an error of exactly 1 over the group."""
    model, group, snap = setup("gpt2", group=compose_cfg("param_group=attn_only").param_group)
    assert all(t.part is not None for t in group.targets)
    damage.apply(model, group, "ablation", 1.0, seed=0, repeat=0)
    got = measure(model, group, snap)
    assert got.weight_rel_error == pytest.approx(1.0, abs=1e-12)  # the q and k columns, untouched, do not dilute it
    nonzero = sum(int((t.index_select(1, t_.part.index()) != 0).sum()) for t, t_ in zip(snap.saved, group.targets))
    assert got.weights_changed_share == nonzero / group.numel


def test_4bit_weights_are_compared_de_quantized_with_no_bit_count(embedded_dir) -> None:
    """nf4 weights: the error of the values the layers compute with; their packed codes are no floats to count."""
    cfg = compose_cfg("model=tiny_random", "model.load_4bit=true", "param_group=mlp", "model.name=tiny-4bit-error")
    model = loading.load(cfg.model, "cpu").model
    group = resolve_group(model, cfg.param_group)
    snap = Snapshot(model, group.names)
    assert measure(model, group, snap).to_dict() == {
        "weight_rel_error": 0.0,
        "weight_snr_db": None,
        "weights_changed_share": 0.0,
        "bits_flipped": None,
    }
    assert measure(model, group, snap, unchanged=True) == measure(model, group, snap)
    damage.apply(model, group, "mult_gauss", 0.3, seed=0, repeat=0)
    got = measure(model, group, snap)
    assert 0.05 < got.weight_rel_error < 1 and got.bits_flipped is None and got.weights_changed_share > 0.5
    snap.restore(verify=True)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
def test_popcount_counts_every_bit_pattern_negative_ones_included(dtype: torch.dtype) -> None:
    """On the CPU (NumPy) and in torch's own arithmetic (the path of a GPU): Python's count of each pattern."""
    info = torch.iinfo(dtype)
    values = torch.randint(info.min, info.max, (4000,), dtype=dtype, generator=torch.Generator().manual_seed(1))
    values[:3] = torch.tensor([info.min, -1 if info.min < 0 else info.max, 0], dtype=dtype)
    width = 8 * values.element_size()
    expected = sum(bin(v & ((1 << width) - 1)).count("1") for v in values.tolist())
    assert int(popcount(values)) == expected
    assert int(popcount_torch(values)) == expected


def test_the_summary_of_sums() -> None:
    """rel = sqrt(error/norm); SNR = 10·log10(norm/error); a zero error is 0 with no SNR; a NaN is None."""
    got = summarize(1.0, 100.0, 3, 10, 7)
    assert got.weight_rel_error == 0.1 and got.weight_snr_db == pytest.approx(20.0) and got.weights_changed_share == 0.3
    assert summarize(0.0, 100.0, 0, 10, 0).weight_snr_db is None
    assert summarize(float("nan"), 100.0, 1, 10, 3).weight_rel_error is None
