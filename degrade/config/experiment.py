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
from dataclasses import dataclass, field
from typing import List, Optional  # noqa: UP035 - typing.List keeps OmegaConf structured configs working

from omegaconf import MISSING

from degrade.errors import require
from degrade.prompts import load_prompt_set
from degrade.prompts.answers import add_answers


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

    def __post_init__(self) -> None:
        if self.prompts_file:
            self.prompts = [
                PromptConfig(**dataclasses.asdict(p)) for p in load_prompt_set(self.prompts_file, self.prompts_name)
            ]
        else:
            require(self.prompts_name is None, "experiment.prompts_name", "needs experiment.prompts_file")
        if self.answers_file:
            self.prompts = add_answers(list(self.prompts), self.answers_file)
        require(len(self.prompts) > 0, "experiment.prompts", "empty; give at least one {id, text}, or a prompts_file")
        ids = [p.id for p in self.prompts]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        require(not dupes, "experiment.prompts", f"duplicate ids {dupes}; every id must be unique")
        require(self.n_rep >= 1, "experiment.n_rep", f"{self.n_rep}; must be an integer ≥ 1")
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
        return chosen[: self.limit] if self.limit else chosen
