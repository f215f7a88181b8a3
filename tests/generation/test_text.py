"""Prompt encoding through the chat template, effective generation parameters, continuations and their ends."""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny, compose_cfg
from tokenizers.processors import TemplateProcessing
from transformers import AutoModelForCausalLM, AutoTokenizer

from degrade.generation import text
from degrade.generation.text import effective_params, encode
from degrade.model.tiny import tiny_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tokenizer(embedded_dir):
    return AutoTokenizer.from_pretrained(embedded_dir)


def tiny_llama_speaking(tokenizer) -> torch.nn.Module:
    """A seeded tiny random Llama over the embedded tokenizer's vocabulary."""
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config("llama", vocab=len(tokenizer))).eval()


def test_prompt_is_the_models_chat_template_applied_once(tokenizer) -> None:
    """SmolLM2's template (its own system turn, the user turn, an open assistant turn), with no BOS added on top."""
    ids = encode(tokenizer, "Tell me about a dream.")
    assert ids[0] == tokenizer.bos_token_id and ids[1] != tokenizer.bos_token_id
    assert tokenizer.decode(ids) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nTell me about a dream.<|im_end|>\n<|im_start|>assistant\n"
    )


def test_no_double_bos_when_tokenizer_adds_one_and_template_writes_one(embedded_dir) -> None:
    """Gemma's case: the template writes <bos> and the tokenizer would add another."""
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    tok.bos_token = "<|endoftext|>"
    tok.backend_tokenizer.post_processor = TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", tok.convert_tokens_to_ids("<|endoftext|>"))]
    )
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}"
        "<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
    )
    assert tok("hi").input_ids[0] == tok.bos_token_id  # the tokenizer alone does add one
    ids = encode(tok, "Describe the picture.")
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_sampling_params_fill_from_model_then_library() -> None:
    """Unset knobs come from the model's generation config, then from the library; ours win over both."""
    model = build_tiny("llama")
    model.generation_config.top_k = 64
    model.generation_config.top_p = 0.95
    params = effective_params(model, compose_cfg("generation=sampling").generation)
    assert params.to_dict() == {
        "do_sample": True,
        "max_new_tokens": 350,
        "temperature": 1.0,
        "top_k": 64,
        "top_p": 0.95,
        "repetition_penalty": 1.0,
    }
    assert effective_params(model, compose_cfg("generation=sampling", "generation.top_k=10").generation).top_k == 10


def test_greedy_params_list_no_sampling_knobs() -> None:
    """Greedy decoding ignores temperature, top_k and top_p, so they are None, even where the model sets them."""
    model = build_tiny("llama")
    model.generation_config.temperature = 0.6
    model.generation_config.top_p = 0.9
    params = effective_params(model, compose_cfg("generation=greedy").generation)
    assert params.to_dict() == {
        "do_sample": False,
        "max_new_tokens": 80,
        "temperature": None,
        "top_k": None,
        "top_p": None,
        "repetition_penalty": 1.0,
    }


def test_generate_returns_continuation_only_with_token_counts(tokenizer) -> None:
    """A batch of prompts of different lengths: exact prompt sizes, max_new_tokens new tokens, the continuation only."""
    model = tiny_llama_speaking(tokenizer)
    prompts = [encode(tokenizer, "Short."), encode(tokenizer, "A much longer prompt about a dream of the sea.")]
    assert len(prompts[0]) < len(prompts[1])  # so the first is left-padded
    params = effective_params(model, compose_cfg("generation=greedy", "generation.max_new_tokens=7").generation)
    samples = text.generate(model, tokenizer, prompts, params, CPU)
    assert [s.tokens_in for s in samples] == [len(p) for p in prompts]
    # This seeded random model never emits <|im_end|> in 7 steps: every answer runs to the limit.
    assert [(s.tokens_out, s.finish_reason) for s in samples] == [(7, "length"), (7, "length")]
    assert all("<|im_start|>" not in s.text and "Short." not in s.text and "dream" not in s.text for s in samples)
    assert len({s.duration for s in samples}) == 1  # a record's duration is its batch's wall time


def test_generation_stops_at_the_models_end_of_turn(tokenizer) -> None:
    """With every logit equal, greedy decoding picks token 0: as an end token it ends each answer at once."""
    model = tiny_llama_speaking(tokenizer)
    with torch.no_grad():
        model.model.norm.weight.zero_()  # hidden states 0, so every logit is 0
    prompts = [encode(tokenizer, "Short."), encode(tokenizer, "Another prompt.")]
    params = effective_params(model, compose_cfg("generation=greedy", "generation.max_new_tokens=5").generation)

    running = text.generate(model, tokenizer, prompts, params, CPU)  # token 0 is not an end token yet
    assert [(s.tokens_out, s.finish_reason, s.text) for s in running] == [(5, "length", "")] * 2

    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 0]  # several end tokens, as Gemma has
    stopped = text.generate(model, tokenizer, prompts, params, CPU)
    assert [(s.tokens_out, s.finish_reason, s.text) for s in stopped] == [(1, "stop", "")] * 2
