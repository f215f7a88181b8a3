"""The documents of lm-evaluation-harness tasks as a prompt set: one prompt per document lm-eval scores.

``experiment=lm_eval 'experiment.tasks=[arc_easy]'`` runs lm-eval's own tasks, and tasks of one's own
from the YAML files under ``experiment.include_path`` (lm-eval's ``--include_path``). Each document
of a task's evaluation split becomes a prompt ``<task>/<index>``: its text is the task's
``doc_to_text``, its category the task, its accepted answer the target as text. lm-eval itself
scores the documents of each cell (:mod:`degrade.job.lmeval`); these prompts key the records, so a
resumed job runs only the documents without one, and the report reads them as any prompt set.
"""

from __future__ import annotations

import logging
from typing import Any

from degrade.errors import ConfigError
from degrade.prompts import FilePrompt

log = logging.getLogger(__name__)

INSTALL = "pip install -e '.[lm-eval]'"
_MANAGERS: dict[tuple, Any] = {}


def available() -> bool:
    """Whether lm-evaluation-harness can be imported."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False
    return True


def task_manager(tasks: tuple[str, ...], include_path: str | None) -> Any:
    """lm-eval's ``TaskManager``, one per process for these tasks and path.

    Only the tasks under ``include_path`` are indexed when they hold every task asked for: indexing
    lm-eval's own thousands of task files takes most of a minute on a small CPU.
    """
    key = (tasks, include_path)
    if key not in _MANAGERS:
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=include_path, include_defaults=False) if include_path else None
        if manager is None or not set(tasks) <= set(manager.all_tasks):
            manager = TaskManager(include_path=include_path)
        _MANAGERS[key] = manager
    return _MANAGERS[key]


def leaf_tasks(tasks: tuple[str, ...], include_path: str | None) -> dict[str, Any]:
    """Each task asked for by name, a group's tasks in its place (``mmlu``: its subjects).

    Raises:
        ConfigError: naming ``experiment.tasks`` when lm-eval knows no such task.
    """
    manager = task_manager(tasks, include_path)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        where = f" nor under experiment.include_path={include_path}" if include_path else ""
        raise ConfigError(
            "experiment.tasks",
            f"{', '.join(unknown)}: lm-eval has no such task{where}; "
            "list them with `lm-eval ls tasks`, or give a dir of task YAML files as experiment.include_path",
        )
    from lm_eval.tasks import get_task_dict

    found: dict[str, Any] = {}

    def walk(level: dict) -> None:
        for name, task in level.items():
            if isinstance(task, dict):
                walk(task)
            else:
                found[str(name)] = task

    walk(get_task_dict(list(tasks), manager))
    return found


def target_text(task: Any, doc: dict) -> str:
    """The document's target as text: the right choice of a multiple-choice task, else the target itself."""
    target = task.doc_to_target(doc)
    if task.OUTPUT_TYPE == "multiple_choice" and isinstance(target, int):
        return str(task.doc_to_choice(doc)[target])
    return str(target[0] if isinstance(target, list) and target else target)


def task_documents(tasks: list[str], include_path: str | None) -> list[FilePrompt]:
    """Every document of every task, as prompts ``<task>/<index>``, in the order lm-eval indexes them."""
    if not available():
        raise ConfigError("experiment.tasks", f"needs lm-evaluation-harness, the lm-eval extra: {INSTALL}")
    prompts = []
    for name, task in leaf_tasks(tuple(tasks), include_path).items():
        for index, doc in enumerate(task.eval_docs):
            text = task.doc_to_text(doc)
            text = text if isinstance(text, str) else str(task.doc_to_choice(doc)[text])  # a choice's index
            prompts.append(FilePrompt(f"{name}/{index}", text, name, [target_text(task, doc)]))
    log.info("experiment.tasks: %d documents of %s", len(prompts), ", ".join(tasks))
    return prompts
