"""The documents of the capitals task, read from the JSONL file beside this one (whatever the working dir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def documents(**kwargs: Any) -> dict:
    """``{"test": Dataset}`` of capitals.jsonl, as lm-eval's ``custom_dataset`` wants."""
    import datasets

    return {"test": datasets.load_dataset("json", data_files=str(Path(__file__).with_name("capitals.jsonl")))["train"]}
