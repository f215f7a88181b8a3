"""The memory policy: watch device (or host) memory between batches and size batches by it.

Above ``critical_percent`` the job stops (its records are already on disk); above
``warn_percent`` it warns and pauses 1 s; below ``grow_below_percent`` a batch that was cut
after an out-of-memory error grows back toward ``max_batch_size``. An out-of-memory error
during generation halves the batch and retries it: no prompt is lost.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psutil
import torch

from degrade.errors import DegradeError, MemoryCritical

log = logging.getLogger(__name__)


def usage_percent(device: torch.device) -> float:
    """Used share of the GPU's memory (through NVML when present) or of host RAM, in percent."""
    if device.type == "cuda":
        try:
            import pynvml  # from nvidia-ml-py

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            return round(100.0 * info.used / info.total, 2)
        except Exception:  # noqa: BLE001 - NVML missing or refused: ask CUDA itself
            free, total = torch.cuda.mem_get_info(device)
            return round(100.0 * (total - free) / total, 2)
    return round(psutil.virtual_memory().percent, 2)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, or the CPU allocator)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text)


class MemoryPolicy:
    """The batch size of a job, and what happens between batches."""

    def __init__(self, cfg, device: torch.device, max_batch_size: int, *, usage=usage_percent) -> None:
        self.cfg, self.device, self.max = cfg, device, max_batch_size
        self.size = max_batch_size
        self._usage = usage

    def read(self) -> float:
        return self._usage(self.device)

    def after_batch(self, used: float) -> None:
        """Act on the thresholds once a batch's records are saved; ``used`` is :meth:`read`'s reading."""
        if used > self.cfg.critical_percent:
            raise MemoryCritical(
                f"memory at {used:.1f} % is above memory.critical_percent="
                f"{self.cfg.critical_percent:g}; records so far are saved, run the same command "
                "to continue (lower generation.max_batch_size, or free memory)"
            )
        if used > self.cfg.warn_percent:
            log.warning("memory at %.1f %% (above %g %%): pausing 1 s", used, self.cfg.warn_percent)
            time.sleep(1)
        elif used < self.cfg.grow_below_percent and self.size < self.max:
            self.size = min(self.max, self.size * 2)
            log.info("memory at %.1f %%: batch size back up to %d", used, self.size)

    def on_out_of_memory(self, batch: int) -> None:
        """Halve the batch after an allocation failure, or give up at one prompt."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch <= 1:
            raise DegradeError(
                "out of memory generating a single prompt; lower generation.max_new_tokens "
                "or use a smaller model / model.load_4bit=true"
            )
        self.size = max(1, batch // 2)
        log.warning("out of memory at batch size %d: retrying with %d", batch, self.size)


def kv_cache_bytes(config: Any, batch: int, seq_len: int, dtype: torch.dtype) -> int:
    """Keys and values of every layer for ``batch`` sequences of ``seq_len`` tokens."""
    text = getattr(config, "text_config", None) or config
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", 0)
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", 1)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", 0)
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    return 2 * layers * kv_heads * head_dim * seq_len * batch * torch.tensor([], dtype=dtype).element_size()
