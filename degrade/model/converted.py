"""The cache of converted weights: a GGUF de-quantized once into safetensors, and tiny random checkpoints.

The cache lives in ``$DEGRADE_CACHE_DIR``, else ``$XDG_CACHE_HOME/degrade``. Every entry is keyed by its
content, never by a name: a converted GGUF by the SHA-256 of the file's bytes (with the Transformers
version and the layout's format), a random checkpoint by the fingerprint of its weights. Two GGUF files
of one name and size but other weights are two conversions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from degrade.model.restore import model_fingerprint

log = logging.getLogger(__name__)

_CACHE_FORMAT = 2  # bump when the converted layout changes, so stale caches are rebuilt


def cache_dir() -> Path:
    """Where converted weights are cached."""
    if os.environ.get("DEGRADE_CACHE_DIR"):
        return Path(os.environ["DEGRADE_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "degrade"


def save_random(cfg, model: nn.Module, tokenizer: Any) -> Path:
    """A tiny random model saved as a checkpoint directory once per content (its weights are seeded), for vLLM."""
    dtype = str(model.dtype).removeprefix("torch.")
    target = cache_dir() / "random" / f"{cfg.random_arch}-{dtype}-{model_fingerprint(model)[:12]}"
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


def convert_gguf(path: Path) -> Path:
    """De-quantize a GGUF once into a safetensors directory in the cache, and return it.

    The cache is keyed by the file's content (:func:`content_digest`), so another file under the same name
    and size (weights edited in place, another quantization copied over) is converted on its own.
    """
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    key = f"{content_digest(path)}|{transformers.__version__}|{_CACHE_FORMAT}"
    target = cache_dir() / "models" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
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


def content_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, computed once and remembered by its path, size, times and inode.

    Any write to the file changes its ctime, which no copy tool can set back, so a remembered digest is
    never that of other bytes. A file that changes while it is read is read again next time.
    """

    def identity() -> str:
        stat = path.stat()
        return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}"

    before = identity()
    memo = cache_dir() / "digests" / hashlib.sha256(before.encode()).hexdigest()[:32]
    if memo.exists():
        return memo.read_text(encoding="utf-8").strip()
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    if identity() == before:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest, encoding="utf-8")
        tmp.replace(memo)
    return digest
