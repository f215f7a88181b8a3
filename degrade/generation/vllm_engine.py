"""The ``vllm`` backend: generation by vLLM's engine, damage through the engine's own weight loading.

vLLM fuses layers (q/k/v in one matrix, gate/up in another) and, on a CPU, repacks linear weights
into kernel layouts and frees the originals, so editing its modules' parameters does nothing
there. The job therefore keeps a Transformers copy of the model in host memory as the keeper of
the weights: restore and damage act on it exactly as on the ``transformers`` backend (same
methods, same seeds, so the damaged tensors are bit-identical), and every change is handed to the
engine whole, in checkpoint names, through its worker's ``reload_weights``; the prefix cache is
then reset, or a prompt's keys and values from the previous cell would be reused.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the tensors are handed over
as they are, not pickled through a pipe to a spawned worker.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from torch import nn

from degrade.config.schema import MemoryConfig, ModelConfig, RunConfig
from degrade.errors import DegradeError
from degrade.generation.interface import Request, Sample
from degrade.generation.memory import kv_cache_bytes
from degrade.model.loading import Loaded
from degrade.records.contract import GenParams
from degrade.units import GiB

log = logging.getLogger(__name__)

# activations and the engine's own buffers beyond weights and KV cache; on a CPU also vLLM's own imports,
# which its worker counts with the rest of the process (seen here: ~1.5 GiB)
_MARGIN_BYTES = {"cuda": GiB, "cpu": 2 * GiB}


def memory_share(model: nn.Module, cfg: ModelConfig, memory: MemoryConfig, device: str, batch: int) -> float:
    """The share of device memory (host memory on a CPU) the engine may reserve: ``gpu_memory_utilization``.

    ``model.engine_memory`` when given; else what the weights, the KV cache of ``batch`` sequences of
    ``model.max_seq_length`` tokens and a margin need (on a CPU, plus what this process holds already:
    vLLM's CPU worker counts it as its own), and no more than what keeps the machine below
    ``memory.warn_percent``.

    Raises:
        DegradeError: that need does not fit below ``memory.warn_percent``.
    """
    if cfg.engine_memory is not None:
        return float(cfg.engine_memory)
    dtype = next(model.parameters()).dtype
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    need = weights + kv_cache_bytes(model.config, batch, cfg.max_seq_length, dtype) + _MARGIN_BYTES[device]
    if device == "cpu":  # vLLM's CPU worker counts all of this process's memory (the host copy too) as its own
        need += psutil.Process().memory_info().rss
    total, used = device_memory(device)
    room = memory.warn_percent / 100 * total - used
    if need > room:
        raise DegradeError(
            f"model.backend=vllm: the engine needs {need / GiB:.1f} GiB (weights, KV cache for {batch} × "
            f"{cfg.max_seq_length} tokens) and {max(room, 0) / GiB:.1f} GiB are free below memory.warn_percent="
            f"{memory.warn_percent:g}; lower generation.max_batch_size or model.max_seq_length, or set "
            "model.engine_memory"
        )
    return round(need / total, 3)


def device_memory(device: str) -> tuple[int, int]:
    """(total, in use) bytes of the engine's memory: the GPU's, or on a CPU the memory node vLLM runs on.

    vLLM's CPU worker applies its share to the NUMA node of its first allowed CPU (13.3 of 24 GiB on
    one machine here), so the share is sized on that node; the host's memory without vLLM.
    """
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        return total, total - free
    try:
        from vllm.utils.cpu_resource_utils import get_allowed_cpu_list, get_memory_node_info

        node = get_memory_node_info(get_allowed_cpu_list()[0].numa_node)
        return node.total_memory, node.total_memory - node.available_memory
    except (ImportError, AttributeError, IndexError, OSError, KeyError):
        pass
    mem = psutil.virtual_memory()
    return mem.total, mem.total - mem.available


@dataclass
class Engine:
    """A vLLM engine serving one model, and whether the weights it holds are the clean ones."""

    llm: Any
    device: str
    share: float
    load_s: float
    dirty: frozenset[str] | None = frozenset()  # the blocks whose weights differ from the clean ones (None: any)
    start_claimed: bool = False

    def claim_start_seconds(self) -> float:
        """The seconds the engine took to start, the first time they are asked for; 0 after (a reused engine)."""
        seconds, self.start_claimed = (0.0 if self.start_claimed else self.load_s), True
        return seconds

    @property
    def reserved_bytes(self) -> int:
        """What the engine reserves: its share of the device's memory."""
        return int(self.share * device_memory(self.device)[0])

    @classmethod
    def start(cls, model_dir: str, device: str, dtype: torch.dtype, max_len: int, share: float, seed: int) -> Engine:
        """Start vLLM on ``model_dir`` (a Transformers checkpoint directory) in this process."""
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        # vLLM logs at INFO, several lines per call, and warns of what it handles itself; the job's own lines
        # say what happens. VLLM_LOGGING_LEVEL=INFO in the environment brings them back.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        from vllm import LLM

        start = time.perf_counter()
        try:
            llm = LLM(
                model=model_dir,
                dtype=str(dtype).removeprefix("torch."),
                max_model_len=max_len,
                gpu_memory_utilization=share,
                seed=seed,
                enforce_eager=True,
            )
        except ValueError as exc:  # vLLM's own checks: an architecture it cannot serve, memory
            raise DegradeError(f"model.backend=vllm: {str(exc).splitlines()[0]}") from None
        return cls(llm, device, share, time.perf_counter() - start)

    def load(self, model: nn.Module, *, clean: bool, names: Collection[str] | None = None) -> None:
        """Hand the engine the weights of ``model`` that may differ from what it holds, in checkpoint names.

        Only the damaged group changes between cells: with ``names`` (the group's tensors) the engine is
        handed the blocks holding them (a layer's attention or MLP, every tensor of it, so that a layer
        the engine fuses — q/k/v, gate/up — is loaded whole), and the blocks it holds damaged from before.
        A tensor outside a numbered layer's block, or no ``names``, hands every weight. Nothing is handed
        when the engine holds clean weights and ``model``'s are clean too.
        """
        if clean and self.dirty == frozenset():  # None is "any block may be damaged": not clean
            return
        changed = blocks(names) if names is not None else None
        send = None if changed is None or self.dirty is None else changed | self.dirty
        state = model.state_dict()
        weights = iter(state.items() if send is None else [(k, v) for k, v in state.items() if _block(k) in send])
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()
        self.dirty = frozenset() if clean else changed

    def generate(
        self,
        requests: Sequence[Request],
        params: GenParams,
        *,
        min_new_tokens: int = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[Sample]:
        """One answer per request (its token ids, sampled with its own seed); vLLM batches them itself.

        ``progress`` is not called: vLLM decodes the whole batch in one call.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        sampling = [_sampling_params(SamplingParams, params, r.seed, min_new_tokens) for r in requests]
        start = time.perf_counter()
        prompts = [TokensPrompt(prompt_token_ids=r.ids) for r in requests]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        duration = time.perf_counter() - start
        samples = []
        for request, out in zip(requests, outputs):
            answer = out.outputs[0]
            reason = "length" if answer.finish_reason == "length" else "stop"
            n_in, ids = len(request.ids), tuple(answer.token_ids)
            samples.append(Sample(answer.text.strip(), n_in, len(ids), duration, reason, ids))
        return samples


def _block(name: str) -> str | None:
    """The block of a state-dict key: its module's parent (``model.layers.3.mlp``), when that sits in a numbered
    layer; else None."""
    parent = name.rsplit(".", 2)[0]
    return parent if any(part.isdigit() for part in parent.split(".")) else None


def blocks(names: Collection[str]) -> frozenset[str] | None:
    """The blocks holding the tensors ``names``; None when one of them is in no block (then every weight goes)."""
    found = {_block(n) for n in names}
    return None if None in found else frozenset(found)


def _sampling_params(cls: Any, params: GenParams, seed: int, min_new_tokens: int = 0) -> Any:
    """vLLM's sampling parameters for ``params``, one to one (greedy is temperature 0)."""
    common = {
        "max_tokens": params.max_new_tokens,
        "min_tokens": min_new_tokens,  # the dry run's calibration forces its lengths
        "repetition_penalty": params.repetition_penalty,
        "seed": seed,
    }
    if not params.do_sample:
        return cls(temperature=0.0, **common)
    top_k = params.top_k if params.top_k else -1  # Transformers' 0 / None: no top-k; vLLM's is -1
    return cls(temperature=params.temperature, top_k=top_k, top_p=params.top_p, **common)


_RUNNING: dict[str, Engine] = {}  # one engine per process, reused by the jobs of a multirun on the same model


def engine_for(loaded: Loaded, cfg: RunConfig) -> Engine:
    """The engine serving ``loaded`` (started once per process and model), refusing what it cannot run.

    Raises:
        DegradeError: not enough memory, a model vLLM cannot serve.
    """
    key = f"{loaded.weights_dir}|{loaded.dtype}|{cfg.model.max_seq_length}"
    if key not in _RUNNING:
        _RUNNING.clear()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        share = memory_share(loaded.model, cfg.model, cfg.memory, device, cfg.generation.max_batch_size)
        log.info("vLLM: starting its engine on %s, reserving %.0f %% of %s memory", device, 100 * share, device)
        engine = Engine.start(loaded.weights_dir, device, loaded.dtype, cfg.model.max_seq_length, share, cfg.seed_base)
        log.info("vLLM: engine ready in %.1f s", engine.load_s)
        _RUNNING[key] = engine
    return _RUNNING[key]
