"""``experiment.tasks``: lm-evaluation-harness scores each cell's documents on the damaged model in memory.

lm-eval's ``HFLM`` wraps the loaded model itself, so every cell evaluates the weights the cell damaged,
and ``simple_evaluate`` runs only the documents the cell still lacks (its ``samples`` option, by index).
Each logged document gives one record: the response (the most likely choice of a multiple-choice task,
the generated text of a generation task), the target as the accepted answer, ``correct`` from lm-eval's
``acc`` (or ``exact_match``), ``acc_norm``, and every metric lm-eval computed for it in ``task_metrics``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Any

from degrade.config.schema import RunConfig
from degrade.generation.interface import Sample
from degrade.job.prepare import Prepared, Prompt
from degrade.prompts.lmeval import leaf_tasks, task_manager
from degrade.scoring.answers import score_output

log = logging.getLogger(__name__)

CORRECT = ("acc", "exact_match")  # the metric that is `correct`: the first a document has, when it is 0 or 1


class TaskRunner:
    """The tasks of one job, evaluated on the model in memory, a cell at a time."""

    def __init__(self, cfg: RunConfig, prepared: Prepared) -> None:
        exp = cfg.experiment
        self.tasks, self.include_path, self.num_fewshot = tuple(exp.tasks), exp.include_path, exp.num_fewshot
        self.seed, self.batch = cfg.seed_base, cfg.generation.max_batch_size
        self.loaded = prepared.loaded
        self._lm: Any = None

    def evaluate(self, prompts: list[Prompt]) -> list[tuple[Prompt, Sample, dict[str, Any]]]:
        """Score ``prompts`` (documents ``<task>/<index>``) with the weights the model has now.

        Returns:
            Each prompt with its response (as a :class:`Sample`) and its record's scores.
        """
        from lm_eval import simple_evaluate

        by_id = {p.id: p for p in prompts}
        samples: dict[str, list[int]] = defaultdict(list)
        for prompt in prompts:
            task, _, index = prompt.id.rpartition("/")
            samples[task].append(int(index))
        start = time.perf_counter()
        out = simple_evaluate(
            model=self.lm(),
            tasks=list(samples),
            task_manager=task_manager(self.tasks, self.include_path),
            num_fewshot=self.num_fewshot,
            samples=dict(samples),
            log_samples=True,
            bootstrap_iters=0,  # the statistics are the report's, over the records
            # one seed for every cell: the few-shot examples (part of what the model is shown) never change
            random_seed=self.seed,
            numpy_random_seed=self.seed,
            torch_random_seed=self.seed,
            fewshot_random_seed=self.seed,
        )
        seconds = time.perf_counter() - start
        tasks = leaf_tasks(self.tasks, self.include_path)
        scored = []
        for task_name, logged in out["samples"].items():
            for example in logged:
                prompt = by_id.get(f"{task_name}/{example['doc_id']}")
                if prompt is not None:
                    scored.append((prompt, *self._record(tasks[task_name], example, seconds)))
        missing = set(by_id) - {p.id for p, _, _ in scored}
        if missing:
            raise RuntimeError(f"lm-eval returned no result for {len(missing)} documents: {sorted(missing)[:5]}")
        return scored

    def lm(self) -> Any:
        """lm-eval's ``HFLM`` around the loaded model and tokenizer (made once; it holds no copy of the weights)."""
        if self._lm is None:
            from lm_eval.models.huggingface import HFLM

            loaded = self.loaded
            self._lm = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=self.batch)
        return self._lm

    def _record(self, task: Any, example: dict, seconds: float) -> tuple[Sample, dict[str, Any]]:
        """The response of one logged document, and its scores."""
        doc, tokenizer = example["doc"], self.loaded.tokenizer
        context = example["arguments"][0][0]
        if task.OUTPUT_TYPE == "multiple_choice":
            likelihoods = [r[0] for r in example["filtered_resps"]]
            response, tokens_out = str(task.doc_to_choice(doc)[likelihoods.index(max(likelihoods))]), 0
        else:
            filtered = example["filtered_resps"]
            response = str(filtered[0] if isinstance(filtered, list) and filtered else filtered)
            tokens_out = len(tokenizer(response).input_ids) if response else 0
        metrics = {m: _number(example.get(m)) for m in example["metrics"]}
        sample = Sample(response, len(tokenizer(str(context)).input_ids), tokens_out, seconds, "lm_eval")
        first = next((metrics[m] for m in CORRECT if m in metrics), None)
        scores = {
            **score_output(response, answers=None, cookie_theft=False),
            "correct": int(first) if first in (0, 1) else None,
            "acc_norm": metrics.get("acc_norm"),
            "task_metrics": json.dumps(metrics, sort_keys=True),
        }
        return sample, scores


def _number(value: Any) -> Any:
    """A metric as a plain number where it is one (lm-eval hands some back as numpy scalars or booleans)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value if isinstance(value, (str, type(None))) else str(value)
