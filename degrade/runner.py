"""One job: load once, then for every cell restore, damage, generate, score and record."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from degrade import damage, generation, loading, provenance
from degrade.config import RunConfig
from degrade.memory import usage_percent
from degrade.params import resolve_group
from degrade.restore import Snapshot, fingerprint
from degrade.scoring import score_output
from degrade.store import RecordStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One (level, repetition) of a job's sweep."""

    level_index: int
    level: float
    repeat: int


@dataclass
class JobSummary:
    out_dir: Path
    records: int
    generated: int
    skipped: int
    seconds: float


def cells(cfg: RunConfig) -> list[Cell]:
    """Levels in the order given; the repetitions of each level together."""
    return [Cell(i, level, r) for i, level in enumerate(cfg.degradation.levels) for r in range(cfg.experiment.n_rep)]


def safe_name(text: str) -> str:
    return text.replace("/", "-").replace("|", "-")


def json_name(cfg: RunConfig) -> str:
    """The original study's file name: ``outputs_{method}_{model}_{name_suffix}.json``."""
    return f"outputs_{cfg.degradation.method}_{safe_name(cfg.model.name)}_{safe_name(cfg.name_suffix)}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Job:
    """The state of one running job; :func:`run_job` is the way in."""

    def __init__(self, cfg: RunConfig, out_dir: Path, resolved_yaml: str) -> None:
        self.cfg, self.out_dir = cfg, out_dir
        self.store = RecordStore(out_dir, json_name(cfg), cfg.formats)
        self.meta: dict[str, Any] = {"start_time": _now(), "config_hash": provenance.config_hash(resolved_yaml),
                                     **provenance.git_state(), "versions": provenance.versions(),
                                     "environment": provenance.environment()}
        self.prompts = cfg.experiment.selected
        self.cells = cells(cfg)
        self.generated = 0

    def key_of(self, cell: Cell, prompt_id: str) -> dict[str, Any]:
        c = self.cfg
        return {"experiment": c.experiment.name, "model_name": c.model.name, "degradation_method": c.degradation.method,
                "param_group_name": c.param_group.name, "level_value": cell.level, "repeat_index": cell.repeat,
                "prompt_id": prompt_id}

    def todo(self, cell: Cell) -> list:
        return [p for p in self.prompts if not self.store.has(self.key_of(cell, p.id))]

    def run(self) -> JobSummary:
        start = time.perf_counter()
        if self.cfg.force_run:
            self.store.set_aside()
        else:
            found = self.store.load()
            if found:
                log.info("resuming: %d records already in %s", found, self.store.journal)
        work = {cell: self.todo(cell) for cell in self.cells}
        expected = len(self.cells) * len(self.prompts)
        missing = sum(len(v) for v in work.values())
        log.info("plan: %d cells × %d prompts = %d generations, %d to run", len(self.cells), len(self.prompts),
                 expected, missing)
        if missing:
            self._generate(work)
        self.store.write_views()
        self.meta.update(end_time=_now(), records=len(self.store.records), generated=self.generated)
        provenance.write_json(self.out_dir / "metadata.json", self.meta)
        seconds = time.perf_counter() - start
        return JobSummary(self.out_dir, len(self.store.records), self.generated, expected - missing, seconds)

    def _generate(self, work: dict[Cell, list]) -> None:
        cfg = self.cfg
        loaded = loading.load(cfg.model, cfg.device)
        group = resolve_group(loaded.model, cfg.param_group)
        log.info("param_group %s: %d tensors, %s elements (%s)", group.name, len(group.targets),
                 f"{group.numel:,}", ", ".join(f"{k}×{n}" for k, n in group.summary()["kinds"].items()))
        snapshot = Snapshot(loaded.model, group.names)
        self.meta.update(model={"name": cfg.model.name, "source": loaded.source, "backend": loaded.backend,
                                "load_s": round(loaded.load_s, 3), "weights_fingerprint": snapshot.clean_fingerprint},
                         model_load_s=round(loaded.load_s, 3), model_cache_hit=loaded.cache_hit,
                         device=str(loaded.device), device_name=provenance.device_name(loaded.device),
                         param_group=group.summary())
        provenance.write_json(self.out_dir / "param_group.json", group.summary())
        params = generation.effective_params(loaded.model, cfg.generation)
        encoded = {p.id: generation.encode(loaded.tokenizer, p.text) for p in self.prompts}
        total = sum(len(v) for v in work.values())
        started = time.perf_counter()
        try:
            for number, (cell, prompts) in enumerate(work.items(), start=1):
                if not prompts:
                    continue
                cell_start = time.perf_counter()
                snapshot.restore(verify=cfg.verify_restore)
                damage.apply(loaded.model, group, cfg.degradation.method, cell.level, seed=cfg.seed_base,
                             repeat=cell.repeat, common_noise=cfg.degradation.common_noise)
                weights_fp = fingerprint(snapshot.params)
                generation.set_all_seeds(cfg.seed_base + cell.repeat)
                tokens = 0
                for batch_no, batch in enumerate(generation.batches(prompts, cfg.generation.max_batch_size), 1):
                    samples = generation.generate(loaded.model, loaded.tokenizer, [encoded[p.id] for p in batch],
                                                  params, loaded.device)
                    memory = usage_percent(loaded.device)
                    self.store.append([self.record(cell, p, s, params, loaded, weights_fp, len(batch), memory)
                                       for p, s in zip(batch, samples)])
                    self.generated += len(batch)
                    tokens += sum(s.tokens_out for s in samples)
                    if cfg.save_every and batch_no % cfg.save_every == 0:
                        self.store.write_views()
                self.store.write_views()
                elapsed = time.perf_counter() - started
                left = elapsed / self.generated * (total - self.generated)
                log.info("cell %d/%d  %s=%g rep %d: %d prompts, %d tokens in %.1f s (%.0f tok/s) | done %d/%d, "
                         "~%s left", number, len(work), cfg.degradation.method, cell.level, cell.repeat, len(prompts),
                         tokens, time.perf_counter() - cell_start, tokens / (time.perf_counter() - cell_start),
                         self.generated, total, _duration(left))
        finally:
            snapshot.restore()  # a model reused by the next job of a multirun starts clean

    def record(self, cell: Cell, prompt, sample: generation.Sample, params: dict, loaded: loading.Loaded,
               weights_fp: str, batch_size: int, memory: float) -> dict[str, Any]:
        cfg = self.cfg
        scores = score_output(sample.text, answers=prompt.answers, cookie_theft=cfg.experiment.info_units)
        dtype = str(loaded.dtype).removeprefix("torch.")
        return {
            **self.key_of(cell, prompt.id),
            "timestamp": _now(), "prompt_group": cfg.experiment.name, "prompt_text": prompt.text,
            "output": sample.text, "std_dev": cell.level, "temperature": params["temperature"],
            "do_sample": params["do_sample"], "seed": cfg.seed_base + cell.repeat,
            "duration": round(sample.duration, 4), "tokens": sample.tokens_out, "usar_4bit": cfg.model.load_4bit,
            "experiment_id": f"{cfg.degradation.method}|{cfg.model.name}|{cfg.name_suffix}",
            "config_name": f"{cfg.experiment.name}/{cfg.degradation.name}/{cfg.param_group.name}",
            "model_variant": "it", "prompt_category": prompt.category, "tokens_in": sample.tokens_in,
            "tokens_out": sample.tokens_out, "level_index": cell.level_index, "degrad_level": cell.level,
            "batch_size_effective": batch_size, "device": str(loaded.device), "dtype": dtype,
            "load_4bit": cfg.model.load_4bit, "restore_strategy": cfg.restore_strategy, "gen_params": dict(params),
            "image_used": False, "image_filename": None, "vram_usage_percent": memory, "perplexity": None,
            "weights_fingerprint": weights_fp, **scores,
        }


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def run_job(cfg: RunConfig, out_dir: Path, resolved_yaml: str = "") -> JobSummary:
    """Run (or resume) the job described by ``cfg``, writing everything into ``out_dir``.

    Args:
        cfg: the typed config, validated.
        out_dir: the job directory (Hydra's output dir for that job).
        resolved_yaml: the resolved config as YAML, hashed into the metadata.
    """
    return Job(cfg, out_dir, resolved_yaml).run()
