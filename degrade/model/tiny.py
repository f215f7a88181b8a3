"""Tiny models with random weights, built offline from Transformers configs: text LMs and a Gemma 3 VLM.

They stand in for real models in smoke runs (``model=tiny_random``, ``model=tiny_random_vlm``) and tests.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

# The shape every tiny decoder shares: grouped-query attention (4 query heads, 2 key/value heads), 2 layers.
_DECODER = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def _llama(vocab: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab,
        **_DECODER,
        tie_word_embeddings=True,
    )


def _qwen2(vocab: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab,
        **_DECODER,
    )


def _mistral(vocab: int) -> Any:
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=vocab,
        **_DECODER,
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


# Gemma 3's own names and strings, so the tiny processor behaves like the real one.
IMAGE_TOKENS = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
# Gemma 3's chat template, shortened: BOS once, then one turn per message, an image as its boi placeholder
# (the processor expands it into boi + soft tokens + eoi).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '" + IMAGE_TOKENS["boi_token"] + "' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def build_tiny_vlm(tokenizer_dir: Path, seed: int = 0) -> tuple[nn.Module, Any]:
    """A tiny random Gemma 3 with a SigLIP tower, and a real ``Gemma3Processor`` for it, built offline.

    The tokenizer in ``tokenizer_dir`` gains Gemma 3's three image tokens; the model's vocab covers them and
    its ``image_token_id`` / ``boi_token_id`` / ``eoi_token_id`` are theirs. Weights are drawn from ``seed``,
    so every build is identical.

    Args:
        tokenizer_dir: A local directory holding a tokenizer with a BOS token (the embedded SmolLM2's).
        seed: Seed of the random weights.

    Returns:
        The model (float32, eval mode) and its processor.
    """
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    # A dict of named tokens adds them to the vocab and exposes tokenizer.boi_token(_id) etc.,
    # which is what Gemma3Processor reads.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, extra_special_tokens=dict(IMAGE_TOKENS))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = tiny_config("gemma3_vlm", vocab=len(tokenizer))
    vision = config.vision_config
    config.boi_token_id, config.eoi_token_id = tokenizer.boi_token_id, tokenizer.eoi_token_id
    config.image_token_id = tokenizer.image_token_id
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    for target in (config, config.text_config):
        for key, value in ids.items():
            setattr(target, key, value)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
        # Transformers zero-initialises the vision→text projection, which would hide the image entirely.
        nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=config.initializer_range)
    model.generation_config.update(**ids)
    model.eval()
    # The PIL backend: the default Gemma3ImageProcessor needs torchvision.
    image_processor = Gemma3ImageProcessorPil(size={"height": vision.image_size, "width": vision.image_size})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=TINY_CHAT_TEMPLATE,
        image_seq_length=config.mm_tokens_per_image,
    )
    return model, processor
