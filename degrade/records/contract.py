"""The record contract: one frozen dataclass, a pinned Arrow schema, and the record key.

Every field the original study wrote is kept under its old name, so old notebooks keep
working; the new fields follow. ``output`` holds only the generated continuation. The
contract is documented field by field in ``docs/records.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from typing import Any, Optional

import pyarrow as pa

from degrade.model.weight_error import WeightDamage
from degrade.records import legacy
from degrade.records.arrow import arrow_schema
from degrade.scoring import semantic, textmeasures


@dataclass(frozen=True)
class GenParams:
    """The decoding a record was generated with: ours, else the model's generation config, else the library's.

    The sampling knobs (temperature, top_k, top_p) are None under greedy decoding, where they play no part.
    """

    do_sample: bool
    max_new_tokens: int
    temperature: Optional[float]
    top_k: Optional[int]
    top_p: Optional[float]
    repetition_penalty: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Record:
    """One generation of one prompt in one cell of a sweep."""

    # The original study's fields, names unchanged.
    timestamp: str
    model_name: str
    prompt_group: str
    prompt_id: str
    prompt_text: str
    output: str
    std_dev: float  # the level, whatever the method (old name)
    repeat_index: int
    temperature: Optional[float]  # None under greedy decoding
    do_sample: bool
    param_group_name: str
    seed: int
    duration: float  # wall seconds of the batch that produced the record
    tokens: int  # generated tokens (= tokens_out)
    degradation_method: str
    usar_4bit: bool
    # Added fields.
    experiment: str
    experiment_id: str
    config_name: str
    model_variant: Optional[str]  # null in a study record whose task key names none
    prompt_category: Optional[str]
    prompt_hash: str
    tokens_in: int
    tokens_out: Optional[int]  # null in a study record (it counted prompt and answer: tokens_out_raw)
    finish_reason: str  # "stop" (an end-of-turn token) or "length" (max_new_tokens reached)
    level_value: float
    level_index: int
    degrad_level: float
    batch_size_effective: int
    device: str
    dtype: str
    backend: Optional[str]  # null in records written before the field existed
    load_4bit: bool
    restore_strategy: str
    gen_params: GenParams
    settings_hash: str
    image_used: bool
    image_filename: Optional[str]
    vram_usage_percent: Optional[float]
    perplexity: Optional[float]
    weights_fingerprint: str
    # How far the cell's damage moved the group's weights (degrade.model.weight_error); null in older records.
    weight_rel_error: Optional[float]  # null when a damaged weight is not finite
    weight_snr_db: Optional[float]  # null at 0 error (infinite) and where weight_rel_error is null
    weights_changed_share: Optional[float]
    bits_flipped: Optional[int]  # null for 4-bit weights
    # Scores.
    n_words: int
    ttr: float
    mattr: Optional[float]
    repetition_rate: float
    correct: Optional[int]
    answers: Optional[list]  # the accepted answers ``correct`` was scored against
    info_units: Optional[int]
    info_units_list: Optional[list]
    # The study's text measures (degrade.scoring.textmeasures), on the text with its repetition loops cut.
    loop_truncated: Optional[bool]
    zipf_frequency: Optional[float]  # needs the nlp extra
    type_lemma_ratio: Optional[float]  # needs the nlp extra
    lexical_density: Optional[float]
    n_sentences: Optional[int]
    mean_sentence_length: Optional[float]
    wordnet_depth: Optional[float]  # with measures.wordnet (degrade.scoring.semantic, the thesis's, on the user's data)
    sentence_similarity: Optional[float]  # with measures.sentence_model (as wordnet_depth)
    # When asked for, else None: fidelity to the clean model (experiment.fidelity), lm-eval's scores (experiment.tasks).
    kl_to_clean: Optional[float]
    top1_agreement: Optional[float]
    fidelity_tokens: Optional[int]
    acc_norm: Optional[float]
    task_metrics: Optional[str]  # every metric lm-eval computed for the document, a JSON object
    # Originals of records read from the study's files, where its meaning differs (None in ours).
    output_raw: Optional[str]  # the study's output: the echoed prompt and the answer
    tokens_out_raw: Optional[int]  # the study's token count: prompt and answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# the scores given when asked
ASKED = ("kl_to_clean", "top1_agreement", "fidelity_tokens", "acc_norm", "task_metrics", *semantic.COLUMNS)


@dataclass(frozen=True)
class JobFacts:
    """What every record of one job shares."""

    experiment: str
    model_name: str
    method: str
    param_group_name: str
    config_name: str
    name_suffix: str
    seed_base: int
    load_4bit: bool
    device: str
    dtype: str
    backend: str
    restore_strategy: str
    gen: GenParams
    settings_hash: str
    image_filename: Optional[str]


@dataclass(frozen=True)
class CellFacts:
    """What every record of one cell (level × repetition) shares."""

    level_index: int
    level: float
    repeat: int
    weights_fingerprint: str
    perplexity: Optional[float]
    damage: WeightDamage = WeightDamage(None, None, None, None)  # what it did to the weights (none: not measured)


def make_record(
    job: JobFacts,
    cell: CellFacts,
    prompt: Any,
    sample: Any,
    *,
    batch_size: int,
    memory: Optional[float],
    scores: dict[str, Any],
) -> Record:
    """The record of one generation.

    Args:
        job: the job's shared facts.
        cell: the cell's shared facts.
        prompt: the prompt (``id``, ``text``, ``category``) and its ``hash`` (:func:`prompt_hash`).
        sample: the generated answer (``text``, ``tokens_in``, ``tokens_out``, ``duration``, ``finish_reason``).
        batch_size: prompts in the batch that produced it.
        memory: device memory in use after the batch, in percent.
        scores: the text's scores (``scoring.answers.score_output``) and those of :data:`ASKED`; the text measures
            (``scoring.textmeasures.measure``) and the answers ``correct`` was scored against are added here.
    """
    return Record(
        timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        model_name=job.model_name,
        prompt_group=job.experiment,
        prompt_id=prompt.id,
        prompt_text=prompt.text,
        output=sample.text,
        std_dev=cell.level,
        repeat_index=cell.repeat,
        temperature=job.gen.temperature,
        do_sample=job.gen.do_sample,
        param_group_name=job.param_group_name,
        seed=job.seed_base + cell.repeat,
        duration=round(sample.duration, 4),
        tokens=sample.tokens_out,
        degradation_method=job.method,
        usar_4bit=job.load_4bit,
        experiment=job.experiment,
        experiment_id=f"{job.method}|{job.model_name}|{job.name_suffix}",
        config_name=job.config_name,
        model_variant="it",
        prompt_category=prompt.category,
        prompt_hash=prompt.hash,
        tokens_in=sample.tokens_in,
        tokens_out=sample.tokens_out,
        finish_reason=sample.finish_reason,
        level_value=cell.level,
        level_index=cell.level_index,
        degrad_level=cell.level,
        batch_size_effective=batch_size,
        device=job.device,
        dtype=job.dtype,
        backend=job.backend,
        load_4bit=job.load_4bit,
        restore_strategy=job.restore_strategy,
        gen_params=job.gen,
        settings_hash=job.settings_hash,
        image_used=job.image_filename is not None,
        image_filename=job.image_filename,
        vram_usage_percent=memory,
        perplexity=cell.perplexity,
        weights_fingerprint=cell.weights_fingerprint,
        **cell.damage.to_dict(),
        answers=list(prompt.answers) if scores.get("correct") is not None else None,
        **textmeasures.measure(sample.text),
        output_raw=None,
        tokens_out_raw=None,
        **{**dict.fromkeys(ASKED), **scores},
    )


def prompt_hash(text: str, image_digest: str | None = None) -> str:
    """A short hash of what the model is shown: the prompt text, and the image's digest when there is one."""
    shown = text if image_digest is None else f"{text}\0{image_digest}"
    return hashlib.sha256(shown.encode()).hexdigest()[:12]


SCHEMA = arrow_schema(Record, {"GenParams": GenParams})
FIELDS = tuple(f.name for f in fields(Record))

# A record names its job (experiment, model, method, group), its cell (level, repetition) and its prompt: the id,
# and the hash of the text (and image) shown, so a prompt edited under the same id runs again.
KEY_FIELDS = (
    "experiment",
    "model_name",
    "degradation_method",
    "param_group_name",
    "level_value",
    "repeat_index",
    "prompt_id",
    "prompt_hash",
)
# The original study's records name the level and the task differently, and carry no prompt hash.
_LEGACY_NAMES = {"level_value": "std_dev", "experiment": "prompt_group"}


def upgrade(record: dict[str, Any]) -> dict[str, Any] | None:
    """``record`` with every key field filled, or None when it cannot say which prompt and cell it covers.

    Records written before a field existed get it from what they hold: the level from ``std_dev``, the
    experiment from ``prompt_group``, the prompt hash from ``prompt_text`` (an image they were shown is
    not known, so such prompts run again once). The original study's records are mapped to this
    contract first (:func:`degrade.records.legacy.from_study`), their values cast to the schema's types.
    """
    study = legacy.is_study_record(record)
    out = legacy.from_study(record) if study else dict(record)
    if study or out.get("output_raw") is not None:  # read from the study's file: its values as the schema types them
        out = legacy.coerce(out, FIELD_TYPES)
    for key, old in _LEGACY_NAMES.items():
        if out.get(key) is None:
            out[key] = out.get(old)
    if out.get("prompt_hash") is None and isinstance(out.get("prompt_text"), str):
        out["prompt_hash"] = prompt_hash(out["prompt_text"])
    if any(out.get(k) is None for k in KEY_FIELDS) or not legacy.key_types(out):
        return None
    out["prompt_id"] = str(out["prompt_id"])
    return out


FIELD_TYPES = {f.name: f.type.removeprefix("Optional[").removesuffix("]") for f in fields(Record)}


def record_key(record: dict[str, Any]) -> tuple:
    """What makes a record unique in a job: (experiment, model, method, group, level, repeat, prompt, its hash)."""
    return tuple(float(record[k]) if k == "level_value" else record[k] for k in KEY_FIELDS)


def key_of(fields: dict[str, Any]) -> tuple:
    """The record key of ``fields`` (of a record not yet made); ValueError unless they name every key field only."""
    if set(fields) != set(KEY_FIELDS):
        raise ValueError(f"a record key names {', '.join(KEY_FIELDS)}; got {', '.join(sorted(fields))}")
    return record_key(fields)


def to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records as an Arrow table with the pinned schema (gen_params a struct)."""
    return pa.Table.from_pylist([{k: r.get(k) for k in FIELDS} for r in records], schema=SCHEMA)
