"""The local backend's constrained mode on the embedded SmolLM2: every answer usable, each value scored by the model."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CONF

from degrade.errors import ConfigError
from degrade.judge import constrained
from degrade.judge.config import compose_judge_config
from degrade.judge.local import LocalBackend
from degrade.judge.rubric import json_schema, judge_settings, messages, parse_answer, settings_hash
from degrade.model.loading import embedded_dir
from degrade.model.tiny import CONFIGS, build_random_model

RUBRICS = sorted(p.stem for p in (CONF / "judge" / "rubric").glob("*.yaml"))
ANSWERS = [
    ("Describe a dream you had.", "I was flying over a city of glass. Everything was quiet and I felt free."),
    ("What is 17 plus 26? Answer with a single number.", "qqq zr zr zr 9 9 9 , , , the the the"),
]
# Every kind of field, and an integer range where one value's tokens begin another's ("1" and "10").
SCHEMA = {
    "type": "object",
    "properties": {
        "level": {"type": "integer", "minimum": 1, "maximum": 12},
        "tone": {"type": "string", "enum": ["formal", "casual", "mixed"]},
        "share": {"type": "number", "minimum": 0, "maximum": 1},
        "fluent": {"type": "boolean"},
    },
}


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend(compose_judge_config("run=x").judge.backend)


def conversations(rubric) -> list[list[dict[str, str]]]:
    return [messages(rubric, prompt, output) for prompt, output in ANSWERS]


def test_the_values_each_field_allows() -> None:
    props = SCHEMA["properties"]
    assert constrained.allowed_values(props["level"]) == list(range(1, 13))
    assert constrained.allowed_values(props["tone"]) == ["formal", "casual", "mixed"]
    assert constrained.allowed_values(props["share"]) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert constrained.allowed_values({"type": "number", "minimum": -3, "maximum": 3})[:3] == [-3.0, -2.4, -1.8]
    assert constrained.allowed_values(props["fluent"]) == [True, False]


def test_json_mode_is_part_of_the_judge_hash() -> None:
    hashes = {}
    for mode in ("constrained", "prompt"):
        jc = compose_judge_config("run=x", f"judge.backend.json_mode={mode}").judge
        hashes[mode] = settings_hash(judge_settings(jc.rubric, jc.backend))
        assert judge_settings(jc.rubric, jc.backend)["json_mode"] == mode
    assert hashes["constrained"] != hashes["prompt"]
    assert compose_judge_config("run=x").judge.backend.json_mode == "constrained"  # the local default


@pytest.mark.slow
@pytest.mark.parametrize("name", RUBRICS)
def test_every_field_of_every_shipped_rubric_gets_an_allowed_value(backend, name) -> None:
    rubric = compose_judge_config("run=x", f"judge/rubric={name}").judge.rubric
    answers = backend.complete(conversations(rubric), json_schema(rubric))
    for done in answers:
        ratings = parse_answer(done.text, rubric)  # the runner's own check
        assert list(json.loads(done.text)) == [f.name for f in rubric.fields]  # every key, in the rubric's order
        for f in rubric.fields:
            value = ratings[f.name]
            if f.type == "int":
                assert isinstance(value, int) and f.min <= value <= f.max
            elif f.type == "bool":
                assert isinstance(value, bool)
        assert done.prompt_tokens > 100 and done.completion_tokens >= 2 * len(rubric.fields)


def assert_scores_are_the_models_own(model, prompts: list[list[int]], steps: list[constrained.Step]) -> None:
    """The one batched, cached pass per field gives the scores of feeding each value alone, from scratch."""
    batch = constrained.Batch(model, prompts, torch.device("cpu"))
    written = [list(p) for p in prompts]
    for step in steps:
        picks = batch.choose(step)
        for row in range(len(prompts)):
            alone = []
            for tail in step.tails:
                ids = written[row] + step.lead + tail
                with torch.inference_mode():
                    logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
                start = len(written[row]) + len(step.lead)
                alone.append(sum(logp[start - 1 + k, t].item() for k, t in enumerate(tail)))
            assert batch.last_scores[row].tolist() == pytest.approx(alone, abs=1e-3)
            assert picks[row] == max(range(len(alone)), key=alone.__getitem__)  # greedy: the highest score
            written[row] += step.lead + step.tails[picks[row]]


@pytest.mark.slow
def test_each_value_is_scored_by_the_sum_of_its_tokens_log_probabilities(backend) -> None:
    tokenizer = backend.loaded.tokenizer
    rubric = compose_judge_config("run=x").judge.rubric
    prompts = [backend.encode(m) for m in conversations(rubric)]  # two lengths: rows are padded
    steps = constrained.plan(SCHEMA, tokenizer)
    level = steps[0]
    assert tokenizer.decode(level.lead) == '{"level": '
    assert [tokenizer.decode(t) for t in level.tails[:1] + level.tails[9:10]] == ["1,", "10,"]  # "1" ends there
    assert tokenizer.decode(steps[1].lead) == ' "tone": "'  # the comma was written with the level
    assert_scores_are_the_models_own(backend.loaded.model, prompts, steps)


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_the_scores_are_exact_on_every_tiny_architecture(arch) -> None:
    model, tokenizer = build_random_model(arch, tokenizer_dir=embedded_dir())
    model.eval()
    prompts = [tokenizer.encode("the dream was blue and " * 3), tokenizer.encode("hello")]
    assert_scores_are_the_models_own(model, prompts, constrained.plan(SCHEMA, tokenizer))


def test_a_conversation_outgrowing_a_sliding_window_is_refused_in_one_line() -> None:
    model, tokenizer = build_random_model("gemma3", tokenizer_dir=embedded_dir())  # its window: 64 tokens
    with pytest.raises(ConfigError, match="sliding-window layers see 64 tokens.*json_mode=prompt"):
        steps = constrained.plan(SCHEMA, tokenizer)
        constrained.answer(model, [tokenizer.encode("hello " * 80)], steps, torch.device("cpu"))


@pytest.mark.slow
def test_the_same_input_gets_the_same_answer_alone_or_in_a_batch(backend) -> None:
    rubric = compose_judge_config("run=x", "judge/rubric=affect").judge.rubric
    schema, convs = json_schema(rubric), conversations(rubric)
    first = [c.text for c in backend.complete(convs, schema)]
    assert [c.text for c in backend.complete(convs, schema)] == first
    assert [backend.complete([c], schema)[0].text for c in convs] == first
    text = backend.complete(convs, SCHEMA)[0].text
    values = json.loads(text)
    assert text.startswith('{"level": ') and list(values) == ["level", "tone", "share", "fluent"]
    assert values["share"] in constrained.allowed_values(SCHEMA["properties"]["share"])
