"""What a job is about to run, said in its first lines: the method, the group, the levels, the generations left.

The levels are those the config settled on (a typed list or range over a preset's, see
:func:`degrade.config.compose.settle_levels`), so the first line of a job and of every dry run
shows what will really run, and a list that did not take effect cannot go unnoticed.
"""

from __future__ import annotations

import logging
from typing import Any

from degrade.config.schema import RunConfig
from degrade.records.store import RecordStore

log = logging.getLogger(__name__)

_SHOWN = 12  # levels listed in full; a longer sweep shows its first and last ones


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def levels_text(levels: list[float]) -> str:
    """The levels as given (``1024, 4``); a long sweep as its first ones, ``…`` and its last ones."""
    shown = [f"{v:g}" for v in levels]
    if len(shown) > _SHOWN:
        shown = [*shown[: _SHOWN - 3], "…", *shown[-2:]]
    return ", ".join(shown)


def describe(cfg: RunConfig, prompts: int) -> str:
    """``job: uni_quant (quant_attn) on param_group attn_only, 2 levels: 1024, 4; 1 repetition, 3 prompts``."""
    deg = cfg.degradation
    method = deg.method if deg.name == deg.method else f"{deg.method} ({deg.name})"
    return (
        f"job: {method} on param_group {cfg.param_group.name}, {_plural(len(deg.levels), 'level')}: "
        f"{levels_text(deg.levels)}; {_plural(cfg.experiment.n_rep, 'repetition')}, {_plural(prompts, 'prompt')}"
    )


def log_plan(cfg: RunConfig, store: RecordStore, prompts: list[Any], cells: int, missing: int) -> None:
    """The job's first lines: what runs, what is already there, how many generations are left.

    Which prompts changed since their records were written is the caller's to say.
    """
    log.info("%s", describe(cfg, len(prompts)))
    if store.records:
        log.info("resuming: %d records already in %s", len(store.records), store.journal)
    total = cells * len(prompts)
    log.info("plan: %d cells × %d prompts = %d generations, %d to run", cells, len(prompts), total, missing)
    if missing and not cfg.generation.do_sample and cfg.experiment.n_rep > 1:
        log.info(
            "greedy decoding: repetitions differ only by their damage draw, so at level 0 (the clean "
            "model) the %d repetitions are identical",
            cfg.experiment.n_rep,
        )
