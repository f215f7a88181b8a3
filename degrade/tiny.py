"""Tiny models with random weights, built offline from Transformers configs (smoke tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn


def _llama(vocab: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )


def _qwen2(vocab: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )


def _mistral(vocab: int) -> Any:
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )


def _gpt2(vocab: int) -> Any:
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=512)


def _gemma3(vocab: int) -> Any:
    from transformers import Gemma3TextConfig

    return Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=64,
    )


def _gemma3_vlm(vocab: int) -> Any:
    from transformers import Gemma3Config, SiglipVisionConfig

    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=56,
        patch_size=14,
        vision_use_head=False,
    )  # as in Gemma 3
    return Gemma3Config(text_config=_gemma3(vocab).to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)


CONFIGS: dict[str, Callable[[int], Any]] = {
    "llama": _llama,
    "qwen2": _qwen2,
    "mistral": _mistral,
    "gpt2": _gpt2,
    "gemma3": _gemma3,
}
VLM_CONFIGS: dict[str, Callable[[int], Any]] = {"gemma3_vlm": _gemma3_vlm}
RANDOM_ARCHS = tuple(CONFIGS) + tuple(VLM_CONFIGS)


def tiny_config(arch: str, vocab: int = 512) -> Any:
    """A Transformers config of ``arch`` with tiny dimensions."""
    return {**CONFIGS, **VLM_CONFIGS}[arch](vocab)


def build_random_model(arch: str, *, tokenizer_dir: Path, seed: int = 0) -> tuple[nn.Module, Any]:
    """A tiny random causal LM of ``arch`` that speaks the tokenizer in ``tokenizer_dir``.

    The weights are drawn from ``seed``, so every build of the same arch is identical.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = tiny_config(arch, vocab=len(tokenizer))
    config.bos_token_id, config.eos_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model, tokenizer
