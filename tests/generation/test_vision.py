"""Image + text generation on a tiny random Gemma 3 with a real processor, all offline."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from degrade.errors import DegradeError
from degrade.generation.interface import Request
from degrade.generation.vision import (
    ImageGenerator,
    encode_with_image,
    generate_with_image,
    load_image,
    processor_inputs,
)
from degrade.model.loading import embedded_dir
from degrade.model.tiny import build_tiny_vlm
from degrade.records.contract import GenParams

PROMPTS = [
    "Describe everything you see in this picture.",
    "What is the woman at the sink doing?",
    "What is about to happen to the boy on the stool?",
]
PARAMS = GenParams(do_sample=True, max_new_tokens=12, temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vlm():
    return build_tiny_vlm(embedded_dir(), seed=0)


def _kitchen(path: Path) -> Path:
    """A crude Cookie-Theft-like kitchen: cabinets, a sink, a window, plates and a stool."""
    image = Image.new("RGB", (320, 240), (235, 225, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 170, 320, 240], fill=(150, 110, 70))  # counter
    draw.rectangle([20, 20, 120, 100], fill=(120, 80, 40))  # cabinet
    draw.rectangle([180, 20, 300, 110], fill=(140, 190, 230), outline=(80, 80, 80), width=4)  # window
    draw.rectangle([190, 150, 290, 175], fill=(190, 190, 200))  # sink
    draw.ellipse([200, 120, 240, 160], fill=(250, 250, 250), outline=(0, 0, 0))  # plate
    draw.ellipse([60, 110, 90, 140], fill=(230, 180, 150))  # boy's head
    draw.rectangle([55, 140, 95, 200], fill=(60, 90, 180))  # stool
    image.save(path)
    return path


def _other(path: Path) -> Path:
    image = Image.new("RGB", (200, 200), (10, 10, 40))
    ImageDraw.Draw(image).ellipse([120, 20, 180, 80], fill=(250, 240, 150))
    image.save(path)
    return path


def _last_logits(model, processor, image: Image.Image) -> torch.Tensor:
    inputs = processor_inputs(processor, [encode_with_image(processor, PROMPTS[0])], image)
    with torch.inference_mode():
        return model(**inputs).logits[0, -1]


def test_prompt_holds_one_bos_and_the_image_block(vlm, tmp_path):
    model, processor = vlm
    tokenizer = processor.tokenizer
    assert {model.config.boi_token_id, model.config.image_token_id, model.config.eoi_token_id} == {
        tokenizer.boi_token_id,
        tokenizer.image_token_id,
        tokenizer.eoi_token_id,
    }
    assert model.config.text_config.vocab_size == len(tokenizer)
    image = load_image(_kitchen(tmp_path / "kitchen.png"))
    ids = processor_inputs(processor, [encode_with_image(processor, PROMPTS[0])], image)["input_ids"][0].tolist()
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    boi, eoi = ids.index(tokenizer.boi_token_id), ids.index(tokenizer.eoi_token_id)
    assert ids[boi + 1 : eoi] == [tokenizer.image_token_id] * model.config.mm_tokens_per_image
    assert ids.count(tokenizer.image_token_id) == model.config.mm_tokens_per_image


def test_generate_with_image_answers_each_prompt(vlm, tmp_path):
    model, processor = vlm
    image = load_image(_kitchen(tmp_path / "kitchen.png"))
    samples = generate_with_image(model, processor, PROMPTS, image, PARAMS, CPU, seeds=[1, 2, 3])
    assert len(samples) == 3
    lengths = (
        processor_inputs(processor, [encode_with_image(processor, p) for p in PROMPTS], image)["attention_mask"]
        .sum(dim=1)
        .tolist()
    )
    for sample, prompt, n_in in zip(samples, PROMPTS, lengths):
        assert 1 <= sample.tokens_out <= PARAMS.max_new_tokens
        assert sample.tokens_in == n_in
        assert prompt not in sample.text and "<start_of_turn>" not in sample.text
    assert len({s.duration for s in samples}) == 1  # one batch, one wall time


def test_the_image_reaches_the_model(vlm, tmp_path):
    model, processor = vlm
    kitchen = load_image(_kitchen(tmp_path / "kitchen.png"))
    other = load_image(_other(tmp_path / "other.png"))
    first = _last_logits(model, processor, kitchen)
    assert torch.equal(first, _last_logits(model, processor, kitchen))
    assert not torch.allclose(first, _last_logits(model, processor, other))


def test_damaging_the_vision_tower_changes_logits_only_through_the_image(vlm, tmp_path):
    model, processor = vlm
    kitchen = load_image(_kitchen(tmp_path / "kitchen.png"))
    before = _last_logits(model, processor, kitchen)
    damaged = copy.deepcopy(model)
    with torch.no_grad():
        for param in damaged.model.vision_tower.parameters():
            param.zero_()
    assert not torch.allclose(before, _last_logits(damaged, processor, kitchen))
    intact = dict(model.model.language_model.named_parameters())
    for name, param in damaged.model.language_model.named_parameters():
        assert torch.equal(param, intact[name]), name


def test_builds_are_identical_and_survive_a_save(vlm, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model, processor = vlm
    again, _ = build_tiny_vlm(embedded_dir(), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    model.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "vlm")
    reloaded = AutoProcessor.from_pretrained(tmp_path / "vlm")
    kitchen = load_image(_kitchen(tmp_path / "kitchen.png"))
    assert torch.equal(_last_logits(model, processor, kitchen), _last_logits(loaded, reloaded, kitchen))


def test_load_image_converts_to_rgb(tmp_path):
    Image.new("L", (30, 20), 128).save(tmp_path / "grey.png")
    image = load_image(tmp_path / "grey.png")
    assert image.mode == "RGB" and image.size == (30, 20)


@pytest.mark.parametrize("make", ["missing", "text", "directory", "truncated"])
def test_load_image_names_the_key(tmp_path, make):
    path = tmp_path / "bad.png"
    if make == "text":
        path.write_text("not a picture\n")
    elif make == "directory":
        path.mkdir()
    elif make == "truncated":
        _kitchen(tmp_path / "good.png")
        path.write_bytes((tmp_path / "good.png").read_bytes()[:200])
    with pytest.raises(DegradeError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith("experiment.image.path:") and str(path) in message and "\n" not in message


def test_a_sampled_answer_with_an_image_does_not_depend_on_its_batch(vlm, tmp_path):
    """Each prompt samples from its own seed: alone or in a left-padded batch of three, the same answer."""
    model, processor = vlm
    image = load_image(_kitchen(tmp_path / "kitchen.png"))
    generator = ImageGenerator(model, processor, image, CPU)
    requests = [Request(str(i), [], p, seed=100 + i) for i, p in enumerate(PROMPTS)]
    together = [s.text for s in generator.generate(requests, PARAMS)]
    alone = [generator.generate([r], PARAMS)[0].text for r in requests]
    assert together == alone
    reseeded = [Request(r.id, r.ids, r.text, seed=r.seed + 7) for r in requests]
    assert [s.text for s in generator.generate(reseeded, PARAMS)] != together  # the seed does decide them
