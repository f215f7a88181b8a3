"""The ``local`` backend: a judge model loaded in process through :func:`degrade.model.loading.load`, greedy.

Two ways to get the JSON answer (``judge.backend.json_mode``):

- ``constrained`` (the default): the backend writes the object key by key and the model chooses
  each value among those the schema allows (:mod:`degrade.judge.constrained`); every answer is
  usable, and still checked like any other.
- ``prompt``: the model writes the answer freely after the object's opening brace and first key
  (a prefill, so a small model continues a JSON object instead of writing prose), up to the
  closing brace; the prefill is part of the text that is checked and kept.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from transformers import StoppingCriteria

from degrade.config.schema import ModelConfig
from degrade.generation.text import generate
from degrade.judge import constrained
from degrade.judge.backends import Completion
from degrade.judge.config import BackendConfig
from degrade.model.loading import load
from degrade.records.contract import GenParams

log = logging.getLogger(__name__)


class LocalBackend:
    def __init__(self, cfg: BackendConfig) -> None:
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        self.loaded = load(ModelConfig(name=cfg.model, source=cfg.source, dtype=cfg.dtype), cfg.device)
        vocab = self.loaded.tokenizer.get_vocab()
        self.closing_ids = [i for t, i in vocab.items() if "}" in self.loaded.tokenizer.convert_tokens_to_string([t])]
        self.params = GenParams(
            do_sample=False,
            max_new_tokens=cfg.max_tokens,
            temperature=None,
            top_k=None,
            top_p=None,
            repetition_penalty=1.0,
        )

    def calls_in_parallel(self) -> int:
        return self.batch_size

    def complete(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        if self.cfg.json_mode == "constrained":
            return self.constrained(conversations, schema)
        return self.free(conversations, schema)

    def constrained(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        """The JSON object written for the model, each value its highest-scoring allowed one."""
        prompts = [self.encode(messages) for messages in conversations]
        steps = constrained.plan(schema, self.loaded.tokenizer)
        answers = constrained.answer(self.loaded.model, prompts, steps, self.loaded.device)
        return [Completion(text, len(p), n) for (text, n), p in zip(answers, prompts)]

    def free(self, conversations: list[list[dict[str, str]]], schema: dict[str, Any]) -> list[Completion]:
        """The model's own text after the prefill ``{"<first key>":``, stopped at its closing brace."""
        prefill = "{" + json.dumps(next(iter(schema["properties"]))) + ":"
        tokenizer = self.loaded.tokenizer
        prompts = [
            self.encode(messages) + tokenizer.encode(prefill, add_special_tokens=False) for messages in conversations
        ]
        closed = ObjectClosed(self.closing_ids)
        samples = generate(self.loaded.model, tokenizer, prompts, self.params, self.loaded.device, progress=closed)
        return [Completion(prefill + s.text, s.tokens_in, s.tokens_out) for s in samples]

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """Token ids of the conversation through the model's chat template, ready for the assistant's turn."""
        tokenizer = self.loaded.tokenizer
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
            return list(ids)
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant: "
        return list(tokenizer(text).input_ids)

    def count_tokens(self, text: str) -> int:
        return len(self.loaded.tokenizer.encode(text, add_special_tokens=False))


class ObjectClosed(StoppingCriteria):
    """Stops a row once it writes a closing brace: the flat JSON object is complete, the rest would be waste."""

    def __init__(self, closing_ids: list[int]) -> None:
        self.closing = torch.tensor(closing_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.isin(input_ids[:, -1], self.closing.to(input_ids.device))
