"""The fidelity measure's arithmetic and its teacher-forced logits, on a tiny real model."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import build_tiny

from degrade.scoring.fidelity import answer_logits, compare


def test_kl_and_agreement_match_their_definitions() -> None:
    torch.manual_seed(0)
    clean, damaged = torch.randn(5, 11), torch.randn(5, 11)
    found = compare(clean, damaged)
    p, log_q = clean.double().softmax(-1), damaged.double().log_softmax(-1)
    expected = torch.nn.functional.kl_div(log_q, p, reduction="none").sum(-1).mean()  # KL(P_clean ‖ P_damaged)
    assert found.kl_to_clean == pytest.approx(float(expected), rel=1e-9)
    reverse = torch.nn.functional.kl_div(clean.double().log_softmax(-1), damaged.double().softmax(-1), reduction="none")
    assert found.kl_to_clean != pytest.approx(float(reverse.sum(-1).mean()), rel=1e-3)  # the direction matters
    assert found.top1_agreement == float((clean.argmax(-1) == damaged.argmax(-1)).double().mean())
    assert found.positions == 5


def test_identical_logits_give_exactly_zero_and_one() -> None:
    torch.manual_seed(1)
    logits = torch.randn(7, 49152) * 8
    found = compare(logits, logits.clone())
    assert found.kl_to_clean == 0.0 and found.top1_agreement == 1.0


def test_a_changed_top_token_lowers_agreement_by_its_share() -> None:
    clean = torch.zeros(4, 3)
    clean[:, 0] = 5.0
    damaged = clean.clone()
    damaged[2] = torch.tensor([0.0, 6.0, 0.0])  # position 2 now prefers token 1
    found = compare(clean, damaged)
    assert found.top1_agreement == 0.75 and found.kl_to_clean > 0


def test_non_finite_damaged_logits_give_no_number() -> None:
    clean = torch.zeros(2, 3)
    found = compare(clean, torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]))
    assert math.isnan(found.kl_to_clean)


def test_answer_logits_are_the_next_token_logits_of_each_answer_position() -> None:
    model = build_tiny("llama")
    prompt, answer = [1, 5, 9, 2], [7, 3, 8]
    found = answer_logits(model, prompt, answer, torch.device("cpu"))
    assert found.shape == (3, model.config.vocab_size)
    with torch.inference_mode():
        for i in range(len(answer)):  # position i is predicted from the prompt and the answer's first i tokens
            expected = model(input_ids=torch.tensor([prompt + answer[:i]])).logits[0, -1]
            torch.testing.assert_close(found[i], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_answer_logits_on_other_layouts(arch: str) -> None:
    model = build_tiny(arch)
    found = answer_logits(model, [1, 2, 3], [4, 5], torch.device("cpu"))
    with torch.inference_mode():
        full = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits[0, -2:]
    torch.testing.assert_close(found, full, rtol=1e-5, atol=1e-5)
