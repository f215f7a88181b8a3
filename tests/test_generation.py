"""Prompt encoding through the chat template, batching, effective generation parameters."""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny, compose_cfg
from tokenizers.processors import TemplateProcessing
from transformers import AutoTokenizer

from degrade import generation
from degrade.generation import batches, effective_params, encode


@pytest.fixture(scope="module")
def tokenizer(embedded_dir):
    return AutoTokenizer.from_pretrained(embedded_dir)


def test_prompt_starts_with_a_single_bos_and_template_applied_once(tokenizer) -> None:
    ids = encode(tokenizer, "Tell me about a dream.")
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
    text = tokenizer.decode(ids)
    assert text.count("<|im_start|>user") == 1 and text.count("Tell me about a dream.") == 1
    assert text.endswith("<|im_start|>assistant\n")


def test_no_double_bos_when_tokenizer_adds_one_and_template_writes_one(embedded_dir) -> None:
    """Gemma's case: the template writes <bos> and the tokenizer would add another."""
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    tok.bos_token = "<|endoftext|>"
    tok._tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", tok.convert_tokens_to_ids("<|endoftext|>"))]
    )
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
        "<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
    )
    assert tok("hi").input_ids[0] == tok.bos_token_id  # the tokenizer alone does add one
    ids = encode(tok, "Describe the picture.")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_batches_split_like_the_study() -> None:
    assert [len(b) for b in batches(list(range(100)), 40)] == [40, 40, 20]
    assert [len(b) for b in batches(list(range(38)), 40)] == [38]


def test_effective_params_fill_from_model_then_library() -> None:
    model = build_tiny("llama")
    model.generation_config.top_k = 64
    model.generation_config.top_p = 0.95
    params = effective_params(model, compose_cfg("generation=sampling").generation)
    assert params == {
        "temperature": 1.0,
        "do_sample": True,
        "max_new_tokens": 350,
        "top_k": 64,
        "top_p": 0.95,
        "repetition_penalty": 1.0,
    }
    params = effective_params(model, compose_cfg("generation=sampling", "generation.top_k=10").generation)
    assert params["top_k"] == 10


def test_generate_returns_continuation_only_with_token_counts(tokenizer) -> None:
    from transformers import AutoModelForCausalLM

    from degrade.tiny import tiny_config

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config("llama", vocab=len(tokenizer))).eval()
    prompts = [encode(tokenizer, "Short."), encode(tokenizer, "A much longer prompt about a dream of the sea.")]
    params = effective_params(model, compose_cfg("generation=greedy", "generation.max_new_tokens=7").generation)
    samples = generation.generate(model, tokenizer, prompts, params, torch.device("cpu"))
    assert [s.tokens_in for s in samples] == [len(p) for p in prompts]
    assert all(1 <= s.tokens_out <= 7 for s in samples)
    assert all("<|im_start|>" not in s.text and "Short." not in s.text for s in samples)
