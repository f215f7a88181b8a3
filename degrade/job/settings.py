"""What shapes a record: the settings a job dir belongs to, their hash, and what changed between two runs.

A job dir holds the records of one configuration. Resuming is only right when every setting that
shapes a record is unchanged: the model and its weights, the method, the parameter group, the
decoding, the seed, and what scores an output (:data:`SCORING_KEYS`: the accepted answers, the
Cookie Theft units, the scoring rules' version, the ``nlp`` extra, the data of ``measures``).
Levels, repetitions and prompts
are not among them: a level or repetition added to a configuration is what resume is for, and
prompts are keyed one by one (an edited or added prompt simply runs). Neither are the launcher,
the device, the batch size or the log level. A change of the scoring settings alone rescores the
stored outputs (:mod:`degrade.job.resume`); any other change is refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from degrade.config.schema import PromptConfig, RunConfig
from degrade.generation.sampling import SAMPLER
from degrade.scoring import RULES_VERSION
from degrade.scoring.semantic import Semantic
from degrade.scoring.textmeasures import nlp_available

# The settings that only score a stored output: a change of these alone rescores, never regenerates.
SCORING_KEYS = frozenset(
    {
        "experiment.info_units",
        "scoring.answers",
        "scoring.rules_version",
        "scoring.nlp",
        "scoring.wordnet",  # the digest of measures.wordnet's data (keyed only when on)
        "scoring.sentence_model",  # the digest of measures.sentence_model's files (keyed only when on)
    }
)


def record_settings(cfg: RunConfig, semantic: Semantic | None = None) -> dict[str, Any]:
    """The settings that shape a record, flat (``generation.max_new_tokens``: 80, …).

    ``semantic`` is the job's :class:`~degrade.scoring.semantic.Semantic` (its data dirs' digests, taken once);
    None takes them now from ``cfg.measures``.
    """
    semantic = semantic if semantic is not None else Semantic(cfg.measures.wordnet, cfg.measures.sentence_model)
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
        "scoring.answers": answers_hash(exp.prompts),
        "scoring.rules_version": RULES_VERSION,
        "scoring.nlp": nlp_available(),  # without the nlp extra, zipf_frequency and type_lemma_ratio are null
        **semantic.settings(),
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
        # each prompt samples with its own seed (degrade.generation.sampling): keyed where the records of the
        # earlier sampler differ, so a sampled job dir of that sampler is refused, not continued
        **(
            {"generation.sampler": SAMPLER}
            if gen.do_sample and (model.backend != "vllm" or not deg.common_noise)
            else {}
        ),
        # lm-eval's tasks, where its few-shot examples come from, and lm-eval's version, which scores them
        **({"experiment.tasks": list(exp.tasks), **_lm_eval(exp)} if exp.tasks is not None else {}),
        # the measure and the length of the clean answer it reads (keyed only when on, as the backend above)
        **(
            {"experiment.fidelity.max_new_tokens": exp.fidelity.max_new_tokens or gen.max_new_tokens}
            if exp.fidelity.enabled
            else {}
        ),
    }


def settings_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of ``settings`` (key order does not matter)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def answers_hash(prompts: list[PromptConfig]) -> str | None:
    """A short hash of every prompt's accepted answers, by id (inline or from ``answers_file``); None without any.

    Taken over the whole prompt set, not the prompts a job selects, so ``experiment.limit`` leaves it alone.
    """
    answers = {p.id: list(p.answers) for p in prompts if p.answers}
    return settings_hash(answers) if answers else None


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The settings that differ, sorted; a key only one side has differs (it changes the hash)."""
    absent = object()
    return sorted(k for k in set(old) | set(new) if old.get(k, absent) != new.get(k, absent))


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each setting that differs, as ``key: old → new`` (a key only one side has shows as ``—``)."""
    return [f"{k}: {_show(old.get(k, '—'))} → {_show(new.get(k, '—'))}" for k in changed_keys(old, new)]


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lm_eval(exp: Any) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "experiment.include_path": exp.include_path,
        "experiment.num_fewshot": exp.num_fewshot,
        "lm_eval": version("lm_eval"),
    }
