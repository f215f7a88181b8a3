"""Arrow types read from the record dataclasses' annotations: the pinned schema of the Parquet views."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import pyarrow as pa

_ARROW: dict[str, Any] = {
    "str": pa.string(),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "list": pa.list_(pa.string()),
}


def arrow_type(annotation: str, structs: Mapping[str, type]) -> pa.DataType:
    """The Arrow type of a field annotated ``annotation``; a dataclass named in ``structs`` becomes a struct.

    ``Optional[...]`` reads as its inner type: every column of the schema is nullable.
    """
    name = annotation.removeprefix("Optional[").removesuffix("]")
    if name in _ARROW:
        return _ARROW[name]
    return pa.struct([(f.name, arrow_type(f.type, structs)) for f in fields(structs[name])])


def arrow_schema(cls: type, structs: Mapping[str, type]) -> pa.Schema:
    """The schema of dataclass ``cls``: a nullable column per field, in order."""
    return pa.schema([pa.field(f.name, arrow_type(f.type, structs), nullable=True) for f in fields(cls)])
