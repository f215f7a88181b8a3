"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each YAML file of a group extends its ``base_*`` schema through its defaults list, so a
misspelt key or a wrong type fails when Hydra composes the config. Range and cross-field
checks live in ``__post_init__`` and fire at ``OmegaConf.to_object``, before any model
loads; they raise :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from degrade.config.checks import (
    check_finite,
    check_image,
    check_options_finite,
    check_patterns,
    check_seeds,
    check_view_name,
    sentence_model_problem,
    view_name,
    wordnet_problem,
)
from degrade.config.experiment import (  # noqa: F401 - the experiment group's schemas, re-exported
    REFERENCE_TEXT,
    ExperimentConfig,
    ImageConfig,
    PerplexityConfig,
    PromptConfig,
)
from degrade.errors import ConfigError, require
from degrade.methods import METHODS, check_options, method, resolve_levels
from degrade.model.groups import KINDS, TOWERS

BACKENDS = ("auto", "transformers", "unsloth", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
FORMATS = ("json", "parquet")
MAX_LEVELS = 1000


@dataclass
class ModelConfig:
    name: str = MISSING
    source: Optional[str] = None  # hub id, local dir, .gguf file, or package:<name> (a GGUF inside a package)
    random_arch: Optional[str] = None  # with no source: build a tiny random model of this architecture
    backend: str = "auto"
    dtype: str = "float32"
    load_4bit: bool = False
    max_seq_length: int = 2048
    multimodal: bool = False
    engine_memory: Optional[float] = None  # vllm: the share of memory its engine reserves (null: derived)

    def __post_init__(self) -> None:
        from degrade.model.tiny import RANDOM_ARCHS, VLM_CONFIGS

        require(self.backend in BACKENDS, "model.backend", f"{self.backend!r}; allowed: {', '.join(BACKENDS)}")
        require(self.dtype in DTYPES, "model.dtype", f"{self.dtype!r}; allowed: {', '.join(DTYPES)}")
        require(self.max_seq_length > 0, "model.max_seq_length", f"{self.max_seq_length}; must be > 0")
        if self.engine_memory is not None:
            require(0 < self.engine_memory < 1, "model.engine_memory", f"{self.engine_memory}; must be in (0, 1)")
        if self.backend == "vllm":
            require(not self.load_4bit, "model.load_4bit", "true: not built for model.backend=vllm; use transformers")
            require(not self.multimodal, "model.backend", "vllm: images are not built for it; use transformers")
        require(
            self.source is not None or self.random_arch is not None,
            "model.source",
            "missing; give a hub id, a local directory or a .gguf file",
        )
        if self.source is None:
            require(
                self.random_arch in RANDOM_ARCHS,
                "model.random_arch",
                f"{self.random_arch!r}; allowed: {', '.join(RANDOM_ARCHS)}",
            )
            require(
                self.multimodal == (self.random_arch in VLM_CONFIGS),
                "model.multimodal",
                f"must be {self.random_arch in VLM_CONFIGS} for model.random_arch={self.random_arch}",
            )


@dataclass
class LevelRange:
    min: Optional[float] = None
    max: Optional[float] = None
    steps: Optional[int] = None
    spacing: str = "linear"  # linear | geometric

    def __post_init__(self) -> None:
        # every level is a cell: a range of millions would fill the memory before its first cell ran
        ok = self.steps is None or self.steps <= MAX_LEVELS
        require(ok, "degradation.range.steps", f"{self.steps}; at most {MAX_LEVELS} levels in one job")
        check_finite("degradation.range.min", self.min)
        check_finite("degradation.range.max", self.max)

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.min, self.max, self.steps))


@dataclass
class DegradationConfig:
    name: str = MISSING  # the preset's name, as typed on the command line
    method: str = MISSING
    levels: Optional[List[float]] = None  # the sweep, in order
    range: Optional[LevelRange] = field(default_factory=LevelRange)  # when given, replaces levels; null: none
    common_noise: bool = True  # one noise draw per repetition, scaled by the level
    options: Dict[str, Any] = field(default_factory=dict)  # the method's own options (its registration lists them)

    def __post_init__(self) -> None:
        require(
            self.method in METHODS,
            "degradation.method",
            f"unknown {self.method!r}; allowed: {', '.join(sorted(METHODS))}",
        )
        ranged = self.range is not None and self.range.given
        key = "degradation.range" if ranged else "degradation.levels"
        spec = {k: v for k, v in dataclasses.asdict(self.range).items() if v is not None} if ranged else self.levels
        require(
            spec is not None,
            key,
            "missing; give a list such as [0, 0.1, 0.2] or degradation.range="
            "{min: 0, max: 1, steps: 5, spacing: linear}",
        )
        try:
            self.levels = resolve_levels(spec, self.method)
        except ValueError as exc:
            raise ConfigError(key, str(exc)) from None
        # a level is part of the record key: twice in one sweep, it would write every record of it twice
        twice = sorted({self.levels[self.levels.index(v)] for i, v in enumerate(self.levels) if v in self.levels[:i]})
        require(
            not twice,
            key,
            f"{', '.join(f'{v:g}' for v in twice)} given more than once "
            f"([{', '.join(f'{v:g}' for v in self.levels)}]); give each level once",
        )
        check_options_finite("degradation.options", self.options)
        self.options = check_options(self.method, self.options)


@dataclass
class ParamGroupConfig:
    name: str = MISSING
    kinds: List[str] = MISSING  # module kinds, see degrade.model.groups.KINDS
    tower: str = "language"  # language | vision | all
    layers: Optional[List[int]] = None  # [start, stop) over decoder layers
    exclude: List[str] = field(default_factory=list)  # regular expressions on parameter names
    layer: Optional[int] = None  # one layer (or block) alone, for a layer map: layers = [layer, layer + block)
    block: int = 1

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        require(
            bool(self.kinds) and not unknown, "param_group.kinds", f"{unknown or 'empty'}; allowed: {', '.join(KINDS)}"
        )
        require(self.tower in TOWERS, "param_group.tower", f"{self.tower!r}; allowed: {', '.join(TOWERS)}")
        block = f"{self.block}; the layers damaged together from param_group.layer: an integer ≥ 1, with that key"
        require(self.block >= 1 and (self.layer is not None or self.block == 1), "param_group.block", block)
        if self.layer is not None:
            require(self.layer >= 0, "param_group.layer", f"{self.layer}; must be an integer ≥ 0 (the first layer)")
            require(self.layers is None, "param_group.layer", f"given with param_group.layers={self.layers}; give one")
            self.layers = [self.layer, self.layer + self.block]
        if self.layers is not None:
            ok = len(self.layers) == 2 and 0 <= self.layers[0] < self.layers[1]
            require(ok, "param_group.layers", f"{self.layers}; give [start, stop) with 0 ≤ start < stop")
        check_patterns("param_group.exclude", self.exclude)


@dataclass
class GenerationConfig:
    name: str = MISSING
    max_new_tokens: int = 350
    do_sample: bool = True
    temperature: Optional[float] = None  # null: the model's generation config decides
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    max_batch_size: int = 40

    def __post_init__(self) -> None:
        for key in ("temperature", "top_p", "repetition_penalty"):  # inf passes the range checks below
            check_finite(f"generation.{key}", getattr(self, key))
        require(self.max_new_tokens >= 1, "generation.max_new_tokens", f"{self.max_new_tokens}; must be ≥ 1")
        require(self.max_batch_size >= 1, "generation.max_batch_size", f"{self.max_batch_size}; must be ≥ 1")
        require(
            self.temperature is None or self.temperature > 0,
            "generation.temperature",
            f"{self.temperature}; must be > 0 (use generation=greedy for no sampling)",
        )
        require(self.top_k is None or self.top_k >= 0, "generation.top_k", f"{self.top_k}; must be ≥ 0")
        require(self.top_p is None or 0 < self.top_p <= 1, "generation.top_p", f"{self.top_p}; must be in (0, 1]")
        require(
            self.repetition_penalty is None or self.repetition_penalty > 0,
            "generation.repetition_penalty",
            f"{self.repetition_penalty}; must be > 0",
        )


@dataclass
class MemoryConfig:
    critical_percent: float = 95.0  # save and stop above this
    warn_percent: float = 90.0  # warn and pause 1 s above this
    grow_below_percent: float = 40.0  # grow the batch toward max_batch_size below this

    def __post_init__(self) -> None:
        ok = 0 < self.grow_below_percent < self.warn_percent <= self.critical_percent <= 100
        require(ok, "memory", "thresholds must satisfy 0 < grow_below_percent < warn_percent ≤ critical_percent ≤ 100")


@dataclass
class MeasuresConfig:
    """The thesis's measures that need data of the user's (degrade/scoring/semantic.py); null: off."""

    wordnet: Optional[str] = None  # a dir of WordNet's database files: wordnet_depth
    sentence_model: Optional[str] = None  # a saved sentence-transformers model dir: sentence_similarity

    def __post_init__(self) -> None:
        for key, problem in (("wordnet", wordnet_problem), ("sentence_model", sentence_model_problem)):
            path = getattr(self, key)
            if path is not None:
                why = problem(path)
                require(why is None, f"measures.{key}", str(why))


@dataclass
class RunConfig:
    model: ModelConfig = MISSING
    experiment: ExperimentConfig = MISSING
    degradation: DegradationConfig = MISSING
    param_group: ParamGroupConfig = MISSING
    generation: GenerationConfig = MISSING
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    measures: MeasuresConfig = field(default_factory=MeasuresConfig)
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    name_suffix: str = "${experiment.name}"
    formats: List[str] = field(default_factory=lambda: list(FORMATS))
    force_run: bool = False
    dry_run: bool = False
    save_every: int = 0  # rebuild the JSON/Parquet views every N batches (0: at the end of each cell)
    restore_strategy: str = "subset_in_memory"
    verify_restore: bool = False  # check the weights fingerprint after every restore

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        require(not bad, "formats", f"{bad}; allowed: {', '.join(FORMATS)}")
        require(
            self.restore_strategy == "subset_in_memory",
            "restore_strategy",
            f"{self.restore_strategy!r}; allowed: subset_in_memory",
        )
        require(self.save_every >= 0, "save_every", f"{self.save_every}; must be ≥ 0")
        require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            "device",
            f"{self.device!r}; allowed: auto, cpu, cuda, cuda:N",
        )
        require(
            bool(self.name_suffix) and "/" not in self.name_suffix,
            "name_suffix",
            f"{self.name_suffix!r}; must be non-empty, without '/'",
        )
        check_view_name(self.degradation.method, self.model.name, self.name_suffix)
        check_seeds(
            "experiment.seed" if self.experiment.seed is not None else "seed", self.seed_base, self.experiment.n_rep
        )
        if self.model.backend == "vllm" and method(self.degradation.method).forward_hooks:
            raise ConfigError(
                f"degradation={self.degradation.method}",
                "acts through forward hooks, which model.backend=vllm cannot run (the engine has its own modules); "
                "use model.backend=transformers",
            )
        self.experiment.fidelity.check_run(self.model.backend, self.degradation.method)
        image = self.experiment.image
        if image.enabled and not self.model.multimodal:
            raise ConfigError(
                "experiment.image.enabled",
                f"model {self.model.name} is text-only and cannot see an image; pick a multimodal "
                "model (model=tiny_random_vlm, model=gemma3_4b_it) or pass experiment.image.enabled=false",
            )
        if image.enabled:
            require(
                bool(image.path),
                "experiment.image.path",
                "missing; this experiment shows an image with every prompt: pass experiment.image.path=<png>",
            )
            check_image("experiment.image.path", image.path)

    @property
    def view_name(self) -> str:
        """The JSON view's file name, the original study's: ``outputs_{method}_{model}_{name_suffix}.json``."""
        return view_name(self.degradation.method, self.model.name, self.name_suffix)

    @property
    def seed_base(self) -> int:
        return self.experiment.seed if self.experiment.seed is not None else self.seed
