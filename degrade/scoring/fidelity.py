"""Fidelity to the clean model: next-token distributions on a fixed answer, teacher-forced, compared.

As llama.cpp's ``perplexity --kl-divergence`` reports for a quantised model against its base: for
every position of a reference answer, the KL divergence of the damaged model's next-token
distribution from the clean model's, KL(P_clean ‖ P_damaged), and whether the most likely token is
the same. Both models read the same tokens (the answer is forced, not generated), so the two
distributions at a position condition on the same text.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Fidelity:
    """How close one answer's next-token distributions are to the clean model's.

    Attributes:
        kl_to_clean: the mean over the answer's positions of KL(P_clean ‖ P_damaged), in nats.
        top1_agreement: the share of positions whose most likely token is the clean model's.
        positions: how many positions (the answer's tokens) the means are over.
    """

    kl_to_clean: float
    top1_agreement: float
    positions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kl_to_clean": self.kl_to_clean,
            "top1_agreement": self.top1_agreement,
            "fidelity_tokens": self.positions,
        }


@torch.inference_mode()
def answer_logits(model: Any, prompt: Sequence[int], answer: Sequence[int], device: torch.device) -> torch.Tensor:
    """The logits that predict each token of ``answer`` after ``prompt``, teacher-forced: ``(len(answer), vocab)``.

    One sequence per forward pass, unpadded: the logits of a prompt then do not depend on which other
    prompts share its batch or how much padding they bring, so a cell resumed with fewer prompts gives
    the same numbers, and the clean and damaged passes are the same computation on the same weights.
    """
    n = len(answer)
    ids = torch.tensor([list(prompt) + list(answer[:-1])], dtype=torch.long, device=device)
    # only the positions that predict the answer go through the output layer (a 49k-262k column matrix)
    keep = {"logits_to_keep": n} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    logits = model(input_ids=ids, **keep).logits[0, -n:]
    return logits.float().cpu()


def compare(clean: torch.Tensor, damaged: torch.Tensor) -> Fidelity:
    """KL(P_clean ‖ P_damaged) per position, averaged, and the top-1 agreement, from the two logit matrices.

    The softmax is taken in float64 from the float32 logits, so identical logits give exactly 0 and
    1, and a KL that rounding would push below zero is clamped to 0. A damaged distribution with a
    non-finite logit (a broken model) gives a NaN KL: no number is made up for it.
    """
    if clean.shape != damaged.shape:
        raise ValueError(f"clean logits {tuple(clean.shape)} and damaged logits {tuple(damaged.shape)} differ")
    log_p = torch.log_softmax(clean.double(), dim=-1)
    log_q = torch.log_softmax(damaged.double(), dim=-1)
    # p · (log p − log q); where p is 0 the term is 0 (exp(−inf) · anything finite), log q = −inf gives inf
    per_position = torch.where(log_p.isneginf(), 0.0, log_p.exp() * (log_p - log_q)).sum(dim=-1).clamp_min(0.0)
    same = (clean.argmax(dim=-1) == damaged.argmax(dim=-1)).double()
    return Fidelity(float(per_position.mean()), float(same.mean()), int(clean.shape[0]))
