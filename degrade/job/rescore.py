"""Rescoring stored outputs when only what scores them changed: answers, units, the rules, extras, measure data.

Scores are computed from ``output`` alone, so a change of the accepted answers (inline or in
``experiment.answers_file``), of ``experiment.info_units``, of the scoring rules
(:data:`degrade.scoring.RULES_VERSION`), of the ``nlp`` extra or of the data of ``measures``
need not generate anything: every
record of the dir's earlier settings is scored again from its output and takes this run's settings
hash, so one hash never covers two answer keys. The journal it replaces is kept in a ``previous-*``
dir with the metadata that described it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from degrade.config.schema import RunConfig
from degrade.job.resume import Rescoring
from degrade.records.aside import keep_copies
from degrade.records.store import JOURNAL, METADATA, RecordStore
from degrade.scoring import textmeasures
from degrade.scoring.answers import score_output
from degrade.scoring.semantic import Semantic

log = logging.getLogger(__name__)


def record_scores(
    output: str, answers: Sequence[str] | None, info_units: bool, semantic: Semantic, prompt: str | None
) -> dict[str, Any]:
    """Every score field of a record of ``output`` (answering ``prompt``), as the record writer fills them."""
    scores = score_output(output, answers=answers, cookie_theft=info_units, prompt=prompt)
    return {
        **textmeasures.measure(output),
        **semantic.measure(output),
        **scores,
        "answers": list(answers) if scores["correct"] is not None else None,
    }


def rescore(store: RecordStore, rescoring: Rescoring, cfg: RunConfig, new_hash: str, semantic: Semantic) -> int:
    """Score again every record of ``rescoring.old_hash`` from its output, rewrite the journal; return how many.

    A record whose prompt is no longer in the set keeps the answers it names (``answers``).
    """
    prompts = {p.id: p for p in cfg.experiment.prompts}
    records, rescored, differ = [dict(r) for r in store.records], 0, 0
    for record in records:
        if record.get("settings_hash") != rescoring.old_hash:
            continue
        prompt = prompts.get(str(record["prompt_id"]))
        answers = prompt.answers if prompt is not None else record.get("answers")
        output, shown = record.get("output") or "", record.get("prompt_text")
        scores = record_scores(output, answers, cfg.experiment.info_units, semantic, shown)
        if record.get("task_metrics"):  # lm-eval scored it (experiment.tasks): its `correct` is lm-eval's, kept
            scores = {k: v for k, v in scores.items() if k not in ("correct", "answers")}
        differ += any(record.get(k) != v for k, v in scores.items())
        record.update(scores, settings_hash=new_hash)
        rescored += 1
    keep_copies(store.out_dir, (JOURNAL, METADATA), "rescoring")
    store.rewrite(records)
    log.info(
        "scoring settings changed (%s): rescored %d records from their stored outputs, %d of them with other "
        "scores; nothing generated for it",
        "; ".join(rescoring.changed),
        rescored,
        differ,
    )
    return rescored
