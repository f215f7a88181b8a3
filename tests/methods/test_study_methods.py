"""Statistical properties of each degradation method, and the level sweeps they accept."""

from __future__ import annotations

import pytest
import torch

from degrade.methods import METHODS, ablation, method, mult_gauss, resolve_levels, uni_quant

SHAPE = (512, 512)
N = SHAPE[0] * SHAPE[1]


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def weight() -> torch.Tensor:
    """A float32 weight drawn from N(0, 1) with a fixed seed."""
    return torch.randn(SHAPE, generator=gen(1234))


@pytest.fixture(scope="module")
def weight_away_from_zero() -> torch.Tensor:
    """A float32 weight with |w| in [0.5, 1.5), so W′/W is well conditioned."""
    g = gen(99)
    sign = torch.where(torch.rand(SHAPE, generator=g) < 0.5, -1.0, 1.0)
    return sign * (0.5 + torch.rand(SHAPE, generator=g))


# A damaging level of each method, for the tests that need one.
DAMAGING = {"none": 0.0, "mult_gauss": 0.3, "add_gauss": 0.3, "ablation": 0.5, "uni_quant": 8.0}
# The methods that act on each tensor alone (a per-tensor ``fn``); the group-level ones are tested in
# tests/methods/test_further_methods.py.
PER_TENSOR = sorted(name for name, registered in METHODS.items() if registered.fn is not None)


def test_every_registered_method_has_a_damaging_level_here() -> None:
    """The tests below cover every per-tensor method the registry holds."""
    assert set(PER_TENSOR) == set(DAMAGING)


# --- mult_gauss ---------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.5, 1.0])
def test_mult_gauss_relative_noise_has_std_sigma_and_mean_zero(
    weight_away_from_zero: torch.Tensor, sigma: float
) -> None:
    """W′/W − 1 is ε ~ N(0, σ²): its std is σ (within 2 %) and its mean 0 (within 5 standard errors)."""
    out = mult_gauss(weight_away_from_zero, sigma, generator=gen())
    eps = (out / weight_away_from_zero - 1).double()
    assert eps.std().item() == pytest.approx(sigma, rel=0.02)
    assert abs(eps.mean().item()) < 5 * sigma / N**0.5
    # Multiplicative: the sign of a weight flips only where ε < −1, never for small σ.
    if sigma <= 0.1:
        assert torch.equal(torch.sign(out), torch.sign(weight_away_from_zero))


def test_mult_gauss_keeps_zeros_at_zero() -> None:
    """Noise is multiplicative, so an exactly-zero weight stays zero at any σ."""
    w = torch.zeros(64, 64)
    assert torch.equal(mult_gauss(w, 2.0, generator=gen()), w)


# --- ablation -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5, 0.9])
def test_ablation_zeroes_share_p_and_keeps_the_rest(weight: torch.Tensor, p: float) -> None:
    """About a share p of the weights become 0; every other weight is unchanged, bit for bit."""
    assert not (weight == 0).any()
    out = ablation(weight, p, generator=gen())
    zeros = out == 0
    share = zeros.double().mean().item()
    assert share == pytest.approx(p, abs=5 * (p * (1 - p) / N) ** 0.5)
    assert torch.equal(out[~zeros], weight[~zeros])


def test_ablation_p1_zeroes_everything(weight: torch.Tensor) -> None:
    """p = 1 leaves no weight standing."""
    out = ablation(weight, 1.0, generator=gen())
    assert torch.equal(out, torch.zeros_like(weight))


def test_ablation_p0_is_identity(weight: torch.Tensor) -> None:
    """p = 0 zeroes nothing."""
    assert torch.equal(ablation(weight, 0.0, generator=gen()), weight)


# --- uni_quant ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 4, 16, 256])
def test_uni_quant_at_most_n_values_on_a_uniform_grid(weight: torch.Tensor, n: int) -> None:
    """At most n distinct values, each on the grid of n points over [min, max], within half a step."""
    out = uni_quant(weight, n, generator=gen())
    values = torch.unique(out)
    assert len(values) <= n
    if n <= 16:  # coarse grids are fully populated; at 256 the Gaussian tails leave end levels empty
        assert len(values) == n
    lo, hi = weight.min(), weight.max()
    step = (hi - lo) / (n - 1)
    grid_index = (values - lo) / step
    assert torch.allclose(grid_index, grid_index.round(), atol=1e-3)
    assert (out - weight).abs().max().item() <= step.item() / 2 * (1 + 1e-4)
    assert torch.allclose(out.min(), lo) and torch.allclose(out.max(), hi)


def test_uni_quant_preserves_min_and_max_exactly() -> None:
    """The grid's end points are the tensor's own min and max, bit for bit ("over its own [min, max]")."""
    off = []
    for seed in range(20):
        w = torch.randn(64, 64, generator=gen(seed))
        out = uni_quant(w, 2, generator=gen())
        if not (out.min() == w.min() and out.max() == w.max()):
            off.append((seed, (out.min() - w.min()).item(), (out.max() - w.max()).item()))
    assert not off, f"(seed, Δmin, Δmax) where the quantised range is not [min, max]: {off}"


def test_uni_quant_larger_n_is_less_damage(weight: torch.Tensor) -> None:
    """Mean and max absolute error shrink strictly as n grows."""
    errors = [(uni_quant(weight, n, generator=gen()) - weight).abs() for n in (2, 4, 16, 256, 1024)]
    means = [e.mean().item() for e in errors]
    maxes = [e.max().item() for e in errors]
    assert means == sorted(means, reverse=True) and len(set(means)) == len(means)
    assert maxes == sorted(maxes, reverse=True) and len(set(maxes)) == len(maxes)


def test_uni_quant_constant_tensor_is_left_alone() -> None:
    """A tensor with min == max has no range to quantise and comes back unchanged (no NaN)."""
    w = torch.full((8, 8), 0.25)
    assert torch.equal(uni_quant(w, 4, generator=gen()), w)


# --- every method -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PER_TENSOR)
def test_level_zero_is_identity(weight: torch.Tensor, name: str) -> None:
    """Level 0 is the clean model for every registered method."""
    assert torch.equal(METHODS[name].fn(weight, 0.0, generator=gen()), weight)


@pytest.mark.parametrize("name", PER_TENSOR)
def test_methods_are_pure(name: str) -> None:
    """The input tensor is never modified in place, and the output depends only on the generator's seed."""
    w = torch.randn(128, 128, generator=gen(7))
    before = w.clone()
    fn, level = METHODS[name].fn, DAMAGING[name]
    first = fn(w, level, generator=gen(5))
    assert torch.equal(w, before)
    assert torch.equal(fn(w, level, generator=gen(5)), first)
    if name != "none":
        assert not torch.equal(first, w)  # a damaging level does damage


@pytest.mark.parametrize("name", ["mult_gauss", "ablation"])
def test_random_methods_differ_across_seeds(weight: torch.Tensor, name: str) -> None:
    """Different generator seeds give different damage."""
    fn, level = METHODS[name].fn, DAMAGING[name]
    assert not torch.equal(fn(weight, level, generator=gen(1)), fn(weight, level, generator=gen(2)))


# --- common random numbers ----------------------------------------------------------------


def test_ablation_masks_are_nested_across_levels(weight: torch.Tensor) -> None:
    """With one seed, the zeros at p = 0.2 are a subset of the zeros at p = 0.5 (and of p = 0.8)."""
    zeros = {p: ablation(weight, p, generator=gen(3)) == 0 for p in (0.2, 0.5, 0.8)}
    assert zeros[0.2].sum() < zeros[0.5].sum() < zeros[0.8].sum()
    assert not (zeros[0.2] & ~zeros[0.5]).any()
    assert not (zeros[0.5] & ~zeros[0.8]).any()


def test_mult_gauss_noise_scales_linearly_with_sigma(weight: torch.Tensor) -> None:
    """With one seed, the change at σ = 0.2 is exactly twice the change at σ = 0.1 (up to float error)."""
    d1 = mult_gauss(weight, 0.1, generator=gen(3)) - weight
    d2 = mult_gauss(weight, 0.2, generator=gen(3)) - weight
    assert torch.allclose(d2, 2 * d1, rtol=1e-4, atol=1e-6)
    # There is noise to compare: the relative change at σ = 0.1 has std 0.1 (within 2 %).
    assert (d1 / weight).double().std().item() == pytest.approx(0.1, rel=0.02)


# --- resolve_levels -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "name", "expected"),
    [
        ([0, 0.1, 0.2], "mult_gauss", [0.0, 0.1, 0.2]),
        ((0, 1), "ablation", [0.0, 1.0]),
        (0.3, "mult_gauss", [0.3]),
        ([0, 1024, 4], "uni_quant", [0.0, 1024.0, 4.0]),
        ([0], "none", [0.0]),
        ({"min": 0, "max": 1, "steps": 5}, "ablation", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ({"min": 0, "max": 0.5, "steps": 3, "spacing": "linear"}, "mult_gauss", [0.0, 0.25, 0.5]),
        ({"min": 1, "max": 0.01, "steps": 3, "spacing": "geometric"}, "mult_gauss", [1.0, 0.1, 0.01]),
        ({"min": 0.01, "max": 1, "steps": 3, "spacing": "geometric"}, "ablation", [0.01, 0.1, 1.0]),
    ],
)
def test_resolve_levels(spec: object, name: str, expected: list[float]) -> None:
    """Lists, scalars and linear/geometric ranges become the ordered list of float levels."""
    levels = resolve_levels(spec, name)
    assert levels == pytest.approx(expected)
    assert all(type(v) is float for v in levels)


def test_uni_quant_geometric_range_is_the_study_sweep() -> None:
    """{1024 → 4, 9 steps, geometric} is exactly the powers of two from fine to coarse."""
    spec = {"min": 1024, "max": 4, "steps": 9, "spacing": "geometric"}
    assert resolve_levels(spec, "uni_quant") == [1024.0, 512.0, 256.0, 128.0, 64.0, 32.0, 16.0, 8.0, 4.0]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"min": 2, "max": 8, "steps": 10}, [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
        (
            {"min": 64, "max": 2, "steps": 12, "spacing": "geometric"},
            [64.0, 47.0, 34.0, 25.0, 18.0, 13.0, 10.0, 7.0, 5.0, 4.0, 3.0, 2.0],
        ),
        (
            {"min": 16, "max": 2, "steps": 30, "spacing": "geometric"},
            [16.0, 15.0, 14.0, 13.0, 12.0, 11.0, 10.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0],
        ),
    ],
)
def test_uni_quant_range_is_rounded_unique_and_in_order(spec: dict, expected: list[float]) -> None:
    """A computed sweep of n is rounded to integers, each n kept once, in the order of the range."""
    levels = resolve_levels(spec, "uni_quant")
    assert levels == expected
    assert all(v.is_integer() for v in levels) and len(set(levels)) == len(levels)


@pytest.mark.parametrize(
    ("spec", "name", "needle"),
    [
        ([0, 1.5], "ablation", "0 ≤ p ≤ 1"),
        ([-0.1], "mult_gauss", "σ ≥ 0"),
        ([float("nan")], "mult_gauss", "σ ≥ 0"),
        ([float("inf")], "mult_gauss", "σ ≥ 0"),
        ([1], "uni_quant", "integer n ≥ 2"),
        ([3.5], "uni_quant", "integer n ≥ 2"),
        ({"min": 1024, "max": 1, "steps": 11, "spacing": "geometric"}, "uni_quant", "integer n ≥ 2"),
        ({"min": 0, "max": 2, "steps": 3}, "ablation", "0 ≤ p ≤ 1"),
        ([0.1], "none", "0 (the clean model)"),
    ],
)
def test_levels_outside_the_domain_name_the_domain(spec: object, name: str, needle: str) -> None:
    """A level outside the method's domain fails with a message naming the method and its domain."""
    with pytest.raises(ValueError) as info:
        resolve_levels(spec, name)
    message = str(info.value)
    assert needle in message and name in message


def test_out_of_domain_message_names_the_bad_levels() -> None:
    """The message lists exactly the offending levels, not the good ones."""
    with pytest.raises(ValueError, match=r"^1\.5, 2 outside the domain of ablation"):
        resolve_levels([0, 0.5, 1.5, 2], "ablation")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ([], "empty"),
        (["a"], "numbers"),
        ([True], "numbers"),
        ("0.1", "list of numbers"),
        ({"min": 0, "max": 1}, "min, max, steps"),
        ({"min": 0, "max": 1, "steps": 3, "step": 1}, "min, max, steps"),
        ({"min": 0, "max": 1, "steps": 0}, "steps must be an integer ≥ 1"),
        ({"min": 0, "max": 1, "steps": 2.5}, "steps must be an integer ≥ 1"),
        ({"min": 0, "max": 1, "steps": 3, "spacing": "log"}, "linear or geometric"),
        ({"min": 0, "max": 1, "steps": 3, "spacing": "geometric"}, "min > 0 and max > 0"),
    ],
)
def test_malformed_level_specs_say_what_is_allowed(spec: object, needle: str) -> None:
    """Empty lists, non-numbers and malformed ranges fail with a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=needle):
        resolve_levels(spec, "mult_gauss")


def test_unknown_method_lists_the_known_names() -> None:
    """An unknown method name fails with every registered name in the message."""
    with pytest.raises(KeyError) as info:
        method("gaussian")
    assert info.value.args[0] == f"unknown method 'gaussian'; allowed: {', '.join(sorted(METHODS))}"
    with pytest.raises(KeyError, match="mult_gauss"):
        resolve_levels([0.1], "gaussian")
