"""``experiment.fidelity``: each cell's KL divergence from the clean model and top-1 agreement, per prompt.

The text both models read is the clean model's own answer to the prompt: its greedy continuation
of up to ``max_new_tokens`` tokens (under ``generation=greedy``, the level-0 answer). It is
generated once, with the clean weights, and kept in the job dir (:data:`REFERENCE`), so a resumed
job measures on the same tokens, and a reader sees the text each KL was measured on.

The clean logits at the answer's positions are computed right after the first restore that needs
them, and kept on disk in a temporary dir: they are ``positions × vocabulary × 4`` bytes (38 prompts
× 80 tokens × SmolLM2's 49,152 = 598 MB), too many to hold in memory for a large vocabulary or long
answers. The jobs of one process that run the same prompts on the same model (a multirun, a layer
map) share the clean answers and logits; the temporary dir holds those of one job's prompts and goes
with the process. Each cell then costs one teacher-forced forward pass per prompt with the damaged
weights, and reading the clean logits back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from degrade.config.schema import RunConfig
from degrade.generation import text
from degrade.job.prepare import Prepared, Prompt
from degrade.records.aside import keep_copies, unreadable_aside
from degrade.records.store import write_json
from degrade.scoring.fidelity import answer_logits, compare
from degrade.units import GiB

log = logging.getLogger(__name__)

REFERENCE = "fidelity_reference.json"  # the clean answers measured on, by prompt id (set aside by force_run)


class SharedClean:
    """The clean answers and logits this process holds for one loaded model, shared by the jobs of a multirun.

    A layer map runs the same prompts on the same model in every job: without this, each job would
    generate the clean answers and compute the clean logits again. Entries of prompts the current job
    does not show are dropped, so the disk holds at most one job's worth.
    """

    def __init__(self) -> None:
        self.context: tuple | None = None
        self.answers: dict[tuple, list[int]] = {}  # (prompt hash, prompt ids) -> the clean answer's ids
        self.logits: dict[tuple, Path] = {}  # (prompt ids, answer ids) -> the clean logits on disk
        self.tmp: tempfile.TemporaryDirectory | None = None
        self.files = 0  # files written, to name the next one

    def enter(self, context: tuple, shown: set[tuple]) -> None:
        """Start a job on ``context`` (model, weights, decoding) showing the prompts of ids ``shown``."""
        if context != self.context:
            self.answers, self.logits, self.context = {}, {}, context
            if self.tmp is not None:
                self.tmp.cleanup()
            self.tmp = None
        self.answers = {k: v for k, v in self.answers.items() if k[1] in shown}
        for key in [k for k in self.logits if k[0] not in shown]:
            self.logits.pop(key).unlink(missing_ok=True)
        if self.tmp is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="degrade-fidelity-")


_SHARED = SharedClean()


class FidelityPass:
    """The clean references and logits of one job, and the measure of a cell against them."""

    def __init__(self, cfg: RunConfig, prepared: Prepared, out_dir: Path, prompts: list[Prompt]) -> None:
        self.max_new_tokens = cfg.experiment.fidelity.max_new_tokens or cfg.generation.max_new_tokens
        self.batch = cfg.generation.max_batch_size
        self.loaded, self.encoded = prepared.loaded, prepared.encoded
        # the job's decoding made greedy: under generation=greedy the reference is the level-0 answer
        self.params = dataclasses.replace(
            prepared.params,
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            temperature=None,
            top_k=None,
            top_p=None,
        )
        self.path = Path(out_dir) / REFERENCE
        self.references = self._read()
        _SHARED.enter((id(self.loaded.model), self.loaded.fingerprint, self.params), {self._ids(p) for p in prompts})

    def clean(self, prompts: list[Prompt]) -> None:
        """Reference answers and clean logits of those of ``prompts`` that lack them. The weights must be clean."""
        start = time.perf_counter()
        missing = [p for p in prompts if not self._has_reference(p)]
        for prompt in missing:  # another job of this process may have made it (a layer map: every job)
            held = _SHARED.answers.get((prompt.hash, self._ids(prompt)))
            if held is not None:
                self._keep(prompt, held)
        made = [p for p in missing if not self._has_reference(p)]
        for first in range(0, len(made), self.batch):
            self._generate(made[first : first + self.batch])
        if missing:
            write_json(self.path, self._payload())
        generated = time.perf_counter()
        needed = [p for p in prompts if self._key(p) not in _SHARED.logits]
        for prompt in needed:
            _SHARED.files += 1
            path = Path(_SHARED.tmp.name) / f"{_SHARED.files}.pt"
            torch.save(self._logits(prompt), path)
            _SHARED.logits[self._key(prompt)] = path
        if made or needed:
            held = sum(p.stat().st_size for p in _SHARED.logits.values())
            log.info(
                "fidelity: %d reference answers generated in %.1f s; clean logits of %d prompts in %.1f s, "
                "%.2f GiB held on disk in %s",
                len(made),
                generated - start,
                len(needed),
                time.perf_counter() - generated,
                held / GiB,
                _SHARED.tmp.name,
            )

    def measure(self, prompts: list[Prompt]) -> dict[str, dict[str, Any]]:
        """Each prompt's KL to clean, top-1 agreement and positions under the weights the model has now."""
        return {p.id: compare(torch.load(_SHARED.logits[self._key(p)]), self._logits(p)).to_dict() for p in prompts}

    def _ids(self, prompt: Prompt) -> tuple[int, ...]:
        return tuple(self.encoded[prompt.id])

    def _key(self, prompt: Prompt) -> tuple:
        return self._ids(prompt), tuple(self.references[prompt.id]["ids"])

    def _has_reference(self, prompt: Prompt) -> bool:
        """Whether a reference answer is held for ``prompt`` as it is shown now (an edited prompt gets a new one)."""
        held = self.references.get(prompt.id)
        return isinstance(held, dict) and held.get("prompt_hash") == prompt.hash and bool(held.get("ids"))

    def _logits(self, prompt: Prompt) -> torch.Tensor:
        answer = self.references[prompt.id]["ids"]
        return answer_logits(self.loaded.model, self.encoded[prompt.id], answer, self.loaded.device)

    def _generate(self, prompts: list[Prompt]) -> None:
        """The clean model's greedy answers to ``prompts``, up to and including the first end-of-turn token."""
        loaded = self.loaded
        ids = [self.encoded[p.id] for p in prompts]
        for prompt, sample in zip(
            prompts, text.generate(loaded.model, loaded.tokenizer, ids, self.params, loaded.device)
        ):
            self._keep(prompt, list(sample.ids))
            _SHARED.answers[(prompt.hash, self._ids(prompt))] = list(sample.ids)

    def _keep(self, prompt: Prompt, answer: list[int]) -> None:
        text_ = self.loaded.tokenizer.decode(answer, skip_special_tokens=True).strip()
        self.references[prompt.id] = {"prompt_hash": prompt.hash, "ids": list(answer), "text": text_}

    def _payload(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "weights_fingerprint": self.loaded.fingerprint,
            "references": self.references,
        }

    def _read(self) -> dict[str, dict[str, Any]]:
        """The references an earlier run of this job kept, if made by the same weights and length.

        An unreadable file is moved aside (never overwritten unread); one made by other weights or another
        length (which the job's settings check refuses first) is copied aside before it is replaced.
        """
        if not self.path.is_file():
            return {}
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            made_by = (saved["max_new_tokens"], saved["weights_fingerprint"])
            references = dict(saved["references"])
        except (ValueError, KeyError, TypeError) as exc:
            aside = unreadable_aside(self.path)
            log.warning(
                "fidelity: %s is unreadable (%s), moved to %s; the references are made again", self.path, exc, aside
            )
            return {}
        if made_by != (self.max_new_tokens, self.loaded.fingerprint):
            keep_copies(self.path.parent, [self.path.name], "fidelity: references of other weights or length")
            return {}
        return references
