"""What shapes a record: the settings a job dir belongs to, their hash, and what changed between two runs.

A job dir holds the records of one configuration. Resuming is only right when every setting that
shapes a record is unchanged: the model and its weights, the method, the parameter group, the
decoding, the seed. Levels, repetitions and prompts are not among them: a level or repetition
added to a configuration is what resume is for, and prompts are keyed one by one (an edited or
added prompt simply runs). Neither are the launcher, the device, the batch size or the log level.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from degrade.config.schema import RunConfig
from degrade.errors import DegradeError
from degrade.records.store import METADATA

log = logging.getLogger(__name__)


def record_settings(cfg: RunConfig) -> dict[str, Any]:
    """The settings that shape a record, flat (``generation.max_new_tokens``: 80, …)."""
    model, exp, deg, group, gen = cfg.model, cfg.experiment, cfg.degradation, cfg.param_group, cfg.generation
    return {
        "model.name": model.name,
        "model.source": model.source,
        "model.random_arch": model.random_arch,
        "model.dtype": model.dtype,
        "model.load_4bit": model.load_4bit,
        "model.max_seq_length": model.max_seq_length,
        "experiment.name": exp.name,
        "experiment.image.enabled": exp.image.enabled,
        "experiment.info_units": exp.info_units,
        "experiment.perplexity.enabled": exp.perplexity.enabled,
        "experiment.perplexity.text": exp.perplexity.text if exp.perplexity.enabled else None,
        "seed": cfg.seed_base,
        "degradation.method": deg.method,
        "degradation.common_noise": deg.common_noise,
        "degradation.options": dict(deg.options),
        "param_group.name": group.name,
        "param_group.kinds": list(group.kinds),
        "param_group.tower": group.tower,
        "param_group.layers": list(group.layers) if group.layers is not None else None,
        "param_group.exclude": list(group.exclude),
        "generation.max_new_tokens": gen.max_new_tokens,
        "generation.do_sample": gen.do_sample,
        "generation.temperature": gen.temperature,
        "generation.top_k": gen.top_k,
        "generation.top_p": gen.top_p,
        "generation.repetition_penalty": gen.repetition_penalty,
        "name_suffix": cfg.name_suffix,
        "restore_strategy": cfg.restore_strategy,
        # another engine samples and rounds differently: its records are a configuration of their own (keyed only
        # for vllm, so the job dirs of the other backends keep their hash)
        **({"model.backend": "vllm"} if model.backend == "vllm" else {}),
    }


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each setting that differs, as ``key: old → new`` (a key only one side has shows as ``—``)."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {_show(old.get(k, '—'))} → {_show(new.get(k, '—'))}" for k in keys if old.get(k) != new.get(k)]


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def read_previous(out_dir: Path) -> dict[str, Any]:
    """The metadata an earlier run left in ``out_dir`` (empty when there is none, or it cannot be read)."""
    path = out_dir / METADATA
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        log.warning("%s is unreadable: the settings of the earlier run cannot be compared", path)
        return {}


def refuse_other_settings(out_dir: Path, previous: dict[str, Any], settings: dict[str, Any]) -> None:
    """Refuse a dir whose records came from other settings.

    Raises:
        DegradeError: naming each change and the two ways on.
    """
    changed = changes(previous["settings"], settings) if "settings" in previous else []
    if changed:
        raise DegradeError(
            f"{out_dir} holds records of other settings ({'; '.join(changed)}): nothing was changed; "
            "pass force_run=true to recompute (the old files are kept aside), or another hydra.run.dir"
        )


def refuse_other_weights(out_dir: Path, previous: dict[str, Any], fingerprint: str) -> None:
    """Refuse a dir whose records came from other clean weights under the same settings (a re-written model dir).

    Raises:
        DegradeError: naming both fingerprints.
    """
    before = previous.get("model", {}).get("weights_fingerprint")
    if before is not None and before != fingerprint:
        raise DegradeError(
            f"{out_dir} holds records of other weights (clean fingerprint {before[:12]}, the model loads "
            f"{fingerprint[:12]} now): nothing was changed; pass force_run=true to recompute, or another hydra.run.dir"
        )
