"""Sampling does not depend on batching: the batch size, a resume or an OOM halving leave every record as it was.

Each prompt samples from its own generator, seeded from (the record's seed, its prompt id, and the level when
``degradation.common_noise`` is off) — see docs/records.md. These are whole jobs, read back from Parquet.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.job.runner import run_job
from degrade.records.store import RecordStore

KEY = ["level_index", "repeat_index", "prompt_id"]
TINY = (
    "model=tiny_random",
    "generation=sampling",
    "generation.max_new_tokens=12",
    "experiment.limit=6",
    "degradation.levels=[0,0.3]",
)


def outputs(out: Path) -> pd.DataFrame:
    """The job's records, one row per key, sorted by it."""
    frame = pd.read_parquet(out / "records.parquet")
    return frame.sort_values(KEY).set_index(KEY)


def run(out: Path, *overrides: str) -> pd.DataFrame:
    run_job(compose_cfg(*overrides), out)
    return outputs(out)


def test_sampled_outputs_do_not_depend_on_the_batch_size(tmp_path: Path) -> None:
    one = run(tmp_path / "one", *TINY, "generation.max_batch_size=1")
    five = run(tmp_path / "five", *TINY, "generation.max_batch_size=5")  # a batch of 5, then one of 1
    assert set(one.batch_size_effective) == {1} and set(five.batch_size_effective) == {5, 1}
    assert one.settings_hash.iloc[0] == five.settings_hash.iloc[0]  # the same settings: the same records
    assert one.output.tolist() == five.output.tolist()
    assert one.tokens_out.tolist() == five.tokens_out.tolist()
    assert one.output.nunique() == len(one)  # random weights, sampled: every answer is its own


def test_the_level_joins_the_sampling_seed_only_without_common_noise(tmp_path: Path) -> None:
    """σ = 1e-30 leaves float32 weights bit-identical, so any change between the two levels is the sampling's.

    By default a repetition's levels share their draws (as the damage's noise does); with common_noise=false
    each level draws its own.
    """
    levels = "degradation.levels=[0,1e-30]"
    common = run(tmp_path / "common", *TINY, levels)
    apart = run(tmp_path / "apart", *TINY, levels, "degradation.common_noise=false")
    assert common.weights_fingerprint.nunique() == apart.weights_fingerprint.nunique() == 1  # the same weights
    assert common.xs(0).output.tolist() == common.xs(1).output.tolist()
    differ = [a != b for a, b in zip(apart.xs(0).output, apart.xs(1).output)]
    assert all(differ), "with common_noise=false each level draws its own samples"


def test_an_interrupted_sampled_run_resumed_equals_an_uninterrupted_one(tmp_path: Path, monkeypatch) -> None:
    """Stopped after two batches of the first cell, then run again: the same records as a run never stopped.

    The resumed run generates the cell's last prompts in a batch of their own, in a process whose random
    state has seen other draws: only a prompt's own seed decides its answer. (A real SIGKILL between batches
    leaves the same journal; tests/records/test_durability.py kills real processes for the journal's sake.)
    """
    whole = run(tmp_path / "whole", *TINY, "generation.max_batch_size=2")
    real, appended = RecordStore._append_bytes, []

    def append_then_stop(self, payload: bytes) -> None:
        real(self, payload)
        appended.append(payload)
        if len(appended) == 2:
            raise KeyboardInterrupt

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        patch.setattr(RecordStore, "_append_bytes", append_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run_job(compose_cfg(*TINY, "generation.max_batch_size=2"), stopped)
    assert len(pd.read_json(stopped / "records.jsonl", lines=True)) == 4  # two batches of the first cell
    resumed = run(stopped, *TINY, "generation.max_batch_size=2")
    assert len(resumed) == len(whole) == 12
    assert resumed.output.tolist() == whole.output.tolist()
    assert resumed.tokens_out.tolist() == whole.tokens_out.tolist()


@pytest.mark.slow
def test_embedded_model_samples_the_same_at_batch_sizes_1_and_5(tmp_path: Path, embedded_dir) -> None:
    """The real SmolLM2 in float32, left-padded batches of 5 against one prompt at a time, token for token.

    Padding changes the attention's sums in the last bits; a sampled token could flip only where a draw
    falls within that distance of a boundary between two tokens' probabilities, which these prompts never do.
    """
    args = ("generation=sampling", "generation.max_new_tokens=32", "experiment.limit=10", "degradation.levels=[0,0.2]")
    one = run(tmp_path / "one", *args, "generation.max_batch_size=1")
    five = run(tmp_path / "five", *args, "generation.max_batch_size=5")
    assert set(five.batch_size_effective) == {5}
    assert one.output.tolist() == five.output.tolist()
    assert one.tokens_out.tolist() == five.tokens_out.tolist()
    assert one.output.nunique() == len(one)
