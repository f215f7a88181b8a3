"""The record contract: one frozen dataclass, a pinned Arrow schema, and the record key.

Every field the original study wrote is kept under its old name, so old notebooks keep
working; the new fields follow. ``output`` holds only the generated continuation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

import pyarrow as pa


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
    temperature: float
    do_sample: bool
    param_group_name: str
    seed: int
    duration: float
    tokens: int  # generated tokens (= tokens_out)
    degradation_method: str
    usar_4bit: bool
    # Added fields.
    experiment: str
    experiment_id: str
    config_name: str
    model_variant: str
    prompt_category: Optional[str]
    tokens_in: int
    tokens_out: int
    level_value: float
    level_index: int
    degrad_level: float
    batch_size_effective: int
    device: str
    dtype: str
    load_4bit: bool
    restore_strategy: str
    gen_params: dict
    image_used: bool
    image_filename: Optional[str]
    vram_usage_percent: Optional[float]
    perplexity: Optional[float]
    weights_fingerprint: str
    # Scores.
    n_words: int
    ttr: float
    mattr: float
    repetition_rate: float
    correct: Optional[int]
    info_units: Optional[int]
    info_units_list: Optional[list]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


GEN_PARAMS = pa.struct(
    [
        ("temperature", pa.float64()),
        ("do_sample", pa.bool_()),
        ("max_new_tokens", pa.int64()),
        ("top_k", pa.int64()),
        ("top_p", pa.float64()),
        ("repetition_penalty", pa.float64()),
    ]
)

_ARROW = {
    "str": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "dict": GEN_PARAMS,
    "list": pa.list_(pa.string()),
}


def _arrow_type(annotation: str) -> pa.DataType:
    return _ARROW[annotation.removeprefix("Optional[").removesuffix("]")]


SCHEMA = pa.schema([pa.field(f.name, _arrow_type(f.type), nullable=True) for f in fields(Record)])
FIELDS = tuple(f.name for f in fields(Record))

KEY_FIELDS = (
    "experiment",
    "model_name",
    "degradation_method",
    "param_group_name",
    "level_value",
    "repeat_index",
    "prompt_id",
)


def record_key(record: dict[str, Any]) -> tuple:
    """What makes a record unique in a job: (experiment, model, method, group, level, repeat, prompt)."""
    return tuple(float(record[k]) if k == "level_value" else record[k] for k in KEY_FIELDS)


def to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records as an Arrow table with the pinned schema (gen_params a struct)."""
    return pa.Table.from_pylist([{k: r.get(k) for k in FIELDS} for r in records], schema=SCHEMA)
