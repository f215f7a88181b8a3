"""What a job is about to run, said in its first line: the method, the group, the levels, the repetitions, the prompts.

The levels are those the config settled on (a typed list or range over a preset's, see
:func:`degrade.config.compose.settle_levels`), so the first line of a job and of every dry run
shows what will really run, and a list that did not take effect cannot go unnoticed.
"""

from __future__ import annotations

from degrade.config.schema import RunConfig

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
