"""Perplexity of a reference text under the (damaged) model."""

from __future__ import annotations

import math
from typing import Any

import torch


@torch.inference_mode()
def perplexity(model: Any, tokenizer: Any, text: str, device: torch.device) -> float:
    """exp(mean next-token negative log-likelihood) of ``text``; inf when the loss overflows."""
    ids = tokenizer(text, return_tensors="pt").input_ids.to(device)
    loss = model(input_ids=ids, labels=ids).loss
    value = float(loss)
    return math.exp(value) if value < 700 else math.inf
