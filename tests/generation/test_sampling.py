"""The per-prompt sampler draws from the distribution Transformers' sampling draws from, row by row."""

from __future__ import annotations

import pytest
import torch

from degrade.generation.sampling import PerPromptSampler, prompt_seed
from degrade.records.contract import GenParams

CPU = torch.device("cpu")
LOGITS = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0])
DRAWS = 20_000


def params(**knobs) -> GenParams:
    values = {"temperature": 1.0, "top_k": None, "top_p": 1.0, **knobs}
    return GenParams(do_sample=True, max_new_tokens=1, repetition_penalty=1.0, **values)


def frequencies(knobs: dict) -> torch.Tensor:
    """How often each token wins over ``DRAWS`` rows of the same logits, each row with its own seed."""
    sampler = PerPromptSampler(params(**knobs), [prompt_seed(7, str(i)) for i in range(DRAWS)], CPU)
    chosen = sampler(torch.zeros((DRAWS, 1), dtype=torch.long), LOGITS.repeat(DRAWS, 1)).argmax(dim=1)
    return torch.bincount(chosen, minlength=len(LOGITS)).double() / DRAWS


@pytest.mark.parametrize(
    ("knobs", "expected"),
    [
        ({}, torch.softmax(LOGITS, 0)),
        ({"temperature": 0.5}, torch.softmax(LOGITS / 0.5, 0)),
        ({"top_k": 2}, torch.softmax(LOGITS[:2], 0).tolist() + [0, 0, 0]),
        # top-p 0.8 keeps the smallest head whose mass reaches 0.8: the first two tokens (0.64 + 0.24)
        ({"top_p": 0.8}, torch.softmax(LOGITS[:2], 0).tolist() + [0, 0, 0]),
    ],
    ids=["plain", "temperature", "top_k", "top_p"],
)
def test_the_draws_follow_the_warped_softmax(knobs: dict, expected) -> None:
    expected = torch.as_tensor(expected, dtype=torch.float64)
    seen = frequencies(knobs)
    # binomial standard error at 20,000 draws is at most 0.0035: five of them
    assert torch.allclose(seen, expected, atol=0.018), (seen, expected)
    assert (seen[expected == 0] == 0).all()  # a filtered token is never drawn


def test_each_row_draws_from_its_own_seed_whatever_its_company() -> None:
    seeds = [prompt_seed(3, name) for name in ("a", "b", "c")]
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    ids = torch.zeros((3, 1), dtype=torch.long)
    together = PerPromptSampler(params(), seeds, CPU)(ids, logits.clone()).argmax(dim=1)
    alone = [
        PerPromptSampler(params(), [s], CPU)(ids[:1], logits[i : i + 1].clone()).argmax().item()
        for i, s in enumerate(seeds)
    ]
    assert together.tolist() == alone


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_logits_with_no_distribution_fail_the_step(bad: float) -> None:
    logits = LOGITS.clone().unsqueeze(0)
    logits[0, 2] = bad
    with pytest.raises(RuntimeError, match="inf"):
        PerPromptSampler(params(), [1], CPU)(torch.zeros((1, 1), dtype=torch.long), logits)


def test_the_level_enters_a_prompts_seed_only_when_given() -> None:
    assert prompt_seed(5, "p1") == prompt_seed(5, "p1", None)
    assert len({prompt_seed(5, "p1"), prompt_seed(5, "p1", 0.0), prompt_seed(5, "p1", 0.1), prompt_seed(6, "p1")}) == 4
    assert 0 <= prompt_seed(5, "p1") < 2**31
