"""Typed schemas of the judge's config: a rubric, a backend, the judge's own keys and the app around them.

``conf/judge.yaml`` is the primary config of ``scripts/judge.py``; ``conf/judge/rubric/*.yaml``
and ``conf/judge/backend/*.yaml`` extend ``base_rubric`` and ``base_backend``. Range and
cross-field checks raise :class:`~degrade.errors.ConfigError` at ``OmegaConf.to_object``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, List, Optional  # noqa: UP035 - typing.List, as degrade/config/schema.py, for OmegaConf

from omegaconf import MISSING

from degrade.errors import ConfigError
from degrade.judge.backends import BACKENDS

FIELD_TYPES = ("int", "float", "bool", "choice")
# How each backend gets its JSON answer (judge.backend.json_mode); the first is the backend's default.
JSON_MODES = {"local": ("constrained", "prompt"), "openai": ("auto", "schema", "prompt")}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclass
class FieldSpec:
    """One field of a rubric's JSON answer: its name, type and range (or choices)."""

    name: str = MISSING
    type: str = "int"
    min: Optional[float] = None
    max: Optional[float] = None
    choices: Optional[List[str]] = None  # noqa: UP006
    description: str = ""

    def __post_init__(self) -> None:
        key = f"judge.rubric.fields.{self.name}"
        check(bool(NAME.match(self.name)), key, "a field name is lower-case letters, digits and _")
        check(self.type in FIELD_TYPES, f"{key}.type", f"{self.type!r}; allowed: {', '.join(FIELD_TYPES)}")
        if self.type in ("int", "float"):
            check(self.min is not None and self.max is not None, key, f"a {self.type} field needs min and max")
            check(self.min < self.max, key, f"min {self.min} must be below max {self.max}")
        if self.type == "choice":
            check(bool(self.choices), f"{key}.choices", "a choice field needs a non-empty list of choices")


@dataclass
class RubricConfig:
    """A rubric: the instructions the judge reads, the fields it answers, the experiments it applies to."""

    name: str = MISSING
    instructions: str = MISSING
    fields: List[FieldSpec] = field(default_factory=list)  # noqa: UP006
    applies_to: Optional[List[str]] = None  # noqa: UP006 - experiment names; null: every record
    show_prompt: bool = True  # show the judge the prompt the model answered, not only the answer
    show_answers: bool = False  # show the record's accepted answers as the expected answer (the study's judge did)

    def __post_init__(self) -> None:
        check(bool(NAME.match(self.name)), "judge.rubric.name", f"{self.name!r}; lower-case letters, digits and _")
        check(bool(self.instructions.strip()), "judge.rubric.instructions", "empty; say what the judge rates")
        check(bool(self.fields), "judge.rubric.fields", "empty; give at least one {name, type, min, max}")
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, "judge.rubric.fields", f"duplicate names {dupes}")


@dataclass
class BackendConfig:
    """Where the judge model runs: ``local`` (in process, through degrade's loader) or ``openai`` (HTTP)."""

    name: str = MISSING
    model: str = MISSING  # the judge model's name, as recorded (and sent to an OpenAI-compatible server)
    source: Optional[str] = None  # local: a directory, a hub id, a .gguf, or package:<name> (as model.source)
    dtype: str = "float32"
    device: str = "auto"
    base_url: Optional[str] = None  # openai: the server's /v1 URL
    api_key_env: Optional[str] = None  # openai: the environment variable holding the key (the key is never written)
    json_mode: str = "auto"  # see JSON_MODES; each backend's YAML sets its own
    max_tokens: int = 200
    batch_size: int = 8  # records per journal append; local: prompts per generate call
    concurrency: int = 4  # openai: requests in flight
    timeout_s: float = 60.0
    retries: int = 5  # openai: repeats after a 429, a 5xx, a timeout or a dropped connection
    backoff_s: float = 1.0  # first wait; doubles with each retry
    tokens_per_s: float = 30.0  # openai dry run: the assumed completion speed of one stream

    def __post_init__(self) -> None:
        check(self.name in BACKENDS, "judge.backend.name", f"{self.name!r}; allowed: {', '.join(BACKENDS)}")
        modes = JSON_MODES.get(self.name, ())
        check(self.json_mode in modes, "judge.backend.json_mode", f"{self.json_mode!r}; allowed: {', '.join(modes)}")
        for key in ("max_tokens", "batch_size", "concurrency"):
            check(getattr(self, key) >= 1, f"judge.backend.{key}", f"{getattr(self, key)}; must be ≥ 1")
        check(self.retries >= 0, "judge.backend.retries", f"{self.retries}; must be ≥ 0")
        ok = math.isfinite(self.timeout_s + self.backoff_s) and self.timeout_s > 0 and self.backoff_s >= 0
        check(ok, "judge.backend.timeout_s", "timeout > 0, backoff ≥ 0, both finite")
        if self.name == "local":
            check(self.source is not None, "judge.backend.source", "missing; the local backend loads a model")
        if self.name == "openai":
            check(bool(self.base_url), "judge.backend.base_url", "missing; give the server's URL, e.g. …/v1")
            scheme = str(self.base_url).partition("://")[0]
            check(scheme in ("http", "https"), "judge.backend.base_url", "allowed: an http:// or https:// URL, …/v1")


@dataclass
class JudgeConfig:
    rubric: RubricConfig = MISSING
    backend: BackendConfig = MISSING
    sample: Optional[float] = None  # a fraction in (0, 1) or a count ≥ 1 of records per cell; null: all
    seed: int = 0  # which records a sample takes
    invalid_retries: int = 2  # re-asks after an answer that is not JSON or breaks the schema
    retry_failed: bool = False  # judge again the records whose judgment failed
    dry_run: bool = False

    def __post_init__(self) -> None:
        s = self.sample
        allowed = "a fraction in (0, 1), an integer count ≥ 1 per cell, or null"
        check(s is None or 0 < s < 1 or (s >= 1 and float(s).is_integer()), "judge.sample", f"{s}; allowed: {allowed}")
        check(self.invalid_retries >= 0, "judge.invalid_retries", f"{self.invalid_retries}; must be ≥ 0")


@dataclass
class JudgeAppConfig:
    run: str = MISSING  # a job dir, or a run or sweep dir with job dirs below it
    judge: JudgeConfig = MISSING


def register_judge_configs() -> None:
    """Store the judge's schemas in Hydra's ConfigStore under the names its YAML files extend."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_judge", node=JudgeAppConfig)
    cs.store(group="judge/rubric", name="base_rubric", node=RubricConfig)
    cs.store(group="judge/backend", name="base_backend", node=BackendConfig)


def to_judge_config(cfg: Any) -> JudgeAppConfig:
    """The composed ``DictConfig`` as a checked :class:`JudgeAppConfig` (unknown keys refused in one line)."""
    from degrade.config.compose import to_typed

    return to_typed(cfg, "judge")


def compose_judge_config(*overrides: str) -> JudgeAppConfig:
    """``conf/judge.yaml`` composed with ``overrides``, typed and checked (for notebooks and tests)."""
    from hydra import compose, initialize_config_dir

    from degrade.paths import CONF_DIR

    register_judge_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return to_judge_config(compose(config_name="judge", overrides=list(overrides)))
