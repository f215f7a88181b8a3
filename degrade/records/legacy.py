"""The original study's records, read into this project's record contract.

The study wrote one JSON array per run (``outputs_*.json``). Its records differ from ours in a
few values: ``prompt_id`` is the 1-based position of the prompt in its list (an integer),
``model_name`` a hub id, the task a key such as ``dreams_it`` (prompt set and model variant),
``output`` the decoded prompt followed by the answer, and ``tokens`` counts both. Where the
meaning is the same the value is mapped (the id as text, the model by the ``conf/model`` preset
whose source is that hub id, the task into ``experiment`` and ``model_variant``); where it
differs the original is kept in its own column (``output_raw``, ``tokens_out_raw``) and
``output`` holds the answer alone when the prompt can be found at its start. The text scores are
computed from that answer, as for our own records. The study's file itself is never written.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from omegaconf import OmegaConf

from degrade.paths import CONF_DIR
from degrade.scoring import textmeasures
from degrade.scoring.answers import score_output

_MODEL_PRESETS = CONF_DIR / "model"
_VARIANTS = ("it", "pt")  # the study's task keys end in the model variant: dreams_it
# What may stand before the echoed prompt: nothing, or the chat turn's role left by decoding without special tokens.
_BEFORE_PROMPT = re.compile(r"\s*(?:<[^>\n]*>\s*)*(?:user\s*)?", re.IGNORECASE)
_TURN_MARKER = re.compile(r"\s*(?:<[^>\n]*>\s*)*(?:model|assistant)?\s*\n", re.IGNORECASE)
_SCORES = ("n_words", "ttr", "mattr", "repetition_rate", "loop_truncated")


def is_study_record(record: dict[str, Any]) -> bool:
    """Whether ``record`` has the study's shape: its level in ``std_dev`` and no ``experiment``.

    Both of the study's formats: the first script's (``std_dev``, later ``degrad_level``) and its released
    code's, which writes ``level_value`` beside ``std_dev`` and an integer ``prompt_id``; a record of this
    project always has ``experiment``, and wrote ``prompt_id`` as text before it had one.
    """
    if "std_dev" not in record or "experiment" in record:
        return False
    ident = record.get("prompt_id")
    return "level_value" not in record or (isinstance(ident, int) and not isinstance(ident, bool))


@functools.lru_cache(maxsize=1)
def _model_names() -> dict[str, str]:
    """``{hub id: preset name}`` for every ``conf/model`` preset with a source."""
    names = {}
    for path in sorted(_MODEL_PRESETS.glob("*.yaml")):
        preset = OmegaConf.load(path)
        if isinstance(preset.get("source"), str) and isinstance(preset.get("name"), str):
            names[preset.source] = preset.name
    return names


def preset_names() -> set[str]:
    """The names of the ``conf/model`` presets a hub id maps to."""
    return set(_model_names().values())


def split_output(prompt: Any, output: Any) -> tuple[Any, bool]:
    """The answer in a study ``output``, and whether the echoed prompt was found and cut off.

    The prompt must stand at the start of the output (after at most the chat role that decoding
    left, ``user``); the ``model`` turn marker that may follow it is cut too.
    """
    if not isinstance(prompt, str) or not isinstance(output, str) or not prompt.strip():
        return output, False
    at = output.find(prompt)
    if at < 0 or not _BEFORE_PROMPT.fullmatch(output[:at]):
        return output, False
    rest = output[at + len(prompt) :]
    marker = _TURN_MARKER.match(rest)
    return (rest[marker.end() :] if marker else rest).strip(), True


def task_of(record: dict[str, Any]) -> Any:
    """The study's task key of a record: ``math_it`` from its released code's ``config_name``
    (``math_it__gauss_attn``, whose ``prompt_group`` is only ``math``; ``cookie`` for ``cookie_theft_it``),
    else its ``prompt_group`` (``dreams_it`` in the first script's files)."""
    config = record.get("config_name")
    if isinstance(config, str) and config.partition("__")[0].rpartition("_")[2] in _VARIANTS:
        return config.partition("__")[0]
    return record.get("prompt_group")


def from_study(record: dict[str, Any]) -> dict[str, Any]:
    """A study record mapped to the contract (see the module's docstring); ``record`` is not changed."""
    out = dict(record)
    task = task_of(out)
    experiment, variant = task, None
    if isinstance(task, str) and task.rpartition("_")[2] in _VARIANTS:
        experiment, _, variant = task.rpartition("_")
    out["experiment"] = experiment
    out.setdefault("model_variant", variant)
    if isinstance(out.get("model_name"), str):
        out["model_name"] = _model_names().get(out["model_name"], out["model_name"])
    out["level_value"] = out["degrad_level"] = out.get("std_dev")
    # Its released code wrote load_4bit and the decoding in gen_params only; its first script, the flags alone.
    out.setdefault("load_4bit", out.get("usar_4bit"))
    out.setdefault("usar_4bit", out.get("load_4bit"))
    _decoding(out)
    if isinstance(out.get("prompt_id"), (int, float)) and not isinstance(out["prompt_id"], bool):
        out["prompt_id"] = str(int(out["prompt_id"]))
    out["output_raw"] = out.get("output")
    out["output"], _ = split_output(out.get("prompt_text"), out.get("output"))
    out["tokens_out_raw"] = out.get("tokens")
    out["tokens_out"] = None  # the study counted prompt and answer together; the answer's count is not known
    if isinstance(out["output"], str) and any(out.get(k) is None for k in _SCORES):
        scores = {**score_output(out["output"]), **textmeasures.measure(out["output"])}
        out.update({k: v for k, v in scores.items() if out.get(k) is None and k != "correct"})
    return out


def _decoding(out: dict[str, Any]) -> None:
    """``temperature``, ``do_sample`` and ``gen_params`` made to say the same, from whichever the file has."""
    params = dict(out["gen_params"]) if isinstance(out.get("gen_params"), dict) else {}
    for key in ("temperature", "do_sample"):
        if params.get(key) is not None:
            out[key] = params[key]
        elif out.get(key) is not None:
            params[key] = out[key]
    if params:
        fields = ("do_sample", "max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty")
        out["gen_params"] = {k: params.get(k) for k in fields}


_CASTS: dict[str, Any] = {"str": str, "float": float, "int": int, "bool": bool, "list": lambda v: [str(x) for x in v]}


def coerce(record: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
    """``record`` with each value cast to its field's type (``types``: field → ``str``, ``float``, …).

    A study file's odd value (an integer level, a number written as text) becomes the type the
    schema holds; one that cannot be cast becomes None, so the Parquet view can always be written.
    """
    return {**record, **{k: _cast(record[k], kind) for k, kind in types.items() if record.get(k) is not None}}


def _cast(value: Any, kind: str) -> Any:
    if kind not in _CASTS:  # a struct (gen_params): kept when it is one
        return value if isinstance(value, dict) else None
    if kind == "bool" and isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    if (kind == "list") != isinstance(value, list) or isinstance(value, dict):
        return None
    try:
        return _CASTS[kind](value)
    except (TypeError, ValueError):
        return None


def key_types(record: dict[str, Any]) -> bool:
    """Whether a record's key fields hold what a key is made of: a line of another shape is unreadable, not a crash."""
    level, repeat, ident = record["level_value"], record["repeat_index"], record["prompt_id"]
    texts = ("experiment", "model_name", "degradation_method", "param_group_name", "prompt_hash")
    number = isinstance(level, (int, float)) and not isinstance(level, bool) and math.isfinite(level)
    whole = isinstance(repeat, int) and not isinstance(repeat, bool)
    return (
        number
        and whole
        and isinstance(ident, (str, int))
        and not isinstance(ident, bool)
        and all(isinstance(record[k], str) for k in texts)
    )
