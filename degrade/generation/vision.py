"""Images for multimodal prompts: load a picture, and generate with it through the model's own processor."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from degrade.errors import ConfigError
from degrade.generation.interface import Request, Sample
from degrade.generation.text import generation_config, sampler, to_samples
from degrade.records.contract import GenParams

IMAGE_KEY = "experiment.image.path"


def encode_with_image(processor: Any, text: str) -> str:
    """The prompt string of one user turn holding the image, then ``text``, ready for the model's answer."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def processor_inputs(processor: Any, prompts: Sequence[str], image: Image.Image) -> Any:
    """One left-padded batch of ``prompts`` (from :func:`encode_with_image`), each with ``image``.

    A template that writes the BOS itself gets no second one from the tokenizer, the rule
    ``ProcessorMixin.apply_chat_template`` follows when it tokenizes.
    """
    bos = processor.tokenizer.bos_token
    add_special = not (bos is not None and all(p.startswith(bos) for p in prompts))
    return processor(
        text=list(prompts),
        images=[[image]] * len(prompts),
        padding=True,
        padding_side="left",
        add_special_tokens=add_special,
        return_tensors="pt",
    )


@torch.inference_mode()
def generate_with_image(
    model: Any,
    processor: Any,
    texts: Sequence[str],
    image: Image.Image,
    params: GenParams,
    device: torch.device,
    *,
    seeds: Sequence[int] | None = None,
    min_new_tokens: int = 0,
    progress: Callable[..., Any] | None = None,
) -> list[Sample]:
    """Generate one answer per text, each shown the same image, in a single left-padded batch.

    Args:
        model: A Transformers image-text-to-text model.
        processor: Its processor (tokenizer, image processor and chat template).
        texts: The user's words of each prompt, before the chat template.
        image: The image shown with every prompt.
        params: Effective generation values, as from :func:`degrade.generation.text.effective_params`.
        device: Where the model lives.
        seeds: Under sampling, each text's own seed (as :func:`degrade.generation.text.generate` takes them).
        min_new_tokens: A length every answer is forced to (the dry run's calibration).
        progress: Called after every decoding step.

    Returns:
        One sample per text; ``tokens_in`` counts the image's placeholder tokens too.
    """
    from transformers import LogitsProcessorList, StoppingCriteriaList

    tokenizer = processor.tokenizer
    inputs = processor_inputs(processor, [encode_with_image(processor, t) for t in texts], image)
    inputs = inputs.to(device)
    # The processor returns float32 pixels; a bf16 / fp16 vision tower wants its own dtype.
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    start = time.perf_counter()
    out = model.generate(
        **inputs,
        generation_config=generation_config(model, tokenizer, params, min_new_tokens),
        logits_processor=LogitsProcessorList(sampler(params, seeds, device)),
        stopping_criteria=StoppingCriteriaList([progress] if progress else []),
    )
    return to_samples(
        model,
        tokenizer,
        out,
        inputs["input_ids"].shape[1],
        inputs["attention_mask"].sum(dim=1).tolist(),
        time.perf_counter() - start,
    )


class ImageGenerator:
    """The Generator (degrade.generation.interface) of an image-text-to-text model; each prompt sees ``image``."""

    def __init__(self, model: Any, processor: Any, image: Image.Image, device: torch.device) -> None:
        self.model, self.processor, self.image, self.device = model, processor, image, device

    def generate(
        self,
        requests: Sequence[Request],
        params: GenParams,
        *,
        min_new_tokens: int = 0,
        progress: Callable[..., Any] | None = None,
    ) -> list[Sample]:
        texts = [r.text for r in requests]
        seeds = [r.seed for r in requests]
        return generate_with_image(
            self.model,
            self.processor,
            texts,
            self.image,
            params,
            self.device,
            seeds=seeds,
            min_new_tokens=min_new_tokens,
            progress=progress,
        )


def load_image(path: str | Path) -> Image.Image:
    """The image at ``path`` in RGB.

    Raises:
        ConfigError: (a ``DegradeError``) naming ``experiment.image.path`` when the file is missing or
            is not an image PIL can read.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(IMAGE_KEY, f"{path} is not a file (missing, or a directory)")
    try:
        with Image.open(path) as image:
            image.load()  # decode now, so a truncated file fails here and not mid-job
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise ConfigError(IMAGE_KEY, f"{path} is not an image PIL can read") from None
    except OSError as exc:
        raise ConfigError(IMAGE_KEY, f"{path} could not be read as an image ({exc})") from None
