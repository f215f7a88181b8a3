"""Constrained answers for the ``local`` backend: the JSON object is written for the model, it picks each value.

The object is written key by key in the rubric's order, ``{"<field>": <value>, …}``; for each field
the model chooses only the value, among those the schema allows, by its own scores (greedy: the
highest). The values a field allows:

- ``integer``: every integer from ``minimum`` to ``maximum``;
- ``boolean``: ``true`` and ``false``;
- ``string`` with ``enum`` (a ``choice`` field): its choices;
- ``number`` (a ``float`` field): the :data:`FLOAT_STEPS` + 1 evenly spaced values from ``minimum``
  to ``maximum`` (0, 0.1, … 1 on a 0–1 range), rounded to 6 decimals.

A value's score is the sum of the log-probabilities of its tokens after the text written so far.
Where one value's tokens begin another's (``1`` and ``10``), the following ``,`` or ``}`` is
scored with each value, so ``1`` is scored as a number that ends there. Tokens every value starts
with (the space after the colon) are written for the model, like the keys.

One forward pass per field scores every value of every conversation of the batch at once: the
key's tokens, then every value's tokens side by side, each value attending to the conversation and
to its own earlier tokens only (a tree-shaped attention mask); the values' tokens are dropped from
the KV cache afterwards, and the chosen one is fed with the next key. The scores are exact for
models whose layers see the whole context (Llama, Qwen2, SmolLM2, GPT-2); a model with
sliding-window layers (Gemma 3) is refused in one line once a conversation outgrows the window.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from degrade.errors import ConfigError

FLOAT_STEPS = 10  # a float field's values: its range cut into this many equal steps


@dataclass(frozen=True)
class Step:
    """One field: the tokens written before its value, and the values it allows with their tokens."""

    name: str
    lead: list[int]  # the key (and the delimiter before it) plus the tokens every value starts with
    values: list[Any]
    tails: list[list[int]]  # each value's remaining tokens; the model scores these


def allowed_values(prop: dict[str, Any]) -> list[Any]:
    """The values a JSON-schema property of a rubric allows, in the order they are offered."""
    kind = prop["type"]
    if kind == "boolean":
        return [True, False]
    if kind == "string":
        return list(prop["enum"])
    lo, hi = prop["minimum"], prop["maximum"]
    if kind == "integer":
        return list(range(math.ceil(lo), math.floor(hi) + 1))
    return [round(lo + (hi - lo) * k / FLOAT_STEPS, 6) for k in range(FLOAT_STEPS + 1)]


def plan(schema: dict[str, Any], tokenizer: Any) -> list[Step]:
    """The steps that write one answer to ``schema``, tokenized once for every conversation."""

    def ids(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    props = list(schema["properties"].items())
    steps, delimiter_written = [], False
    for index, (name, prop) in enumerate(props):
        opening = "{" if index == 0 else ("" if delimiter_written else ",")
        values = allowed_values(prop)
        texts = [" " + json.dumps(v) for v in values]
        tokens = [ids(t) for t in texts]
        delimiter_written = not _prefix_free(tokens)
        if delimiter_written:  # "1" begins "10": score the value with what ends it
            end = "," if index < len(props) - 1 else "}"
            tokens = [ids(t + end) for t in texts]
        common = _common_prefix(tokens) if len(tokens) > 1 else tokens[0]
        lead = ids(f"{opening}{' ' if index else ''}{json.dumps(name)}:") + common
        steps.append(Step(name, lead, values, [t[len(common) :] for t in tokens]))
    return steps


def _prefix_free(tokens: list[list[int]]) -> bool:
    seqs = [tuple(t) for t in tokens]
    return not any(a != b and b[: len(a)] == a for a in seqs for b in seqs)


def _common_prefix(tokens: list[list[int]]) -> list[int]:
    n = 0
    while all(len(t) > n for t in tokens) and len({t[n] for t in tokens}) == 1:
        n += 1
    return tokens[0][:n]


@torch.inference_mode()
def answer(model: Any, prompts: list[list[int]], steps: list[Step], device: torch.device) -> list[tuple[str, int]]:
    """Each prompt's answer to the steps' schema as JSON text, with the number of tokens written after the prompt.

    Raises:
        ConfigError: the model has sliding-window layers and a conversation would outgrow their window.
    """
    window = sliding_window(model)
    longest = max(len(p) for p in prompts) + sum(len(s.lead) + max(len(t) for t in s.tails) for s in steps)
    if window is not None and longest > window:
        raise ConfigError(
            "judge.backend.json_mode",
            f"constrained needs layers that see the whole conversation; this judge model's sliding-window layers "
            f"see {window} tokens and a conversation holds up to {longest}: use judge.backend.json_mode=prompt",
        )
    batch = Batch(model, prompts, device)
    chosen: list[dict[str, Any]] = [{} for _ in prompts]
    for step in steps:
        for row, pick in enumerate(batch.choose(step)):
            chosen[row][step.name] = step.values[pick]
    return [(json.dumps(values), batch.written[row]) for row, values in enumerate(chosen)]


def sliding_window(model: Any) -> int | None:
    """The window of the model's sliding-window attention layers, or None when every layer sees the whole context."""
    cfg = model.config.get_text_config()
    window, types = getattr(cfg, "sliding_window", None), getattr(cfg, "layer_types", None)
    if not window or getattr(cfg, "use_sliding_window", True) is False:
        return None
    if types is not None and "sliding_attention" not in types:
        return None
    return int(window)


class Batch:
    """The conversations of a batch decoded side by side over one KV cache.

    The cache holds, for each row, its prompt and what was written so far, with padding between
    pieces where rows differ in length; ``seen`` marks the real positions, ``pos`` is each row's
    next position id, ``pending`` the tokens chosen but not yet fed.
    """

    def __init__(self, model: Any, prompts: list[list[int]], device: torch.device) -> None:
        self.model, self.device = model, device
        self.dtype = next(model.parameters()).dtype
        self.cache: Any = None
        # Transformers 5 calls the KV cache `cache`; 4.x called it `past_key_values`.
        self.cache_key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self.seen = torch.zeros((len(prompts), 0), dtype=torch.bool, device=device)
        self.pos = torch.zeros(len(prompts), dtype=torch.long, device=device)
        self.pending = [list(p) for p in prompts]
        self.written = [0] * len(prompts)  # tokens written after the prompt
        self.last_scores = torch.zeros((len(prompts), 0))

    def choose(self, step: Step) -> list[int]:
        """Feed each row's pending tokens and the step's lead; return the index of the value each row scores highest."""
        rows = len(self.pending)
        if len(step.values) == 1:  # nothing to choose: written like the key
            for row in range(rows):
                self.push(row, step.lead + step.tails[0])
            return [0] * rows
        width = max(len(p) for p in self.pending)
        lead = torch.tensor(step.lead, dtype=torch.long, device=self.device)
        # Every value's tokens but its last (the last is only scored), side by side after the lead.
        inputs = [t[:-1] for t in step.tails]
        owner = [j for j, t in enumerate(inputs) for _ in t]
        depth = [d for t in inputs for d in range(len(t))]
        flat = [tok for t in inputs for tok in t]
        head = width + len(step.lead)
        length = head + len(flat)

        ids = torch.zeros((rows, length), dtype=torch.long, device=self.device)
        real = torch.zeros((rows, length), dtype=torch.bool, device=self.device)
        pos = torch.zeros((rows, length), dtype=torch.long, device=self.device)
        for row, pend in enumerate(self.pending):
            n = len(pend)
            ids[row, :n] = torch.tensor(pend, dtype=torch.long)
            real[row, :n] = True
            pos[row, :n] = self.pos[row] + torch.arange(n, device=self.device)
            pos[row, n:width] = self.pos[row] + n
        base = self.pos + torch.tensor([len(p) for p in self.pending], device=self.device)
        ids[:, width:head] = lead
        real[:, width:] = True
        pos[:, width:head] = base[:, None] + torch.arange(len(step.lead), device=self.device)
        if flat:
            ids[:, head:] = torch.tensor(flat, dtype=torch.long, device=self.device)
            pos[:, head:] = base[:, None] + len(step.lead) + torch.tensor(depth, device=self.device)

        mask = self.mask(real, head, owner)
        keep = torch.arange(head - 1, length, device=self.device)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=keep,
            **{self.cache_key: self.cache},
        )
        self.cache = out[self.cache_key]
        if flat:
            self.cache.crop(-len(flat))  # the values' tokens leave the cache; the chosen one is fed next
        self.seen = torch.cat([self.seen, real[:, :head]], dim=1)
        self.pos = base + len(step.lead)
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        self.last_scores = self.scores(logp, step.tails)  # (rows, values), kept for inspection
        picks = self.last_scores.argmax(dim=1).tolist()
        for row, pick in enumerate(picks):
            self.pending[row] = list(step.tails[pick])
            self.written[row] += len(step.lead) + len(step.tails[pick])
        return picks

    def push(self, row: int, tokens: list[int]) -> None:
        self.pending[row] = self.pending[row] + tokens
        self.written[row] += len(tokens)

    def mask(self, real: torch.Tensor, head: int, owner: list[int]) -> torch.Tensor:
        """The additive 4D mask: the past and the new tokens causally, each value's tokens blind to other values'."""
        rows, length = real.shape
        q = torch.arange(length, device=self.device)
        causal = q[None, :] <= q[:, None]
        who = torch.tensor([-1] * head + owner, device=self.device)
        # A value's token sees the shared part (who = -1) and its own value's earlier tokens only.
        tree = (who[None, :] == -1) | (who[None, :] == who[:, None])
        new = (causal & tree)[None] & real[:, None, :]
        new = new | torch.eye(length, dtype=torch.bool, device=self.device)[None]  # no row left without a key
        past = self.seen[:, None, :].expand(rows, length, self.seen.shape[1])
        allowed = torch.cat([past, new], dim=2)[:, None]
        zero = torch.zeros((), dtype=self.dtype, device=self.device)
        return torch.where(allowed, zero, torch.finfo(self.dtype).min)

    def scores(self, logp: torch.Tensor, tails: list[list[int]]) -> torch.Tensor:
        """Sum of each value's token log-probabilities: (rows, values). ``logp[:, 0]`` predicts every first token."""
        rows = logp.shape[0]
        total = torch.zeros((rows, len(tails)), device=logp.device)
        offset = 1  # logp[:, 1 + k] predicts the token after the k-th fed value token
        for j, tail in enumerate(tails):
            total[:, j] = logp[:, 0, tail[0]]
            for d in range(1, len(tail)):
                total[:, j] += logp[:, offset + d - 1, tail[d]]
            offset += len(tail) - 1
        return total
