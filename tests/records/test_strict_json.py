"""Every JSON file a job writes is strict JSON: no NaN or Infinity, which Python writes and JSON readers reject."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from degrade.records.store import RecordStore, write_json


def strict(text: str) -> object:
    """Parse as a strict reader does (``jq``, JavaScript): NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_measure_that_came_out_infinite_is_null_in_the_journal_and_the_views(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, "outputs_x.json", ("json", "parquet"))
    record = {
        "experiment": "dreams",
        "model_name": "m",
        "degradation_method": "mult_gauss",
        "param_group_name": "mlp_only",
        "level_value": 1e308,
        "repeat_index": 0,
        "prompt_id": "1",
        "prompt_hash": "h",
        "output": "…",
        "perplexity": math.inf,  # a model damaged past use
        "gen_params": {"temperature": math.nan},
    }
    store.append([record])
    store.write_views()
    (line,) = (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert strict(line)["perplexity"] is None and strict(line)["gen_params"]["temperature"] is None
    (view,) = strict((tmp_path / "outputs_x.json").read_text(encoding="utf-8"))
    assert view["perplexity"] is None and view["level_value"] == 1e308


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_metadata_is_strict_json(tmp_path: Path, value: float) -> None:
    write_json(tmp_path / "metadata.json", {"timings": {"total_s": value}, "status": "done"})
    assert strict((tmp_path / "metadata.json").read_text(encoding="utf-8")) == {
        "timings": {"total_s": None},
        "status": "done",
    }
