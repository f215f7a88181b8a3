"""A rubric at work: the settings hash, the JSON schema, the messages the judge reads, and its answer checked.

An answer is used only when it is one JSON object holding every field of the rubric with a
value of the field's type inside its range. Nothing is coerced: ``"4"`` for an integer field,
``4.5`` for an integer field, or ``1`` for a boolean field break the schema.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

import numpy as np

PROMPT_VERSION = 1  # bump when the messages below change: the judgments' hash changes with it
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_JSON_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "choice": "string"}


class InvalidAnswer(ValueError):
    """The judge's answer is not JSON, or breaks the rubric's schema (the message says how)."""


def judge_settings(rubric: Any, backend: Any) -> dict[str, Any]:
    """What shapes a judgment: the rubric's text and fields, the judge model, its decoding, the prompt's version.

    The decoding includes ``json_mode``: a constrained answer and a free one differ.

    Not among them: the experiments the rubric applies to, the sample, the server's URL, concurrency,
    timeouts and retries.
    """
    return {
        # show_answers off is left out, so the rubrics written before the option keep their hash
        "rubric": {
            k: v
            for k, v in dataclasses.asdict(rubric).items()
            if k != "applies_to" and not (k == "show_answers" and not v)
        },
        "backend": backend.name,
        "model": backend.model,
        "source": backend.source,
        "max_tokens": backend.max_tokens,
        "json_mode": backend.json_mode,
        "temperature": 0,
        "prompt_version": PROMPT_VERSION,
    }


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def json_schema(rubric: Any) -> dict[str, Any]:
    """The rubric's answer as a JSON schema (for ``response_format``)."""
    props: dict[str, Any] = {}
    for f in rubric.fields:
        prop: dict[str, Any] = {"type": _JSON_TYPES[f.type]}
        if f.type in ("int", "float"):
            prop.update(minimum=f.min, maximum=f.max)
        if f.type == "choice":
            prop["enum"] = list(f.choices)
        props[f.name] = prop
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _describe(f: Any) -> str:
    if f.type in ("int", "float"):
        kind = f"{'an integer' if f.type == 'int' else 'a number'} from {f.min:g} to {f.max:g}"
    else:
        kind = "true or false" if f.type == "bool" else "one of " + ", ".join(json.dumps(c) for c in f.choices or [])
    return f'- "{f.name}": {kind}' + (f" ({f.description})" if f.description else "")


def messages(rubric: Any, prompt: str, output: str, answers: Any = None) -> list[dict[str, str]]:
    """The conversation the judge answers: the rubric as the system turn, the record as the user turn.

    With the rubric's ``show_answers``, the record's accepted answers (its ``answers``, from the prompt
    set or ``experiment.answers_file``) are shown as the expected answer, as the study's judge saw them
    for its math and language items; a record without answers is shown without.
    """
    keys = "\n".join(_describe(f) for f in rubric.fields)
    system = (
        f"{rubric.instructions.strip()}\n\nReply with one JSON object and nothing else, "
        f"with exactly these keys:\n{keys}"
    )
    shown = f"The prompt:\n{prompt}\n\nThe answer:\n{output}" if rubric.show_prompt else f"The text:\n{output}"
    shows = getattr(rubric, "show_answers", False) and isinstance(answers, (list, tuple, np.ndarray))
    expected = [str(a) for a in answers] if shows else []
    if expected:
        shown = f"The prompt:\n{prompt}\n\nThe expected answer:\n{' / '.join(expected)}\n\nThe answer:\n{output}"
    return [{"role": "system", "content": system}, {"role": "user", "content": shown}]


def correction(raw: str, problem: str, rubric: Any) -> list[dict[str, str]]:
    """The two turns that ask again after an unusable answer (at temperature 0 the same turns get the same answer)."""
    names = ", ".join(f.name for f in rubric.fields)
    return [
        {"role": "assistant", "content": raw},
        {
            "role": "user",
            "content": f"That reply cannot be used: {problem}. Reply with only the JSON object ({names}).",
        },
    ]


def parse_answer(text: str, rubric: Any) -> dict[str, Any]:
    """The rubric's fields from the judge's answer, each checked against its type and range.

    A JSON object inside a code fence or surrounded by prose is accepted; keys beyond the rubric's are ignored.

    Raises:
        InvalidAnswer: naming the first problem.
    """
    obj = _json_object(text)
    values = {}
    for f in rubric.fields:
        if f.name not in obj:
            raise InvalidAnswer(f'"{f.name}" is missing')
        values[f.name] = _checked(f, obj[f.name])
    return values


def _json_object(text: str) -> dict[str, Any]:
    stripped = _FENCE.sub("", text.strip())
    candidates = [stripped]
    if "{" in stripped and "}" in stripped:
        candidates.append(stripped[stripped.index("{") : stripped.rindex("}") + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            continue
        if isinstance(obj, dict):
            return obj
        raise InvalidAnswer(f"the reply is JSON but not an object ({type(obj).__name__})")
    raise InvalidAnswer("the reply is not a JSON object")


def _checked(f: Any, value: Any) -> Any:
    if f.type == "bool":
        if not isinstance(value, bool):
            raise InvalidAnswer(f'"{f.name}" must be true or false, not {json.dumps(value)}')
        return value
    if f.type == "choice":
        if value not in (f.choices or []):
            raise InvalidAnswer(f'"{f.name}" must be one of {", ".join(f.choices or [])}, not {json.dumps(value)}')
        return value
    ok = isinstance(value, int) if f.type == "int" else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise InvalidAnswer(f'"{f.name}" must be {"an integer" if f.type == "int" else "a number"}, not {value!r}')
    if not f.min <= value <= f.max:
        raise InvalidAnswer(f'"{f.name}" is {value}, outside {f.min:g}–{f.max:g}')
    return int(value) if f.type == "int" else float(value)


def conversation(rubric: Any, record: dict[str, Any]) -> list[dict[str, str]]:
    """:func:`messages` for a record: its prompt, its output and, where the rubric shows them, its answers."""
    text = {k: str(record.get(k) or "") for k in ("prompt_text", "output")}
    return messages(rubric, text["prompt_text"], text["output"], record.get("answers"))
