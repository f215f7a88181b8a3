"""What a job runs: its first lines (the method, the group, the levels, the generations left) and its records' facts.

The levels are those the config settled on (a typed list or range over a preset's, see
:func:`degrade.config.compose.settle_levels`), so the first line of a job and of every dry run
shows what will really run, and a list that did not take effect cannot go unnoticed.
"""

from __future__ import annotations

import logging
from typing import Any

from degrade.config.schema import RunConfig
from degrade.errors import ConfigError
from degrade.job.prepare import Prepared
from degrade.records.contract import JobFacts
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


def job_fields(cfg: RunConfig) -> dict[str, str]:
    """The key fields every record of the job shares (see :data:`degrade.records.contract.KEY_FIELDS`)."""
    return {
        "experiment": cfg.experiment.name,
        "model_name": cfg.model.name,
        "degradation_method": cfg.degradation.method,
        "param_group_name": cfg.param_group.name,
    }


def job_facts(cfg: RunConfig, prepared: Prepared, settings_hash: str, image_filename: str | None) -> JobFacts:
    """What every record of the job says of how it ran."""
    c, loaded = cfg, prepared.loaded
    return JobFacts(
        experiment=c.experiment.name,
        model_name=c.model.name,
        method=c.degradation.method,
        param_group_name=c.param_group.name,
        config_name=f"{c.experiment.name}/{c.degradation.name}/{c.param_group.name}",
        name_suffix=c.name_suffix,
        seed_base=c.seed_base,
        load_4bit=c.model.load_4bit,
        device=str(prepared.device),
        dtype=str(loaded.dtype).removeprefix("torch."),
        backend=loaded.backend,
        restore_strategy=c.restore_strategy,
        gen=prepared.params,
        settings_hash=settings_hash,
        image_filename=image_filename,
    )


def context_of(model: Any) -> int | None:
    """How many positions the model's own config says it takes (its text model's, for a multimodal one)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    found = [getattr(config, k, None) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")]
    return next((int(v) for v in found if isinstance(v, int) and v > 0), None)


def check_context(cfg: RunConfig, prepared: Prepared) -> None:
    """Refuse a generation longer than the model can take: the longest prompt and ``max_new_tokens`` together.

    The limit is the model's context, or ``model.max_seq_length`` when that is smaller (it caps every
    backend, Transformers too); an image's tokens count for a multimodal model. Checked once the model
    is loaded and before anything is written.

    Raises:
        ConfigError: naming ``generation.max_new_tokens`` and the most it may be.
    """
    model = prepared.loaded.model
    context = context_of(model)
    limit = min(context, cfg.model.max_seq_length) if context else cfg.model.max_seq_length
    image = int(getattr(model.config, "mm_tokens_per_image", 0) or 0) if cfg.experiment.image.enabled else 0
    longest = max((len(ids) for ids in prepared.encoded.values()), default=0) + image
    new = cfg.generation.max_new_tokens
    if longest + new > limit:
        which = f"model.max_seq_length={limit}" if limit == cfg.model.max_seq_length else f"its context, {limit}"
        raise ConfigError(
            "generation.max_new_tokens",
            f"{new}: with the longest prompt's {longest} tokens that is {longest + new} positions, and model "
            f"{cfg.model.name} takes {which}; give at most {max(limit - longest, 0)}",
        )
