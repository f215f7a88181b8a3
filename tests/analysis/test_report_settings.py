"""The report never pools records of jobs whose settings differ: it splits them and names what differs."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from conftest import compose_cfg

from degrade.analysis.report import figure, summarize, write_report
from degrade.job.runner import run_job
from degrade.records.collect import collect, read_settings
from degrade.records.contract import FIELDS
from degrade.records.store import METADATA, RecordStore, read_journal, write_json

LEVELS = [0.0, 0.5]
N_PROMPTS = 2
SPLIT = "settings differ between jobs"


def settings(max_new_tokens: int, load_4bit: bool) -> dict:
    """The record-shaping settings of a job, as its metadata.json holds them (flat keys)."""
    return {
        "model.name": "tiny_random",
        "model.load_4bit": load_4bit,
        "degradation.method": "mult_gauss",
        "generation.max_new_tokens": max_new_tokens,
        "generation.do_sample": False,
        "seed": 0,
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> list[dict]:
    """The records of one real tiny-model job."""
    out = tmp_path_factory.mktemp("source") / "job"
    cfg = compose_cfg(
        "model=tiny_random",
        f"experiment.limit={N_PROMPTS}",
        "generation.max_new_tokens=2",
        f"degradation.levels=[{','.join(map(str, LEVELS))}]",
    )
    run_job(cfg, out)
    return read_journal(out / "records.jsonl").records


def write_job(out_dir: Path, records: list[dict], settings_hash: str | None, job_settings: dict | None) -> None:
    """A job dir holding ``records`` under ``settings_hash`` (None: records written before the field existed)."""
    rows = copy.deepcopy(records)
    for row in rows:
        row.pop("settings_hash", None)
        if settings_hash is not None:
            row["settings_hash"] = settings_hash
        if job_settings is not None:
            row["gen_params"]["max_new_tokens"] = job_settings["generation.max_new_tokens"]
    store = RecordStore(out_dir, "outputs_mult_gauss_tiny_random.json")
    store.append(rows)
    store.write_views()
    meta = {"status": "done"}
    if job_settings is not None:
        meta |= {"settings": job_settings, "settings_hash": settings_hash}
    write_json(out_dir / METADATA, meta)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_jobs_with_different_settings_get_a_row_each_and_one_line_naming_the_difference(source, tmp_path, caplog):
    write_job(tmp_path / "short", source, "a1", settings(2, False))
    write_job(tmp_path / "long", source, "b2", settings(3, True))
    with caplog.at_level(logging.INFO, logger="degrade"):
        paths = write_report(tmp_path)
    differ = "generation.max_new_tokens 3 / 2; model.load_4bit true / false"  # in job-dir order: long, short
    assert warnings_of(caplog) == [f"{SPLIT}: {differ}; the table splits them (column settings)"]
    summary = pd.read_csv(paths["summary_csv"], keep_default_na=False)
    long = "generation.max_new_tokens=3, model.load_4bit=true"
    short = "generation.max_new_tokens=2, model.load_4bit=false"
    assert summary[["settings", "level_value"]].values.tolist() == [
        [long, 0.0],
        [long, 0.5],
        [short, 0.0],
        [short, 0.5],
    ]
    assert summary.n.tolist() == [N_PROMPTS] * 4  # never pooled
    assert list(summary.columns[:6]) == [
        "experiment",
        "model_name",
        "degradation_method",
        "param_group_name",
        "settings",
        "level_value",
    ]
    assert "| settings |" in paths["summary_md"].read_text(encoding="utf-8").splitlines()[0]
    records = collect(tmp_path)
    fig = figure(records, "tokens_out", read_settings(tmp_path, records))
    try:
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    finally:
        plt.close(fig)
    group = source[0]["param_group_name"]
    assert legend == [f"{group} / {long}", f"{group} / {short}"]


def test_records_without_a_settings_hash_form_one_group(source, tmp_path, caplog) -> None:
    write_job(tmp_path / "one", source, None, None)
    write_job(tmp_path / "two", source, None, None)
    with caplog.at_level(logging.WARNING, logger="degrade"):
        summary = summarize(collect(tmp_path))
    assert "settings" not in summary and summary.level_value.tolist() == LEVELS
    assert summary.n.tolist() == [2 * N_PROMPTS] * 2  # older records: pooled, as before
    shared = N_PROMPTS * len(LEVELS)  # every record of the second job repeats one of the first
    assert warnings_of(caplog) == [
        f"{shared} records share their key with a record of another job dir; the summary counts both"
    ]


def test_unknown_settings_are_named_by_their_hash(source, tmp_path, caplog) -> None:
    write_job(tmp_path / "new", source, "c3", None)  # no settings in its metadata
    write_job(tmp_path / "old", source, None, None)  # written before records carried a settings hash
    records = collect(tmp_path)
    assert read_settings(tmp_path, records) == {}
    with caplog.at_level(logging.WARNING, logger="degrade"):
        summary = summarize(records, read_settings(tmp_path, records))
    assert warnings_of(caplog) == [
        f"{SPLIT}: settings_hash c3 / none (older records); the table splits them (column settings)"
    ]
    assert summary.settings.tolist() == ["settings c3", "settings c3", "settings unknown", "settings unknown"]


@pytest.mark.skipif("settings_hash" not in FIELDS, reason="the runner does not write settings_hash into records yet")
def test_two_real_runs_with_different_max_new_tokens_are_split(tmp_path, caplog) -> None:
    for tokens in (2, 3):
        cfg = compose_cfg(
            "model=tiny_random",
            f"experiment.limit={N_PROMPTS}",
            f"generation.max_new_tokens={tokens}",
            "degradation.levels=[0,0.5]",
        )
        run_job(cfg, tmp_path / f"generation.max_new_tokens={tokens}")
    with caplog.at_level(logging.WARNING, logger="degrade"):
        paths = write_report(tmp_path)
    assert warnings_of(caplog) == [f"{SPLIT}: generation.max_new_tokens 2 / 3; the table splits them (column settings)"]
    summary = pd.read_csv(paths["summary_csv"])
    assert summary[["settings", "level_value", "n"]].values.tolist() == [
        ["generation.max_new_tokens=2", 0.0, N_PROMPTS],
        ["generation.max_new_tokens=2", 0.5, N_PROMPTS],
        ["generation.max_new_tokens=3", 0.0, N_PROMPTS],
        ["generation.max_new_tokens=3", 0.5, N_PROMPTS],
    ]
