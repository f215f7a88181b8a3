"""Image + text generation through the model's own processor, and the tiny random VLM for tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from degrade.errors import ConfigError
from degrade.generation import Sample, generation_config, to_samples
from degrade.tiny import tiny_config

IMAGE_KEY = "experiment.image.path"
# Gemma 3's own names and strings, so the tiny processor behaves like the real one.
IMAGE_TOKENS = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
# Gemma 3's chat template, shortened: BOS once, then one turn per message, an image as its boi placeholder
# (the processor expands it into boi + soft tokens + eoi).
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '" + IMAGE_TOKENS["boi_token"] + "' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def build_tiny_vlm(tokenizer_dir: Path, seed: int = 0) -> tuple[torch.nn.Module, Any]:
    """A tiny random Gemma 3 with a SigLIP tower, and a real ``Gemma3Processor`` for it, built offline.

    The tokenizer in ``tokenizer_dir`` gains Gemma 3's three image tokens; the model's vocab covers them and
    its ``image_token_id`` / ``boi_token_id`` / ``eoi_token_id`` are theirs. Weights are drawn from ``seed``,
    so every build is identical.

    Args:
        tokenizer_dir: A local directory holding a tokenizer with a BOS token (the embedded SmolLM2's).
        seed: Seed of the random weights.

    Returns:
        The model (float32, eval mode) and its processor.
    """
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    # A dict of named tokens adds them to the vocab and exposes tokenizer.boi_token(_id) etc.,
    # which is what Gemma3Processor reads.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, extra_special_tokens=dict(IMAGE_TOKENS))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = tiny_config("gemma3_vlm", vocab=len(tokenizer))
    vision = config.vision_config
    config.boi_token_id, config.eoi_token_id = tokenizer.boi_token_id, tokenizer.eoi_token_id
    config.image_token_id = tokenizer.image_token_id
    ids = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    for target in (config, config.text_config):
        for key, value in ids.items():
            setattr(target, key, value)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration(config)
        # Transformers zero-initialises the vision→text projection, which would hide the image entirely.
        torch.nn.init.normal_(
            model.model.multi_modal_projector.mm_input_projection_weight, std=config.initializer_range
        )
    model.generation_config.update(**ids)
    model.eval()
    # The PIL backend: the default Gemma3ImageProcessor needs torchvision.
    image_processor = Gemma3ImageProcessorPil(size={"height": vision.image_size, "width": vision.image_size})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=TINY_CHAT_TEMPLATE,
        image_seq_length=config.mm_tokens_per_image,
    )
    return model, processor


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
    model: Any, processor: Any, texts: Sequence[str], image: Image.Image, params: dict[str, Any], device: torch.device
) -> list[Sample]:
    """Generate one answer per text, each shown the same image, in a single left-padded batch.

    Args:
        model: A Transformers image-text-to-text model.
        processor: Its processor (tokenizer, image processor and chat template).
        texts: The user's words of each prompt, before the chat template.
        image: The image shown with every prompt.
        params: Effective generation values, as from :func:`degrade.generation.effective_params`.
        device: Where the model lives.

    Returns:
        One sample per text; ``tokens_in`` counts the image's placeholder tokens too.
    """
    tokenizer = processor.tokenizer
    inputs = processor_inputs(processor, [encode_with_image(processor, t) for t in texts], image)
    inputs = inputs.to(device)
    # The processor returns float32 pixels; a bf16 / fp16 vision tower wants its own dtype.
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    start = time.perf_counter()
    out = model.generate(**inputs, generation_config=generation_config(model, tokenizer, params))
    return to_samples(
        model,
        tokenizer,
        out,
        inputs["input_ids"].shape[1],
        inputs["attention_mask"].sum(dim=1).tolist(),
        time.perf_counter() - start,
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
