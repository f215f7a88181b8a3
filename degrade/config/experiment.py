"""The ``experiment`` group's schema: the prompt set (inline, or read from a file), repetitions and extra scores.

Split from :mod:`degrade.config.schema`, which imports it back, so each stays a readable size. A
prompt set is either listed in the YAML preset (``prompts``) or read from a file
(``prompts_file``, with ``prompts_name`` where the file holds several sets), which then replaces
the preset's list; ``answers_file`` adds accepted answers by id, and ``categories`` and
``limit`` narrow what a job runs. The file is read when the config becomes typed objects, so a
bad file stops the command before any model loads.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional  # noqa: UP035 - typing.List keeps OmegaConf structured configs working

from omegaconf import MISSING

from degrade.errors import require
from degrade.methods import method
from degrade.prompts import load_prompt_set
from degrade.prompts.answers import add_answers
from degrade.prompts.lmeval import task_documents


@dataclass
class PromptConfig:
    id: str = MISSING
    text: str = MISSING
    category: Optional[str] = None
    answers: Optional[List[str]] = None  # noqa: UP006


@dataclass
class ImageConfig:
    enabled: bool = False
    path: Optional[str] = None


REFERENCE_TEXT = (
    "Every morning the baker opened the small shop on the corner before the sun came up. She lit the ovens, "
    "mixed flour, water and salt, and shaped the loaves by hand while the street was still quiet. By seven "
    "o'clock the first customers were waiting at the door, and the smell of fresh bread filled the whole block."
)


@dataclass
class PerplexityConfig:
    enabled: bool = False
    text: str = REFERENCE_TEXT  # the reference text scored once per level

    def __post_init__(self) -> None:
        require(
            not self.enabled or bool(self.text.strip()),
            "experiment.perplexity.text",
            "empty; perplexity needs a reference text",
        )


@dataclass
class FidelityConfig:
    enabled: bool = False  # each record's KL to the clean model and top-1 agreement (degrade/job/fidelity.py)
    max_new_tokens: Optional[int] = None  # the clean reference answer's length; null: generation.max_new_tokens

    def __post_init__(self) -> None:
        require(
            self.max_new_tokens is None or self.max_new_tokens >= 1,
            "experiment.fidelity.max_new_tokens",
            f"{self.max_new_tokens}; must be null (generation.max_new_tokens) or an integer ≥ 1",
        )

    def check_run(self, backend: str, method_name: str) -> None:
        """Refuse what the measure is not built for: the vLLM engine, and methods acting through forward hooks."""
        if not self.enabled:
            return
        require(
            backend != "vllm", "experiment.fidelity.enabled", "true: not built for model.backend=vllm; use transformers"
        )
        # a hook draws new noise at every forward pass: the measure would move the draws generation sees
        require(
            not method(method_name).forward_hooks,
            "experiment.fidelity.enabled",
            f"true: not built for degradation={method_name}, which draws its noise at every forward pass; "
            "pass experiment.fidelity.enabled=false",
        )


@dataclass
class ExperimentConfig:
    name: str = MISSING
    prompts: List[PromptConfig] = field(default_factory=list)  # noqa: UP006
    prompts_file: Optional[str] = None  # YAML, JSON, JSONL, CSV or the study's Python prompt module
    prompts_name: Optional[str] = None  # the set, where prompts_file holds several
    answers_file: Optional[str] = None  # accepted answers by prompt id (YAML, JSON or CSV)
    categories: Optional[List[str]] = None  # noqa: UP006 - run only the prompts of these categories
    n_rep: int = 1
    seed: Optional[int] = None  # overrides the top-level seed for this prompt set
    limit: Optional[int] = None  # run only the first N prompts (smoke runs)
    info_units: bool = False  # score Cookie Theft information units
    image: ImageConfig = field(default_factory=ImageConfig)
    perplexity: PerplexityConfig = field(default_factory=PerplexityConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    tasks: Optional[List[str]] = None  # noqa: UP006 - lm-evaluation-harness tasks, not prompts (experiment=lm_eval)
    include_path: Optional[str] = None  # a dir of lm-eval task YAML files of one's own (lm-eval's --include_path)
    num_fewshot: Optional[int] = None  # lm-eval's few-shot examples per document; null: each task's own

    def __post_init__(self) -> None:
        if self.tasks is not None:
            self._read_tasks()
        elif self.prompts_file:
            self.prompts = [
                PromptConfig(**dataclasses.asdict(p)) for p in load_prompt_set(self.prompts_file, self.prompts_name)
            ]
        else:
            require(self.prompts_name is None, "experiment.prompts_name", "needs experiment.prompts_file")
        if self.answers_file:
            self.prompts = add_answers(list(self.prompts), self.answers_file)
        require(len(self.prompts) > 0, "experiment.prompts", "empty; give at least one {id, text}, or a prompts_file")
        dupes = sorted(i for i, n in Counter(p.id for p in self.prompts).items() if n > 1)
        require(not dupes, "experiment.prompts", f"duplicate ids {dupes}; every id must be unique")
        require(self.n_rep >= 1, "experiment.n_rep", f"{self.n_rep}; must be an integer ≥ 1")
        require(
            not (self.fidelity.enabled and self.image.enabled),
            "experiment.fidelity.enabled",
            "true: not built for an experiment that shows an image; pass experiment.fidelity.enabled=false",
        )
        require(
            self.limit is None or self.limit >= 1,
            "experiment.limit",
            f"{self.limit}; must be null (all prompts) or an integer ≥ 1",
        )
        if self.categories is not None:
            found = sorted({p.category for p in self.prompts if p.category is not None})
            unknown = [c for c in self.categories if c not in found]
            require(
                bool(self.categories) and not unknown,
                "experiment.categories",
                f"{unknown or 'empty'}: no such category; the prompts' categories: {', '.join(found) or 'none'}",
            )

    @property
    def selected(self) -> list[PromptConfig]:
        """The prompts this job runs: those of ``categories`` (all when null), the first ``limit`` of them."""
        chosen = [p for p in self.prompts if self.categories is None or p.category in self.categories]
        if self.tasks is None or not self.limit:
            return chosen[: self.limit] if self.limit else chosen
        kept: list[PromptConfig] = []
        seen: dict[str | None, int] = {}
        for prompt in chosen:  # lm-eval's --limit: the first documents of each task (a task is a category)
            seen[prompt.category] = seen.get(prompt.category, 0) + 1
            if seen[prompt.category] <= self.limit:
                kept.append(prompt)
        return kept

    def _read_tasks(self) -> None:
        """Every document of ``tasks`` as a prompt; a job runs the first ``limit`` of each (lm-eval's ``--limit``)."""
        require(bool(self.tasks), "experiment.tasks", "empty; give lm-eval task names, e.g. [arc_easy]")
        require(not self.prompts_file, "experiment.prompts_file", "given with experiment.tasks; give one")
        require(not self.prompts, "experiment.prompts", "given with experiment.tasks; give one (experiment=lm_eval)")
        for key, on in (("image.enabled", self.image.enabled), ("fidelity.enabled", self.fidelity.enabled)):
            require(not on, f"experiment.{key}", "true: not built for experiment.tasks (lm-eval scores the documents)")
        fewshot = self.num_fewshot
        require(fewshot is None or fewshot >= 0, "experiment.num_fewshot", f"{fewshot}; must be null or an integer ≥ 0")
        path = self.include_path
        require(path is None or Path(path).is_dir(), "experiment.include_path", f"{path}: no such directory")
        docs = task_documents(list(self.tasks), path)
        self.prompts = [PromptConfig(**dataclasses.asdict(p)) for p in docs]
