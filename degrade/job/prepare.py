"""What a job derives once before its cells: the prompts it shows, the loaded model, the group and its clean copy."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from degrade.config.schema import ExperimentConfig, RunConfig
from degrade.generation import text, vision
from degrade.generation.interface import Generator, Request
from degrade.generation.sampling import prompt_seed
from degrade.generation.vllm_engine import Engine, engine_for
from degrade.methods import damage
from degrade.model import loading
from degrade.model.groups import ResolvedGroup, resolve_group
from degrade.model.restore import Snapshot
from degrade.records.contract import GenParams, prompt_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prompt:
    """A prompt as the job shows it: the configured prompt and the hash of what the model sees."""

    id: str
    text: str
    category: str | None
    answers: list[str] | None
    hash: str


@dataclass(frozen=True)
class Shown:
    """The prompts of a job and the image shown with each (None for a text-only experiment)."""

    prompts: list[Prompt]
    image: Any
    image_filename: str | None


def shown(experiment: ExperimentConfig) -> Shown:
    """The selected prompts, each hashed with the image it is shown with."""
    image = digest = filename = None
    if experiment.image.enabled:
        path = Path(experiment.image.path).expanduser()
        image, filename = vision.load_image(path), path.name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    prompts = [Prompt(p.id, p.text, p.category, p.answers, prompt_hash(p.text, digest)) for p in experiment.selected]
    return Shown(prompts, image, filename)


@dataclass
class Prepared:
    """The loaded model and what a job computes from it once: the group, its clean copy, decoding, token ids."""

    loaded: loading.Loaded
    group: ResolvedGroup
    snapshot: Snapshot
    params: GenParams
    encoded: dict[str, list[int]]
    generator: Generator  # the one generation of this job: the vLLM engine, the model with an image, or on text
    engine: Engine | None = None  # model.backend=vllm: the engine that generates; the loaded model keeps the weights
    engine_start_s: float = 0.0  # the engine's start, for the job that started it (later jobs of the process reuse it)

    @property
    def device(self) -> torch.device:
        """Where generation runs: the engine's device, else the model's."""
        return torch.device(self.engine.device) if self.engine is not None else self.loaded.device

    def requests(self, prompts: list[Prompt], seed: int, level: float | None) -> list[Request]:
        """The requests of ``prompts`` in one cell: each samples with its own seed from the record's ``seed``
        and the prompt's id (and ``level``, None under ``common_noise``; see :mod:`degrade.generation.sampling`).
        """
        return [Request(p.id, self.encoded[p.id], p.text, prompt_seed(seed, p.id, level)) for p in prompts]


def prepare(cfg: RunConfig, shown: Shown) -> Prepared:
    """Load the model (or reuse the one this process holds), resolve the group, copy its clean weights.

    Raises:
        DegradeError: the model cannot be loaded, or the group matches nothing in it.
    """
    loaded = loading.load(cfg.model, cfg.device)
    group = resolve_group(loaded.model, cfg.param_group)
    damage.check(loaded.model, group, cfg.degradation.method, cfg.degradation.options)  # refused before any write
    kinds = ", ".join(f"{k}×{n}" for k, n in group.summary()["kinds"].items())
    log.info("param_group %s: %d tensors, %s elements (%s)", group.name, len(group.targets), f"{group.numel:,}", kinds)
    snapshot = Snapshot(loaded.model, group.names, loaded.clean)
    params = text.effective_params(loaded.model, cfg.generation)
    encoded = {p.id: text.encode(loaded.tokenizer, p.text) for p in shown.prompts}
    engine = engine_for(loaded, cfg) if loaded.backend == "vllm" else None
    started = engine.claim_start_seconds() if engine is not None else 0.0
    return Prepared(loaded, group, snapshot, params, encoded, generator(loaded, shown, engine), engine, started)


def generator(loaded: loading.Loaded, shown: Shown, engine: Engine | None) -> Generator:
    """The job's generation, chosen once: the serving engine, else the model with the shown image, else on text."""
    if engine is not None:
        return engine
    if shown.image is not None:
        return vision.ImageGenerator(loaded.model, loaded.processor, shown.image, loaded.device)
    return text.TextGenerator(loaded.model, loaded.tokenizer, loaded.device)
