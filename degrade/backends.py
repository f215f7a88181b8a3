"""The two loading backends: Transformers everywhere, Unsloth on a CUDA machine that has it."""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import torch

from degrade.errors import DegradeError

log = logging.getLogger(__name__)


def unsloth_available() -> bool:
    return importlib.util.find_spec("unsloth") is not None


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

    Raises:
        DegradeError: ``unsloth`` was asked for where it cannot run.
    """
    cuda = torch.cuda.is_available() if cuda is None else cuda
    unsloth = unsloth_available() if unsloth is None else unsloth
    if requested == "auto":
        return "unsloth" if cuda and unsloth and not gguf else "transformers"
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


def load_pretrained(backend: str, source: str, cfg, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any, Any]:
    """Load (model, tokenizer, processor) with ``backend``; the processor is None for text-only models."""
    loader = {"transformers": _load_transformers, "unsloth": _load_unsloth}[backend]
    try:
        return loader(source, cfg, device, dtype)
    except OSError as exc:
        raise DegradeError(
            f"model.source={source}: cannot load ({str(exc).splitlines()[0]}); a hub id needs "
            "network access and, for gated models, HF_TOKEN in the environment"
        ) from None


def _quantization(cfg, dtype: torch.dtype):
    if not cfg.load_4bit:
        return None
    from transformers import BitsAndBytesConfig

    compute = dtype if dtype != torch.float32 else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)


def _load_transformers(source: str, cfg, device: torch.device, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    quant = _quantization(cfg, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": device})
    auto = AutoModelForImageTextToText if cfg.multimodal else AutoModelForCausalLM
    model = auto.from_pretrained(source, **kwargs)
    if quant is None:
        model.to(device)
    processor = AutoProcessor.from_pretrained(source) if cfg.multimodal else None
    tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source)
    return model, tokenizer, processor


def _load_unsloth(source: str, cfg, device: torch.device, dtype: torch.dtype):  # pragma: no cover - needs a GPU
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
