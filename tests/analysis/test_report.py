"""The report: records collected from real job dirs, summary arithmetic, plots and the CLI."""

from __future__ import annotations

import glob
import logging
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, compose_cfg

from degrade.analysis.report import plot, repetition_stats, summarize, write_report
from degrade.errors import DegradeError
from degrade.job.runner import run_job
from degrade.records.collect import collect
from degrade.records.contract import FIELDS

# Two scored categories and one free prompt (correct is null), so per-category columns have work to do.
PROMPTS = (
    'experiment.prompts=[{id:m1,text:"What is 2 plus 2?",category:math,answers:["4"]},'
    '{id:m2,text:"What is 3 plus 3?",category:math,answers:["6"]},'
    '{id:l1,text:"The opposite of hot?",category:language,answers:["cold"]},'
    '{id:f1,text:"Tell me a story."}]'
)
METHODS = ("mult_gauss", "ablation")
# Perplexity in one job only, as when a sweep enables it for some runs.
EXTRA = {
    "mult_gauss": [],
    "ablation": [
        "experiment.perplexity.enabled=true",
        "experiment.perplexity.text='The boy reaches for the cookie jar.'",
    ],
}
N_PROMPTS, N_REP, LEVELS = 4, 2, (0.0, 0.5)
PNG = b"\x89PNG\r\n\x1a\n"
N_RECORDS = len(METHODS) * len(LEVELS) * N_REP * N_PROMPTS


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == PNG, path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A multirun dir with one real tiny-model job per method (sampling, so repetitions differ)."""
    root = tmp_path_factory.mktemp("report") / "multirun"
    for method in METHODS:
        cfg = compose_cfg(
            "model=tiny_random",
            "experiment=iq",
            PROMPTS,
            f"experiment.n_rep={N_REP}",
            f"degradation={method}",
            "degradation.levels=[0,0.5]",
            "generation=sampling",
            "generation.max_new_tokens=4",
            *EXTRA[method],
        )
        run_job(cfg, root / f"degradation={method}")
    return root


@pytest.fixture
def sweep_copy(sweep, tmp_path) -> Path:
    """A copy of the sweep a test may change."""
    return Path(shutil.copytree(sweep, tmp_path / "multirun"))


def run_report(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_collect_finds_every_job_and_record(sweep) -> None:
    records = collect(sweep)
    assert set(records.job_dir) == {f"degradation={m}" for m in METHODS}
    assert len(records) == N_RECORDS
    assert records.groupby("job_dir").size().tolist() == [len(LEVELS) * N_REP * N_PROMPTS] * 2
    assert list(records.columns) == [*FIELDS, "job_dir"]
    jobs = pd.concat([pd.read_parquet(sweep / f"degradation={m}" / "records.parquet") for m in METHODS])
    assert sorted(records.output) == sorted(jobs.output)


def test_summary_has_a_row_per_cell_with_prompts_times_repetitions(sweep) -> None:
    records = collect(sweep)
    summary = summarize(records)
    assert len(summary) == len(METHODS) * len(LEVELS)
    assert summary[["degradation_method", "level_value"]].values.tolist() == [
        ["ablation", 0.0],
        ["ablation", 0.5],
        ["mult_gauss", 0.0],
        ["mult_gauss", 0.5],
    ]
    assert (summary.n == N_PROMPTS * N_REP).all() and (summary.n_rep == N_REP).all()
    by_cell = records.groupby(["degradation_method", "level_value"])
    for row in summary.itertuples():
        key = (row.degradation_method, row.level_value)
        assert row.tokens_out == pytest.approx(by_cell.tokens_out.mean()[key])
        assert row.repetition_rate == pytest.approx(by_cell.repetition_rate.mean()[key])
        assert row.mattr == pytest.approx(by_cell.mattr.mean()[key], nan_ok=True)
    assert "info_units" not in summary  # not a Cookie Theft run
    ablation = summary.degradation_method == "ablation"
    assert summary.perplexity[~ablation].isna().all() and (summary.perplexity[ablation] > 1).all()
    assert summary.perplexity[ablation].tolist() == by_cell.perplexity.mean()["ablation"].tolist()
    assert "settings" not in summary  # one setting per method: nothing to tell apart


def _mean_or_nan(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def test_accuracy_per_category_matches_the_records(sweep) -> None:
    records = collect(sweep)
    summary = summarize(records)
    assert {c for c in summary if c.startswith("accuracy")} == {"accuracy", "accuracy_math", "accuracy_language"}
    rows = records.to_dict("records")
    for cell in summary.to_dict("records"):
        mine = [
            r
            for r in rows
            if (r["degradation_method"], r["level_value"]) == (cell["degradation_method"], cell["level_value"])
            and not math.isnan(r["correct"])
        ]
        assert len(mine) == 3 * N_REP  # the free prompt is not scored
        assert cell["accuracy"] == pytest.approx(_mean_or_nan([r["correct"] for r in mine]))
        for category in ("math", "language"):
            expected = _mean_or_nan([r["correct"] for r in mine if r["prompt_category"] == category])
            assert cell[f"accuracy_{category}"] == pytest.approx(expected)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    columns = [
        "degradation_method",
        "level_value",
        "repeat_index",
        "prompt_id",
        "prompt_category",
        "correct",
        "info_units",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.assign(
        experiment="iq",
        model_name="m",
        param_group_name="mlp_only",
        tokens_out=10,
        mattr=0.5,
        repetition_rate=0.0,
        perplexity=math.nan,
        correct=frame.correct.astype(float),
        info_units=frame.info_units.astype(float),
    )


def test_accuracy_arithmetic_on_known_values() -> None:
    nan = None
    frame = _frame(
        [
            ("mult_gauss", 0.0, 0, "a", "math", 1, nan),
            ("mult_gauss", 0.0, 0, "b", "math", 1, nan),
            ("mult_gauss", 0.0, 1, "a", "math", 0, nan),
            ("mult_gauss", 0.0, 1, "b", "math", 1, nan),
            ("mult_gauss", 0.0, 0, "c", "logic", 0, nan),
            ("mult_gauss", 0.0, 1, "c", "logic", 1, nan),
            ("mult_gauss", 0.0, 0, "d", None, nan, 3),
            ("mult_gauss", 0.2, 0, "a", "math", 0, nan),
            ("mult_gauss", 0.2, 0, "d", None, nan, 5),
            ("mult_gauss", 0.4, 0, "d", None, nan, 1),
            # uni_quant: 0 is clean and larger n is less damage, so the rows come 0, 256, 16, 4.
            ("uni_quant", 4.0, 0, "d", None, nan, nan),
            ("uni_quant", 0.0, 0, "d", None, nan, nan),
            ("uni_quant", 256.0, 0, "d", None, nan, nan),
            ("uni_quant", 16.0, 0, "d", None, nan, nan),
        ]
    )
    summary = summarize(frame).set_index(["degradation_method", "level_value"])
    assert summary.index.tolist() == [
        ("mult_gauss", 0.0),
        ("mult_gauss", 0.2),
        ("mult_gauss", 0.4),
        ("uni_quant", 0.0),
        ("uni_quant", 256.0),
        ("uni_quant", 16.0),
        ("uni_quant", 4.0),
    ]
    clean = summary.loc[("mult_gauss", 0.0)]
    assert (clean.n, clean.n_rep) == (7, 2)
    assert clean.accuracy == pytest.approx(4 / 6)
    assert clean.accuracy_math == pytest.approx(3 / 4) and clean.accuracy_logic == pytest.approx(1 / 2)
    assert clean.info_units == 3
    damaged = summary.loc[("mult_gauss", 0.2)]
    assert damaged.accuracy == 0 and damaged.accuracy_math == 0 and math.isnan(damaged.accuracy_logic)
    assert summary.loc[("mult_gauss", 0.2)].info_units == 5
    assert math.isnan(summary.loc[("mult_gauss", 0.4)].accuracy)  # nothing scored at that level
    assert "perplexity" not in summary and "accuracy_None" not in summary


def test_error_bars_are_the_standard_error_of_repetition_means() -> None:
    cells = [
        (0.1, 0, "a", 1),
        (0.1, 0, "b", 0),
        (0.1, 1, "a", 1),
        (0.1, 1, "b", 1),
        (0.1, 2, "a", 1),
        (0.1, 2, "b", 1),
        (0.2, 0, "a", 1),
    ]
    frame = _frame([("mult_gauss", level, rep, prompt, "math", correct, None) for level, rep, prompt, correct in cells])
    stats = repetition_stats(frame, "correct").set_index("level_value")
    # Repetition means 0.5, 1, 1: mean 5/6, s.e. = sd / sqrt(3) with sd = sqrt(1/12).
    assert stats.loc[0.1, "mean"] == pytest.approx(5 / 6)
    assert stats.loc[0.1, "sem"] == pytest.approx(math.sqrt(1 / 12) / math.sqrt(3))
    assert math.isnan(stats.loc[0.2, "sem"])  # a single repetition: no bar
    assert stats["count"].tolist() == [3, 1]


def test_plots_are_png_files(sweep, tmp_path, caplog) -> None:
    records = collect(sweep)
    assert records.mattr.isna().all()  # 4-token outputs are shorter than the 50-word MATTR window
    with caplog.at_level(logging.INFO, logger="degrade"):
        paths = plot(records, tmp_path)
    assert sorted(p.name for p in paths) == [
        "accuracy.png",
        "perplexity.png",
        "repetition_rate.png",
        "tokens_out.png",
    ]
    assert "no mattr plot: no record has a value" in caplog.messages
    for path in paths:  # one 5 × 4 inch panel per method at 100 dpi (perplexity: the ablation job only)
        assert png_size(path) == ((500, 400) if path.name == "perplexity.png" else (1000, 400)), path


def test_write_report_writes_every_file_and_skips_its_own_output(sweep_copy) -> None:
    paths = write_report(sweep_copy)
    out = sweep_copy / "report"
    assert paths["records"] == out / "all_records.parquet"
    written = pd.read_parquet(paths["records"])
    assert len(written) == N_RECORDS and set(written.job_dir) == {f"degradation={m}" for m in METHODS}
    assert set(written.gen_params.map(lambda g: g["max_new_tokens"])) == {4}
    assert len(pd.read_csv(paths["summary_csv"])) == len(METHODS) * len(LEVELS)
    markdown = paths["summary_md"].read_text(encoding="utf-8").splitlines()
    assert len(markdown) == 2 + 4 and markdown[1].startswith("| --- |") and "accuracy_math" in markdown[0]
    assert sorted(p.name for p in paths["plots"]) == sorted(p.name for p in out.glob("*.png"))
    assert all(p.parent == out and p.read_bytes()[:8] == PNG for p in paths["plots"])
    # The analysis glob of docs/statistics.md reads the jobs' own views only, never the report's.
    matched = sorted(Path(p).parent.name for p in glob.glob(str(sweep_copy / "*" / "records.parquet")))
    assert matched == [f"degradation={m}" for m in sorted(METHODS)]
    again = write_report(sweep_copy)  # run twice: the report's own files are not a job
    assert len(pd.read_parquet(again["records"])) == N_RECORDS


def test_journal_is_the_source_and_set_aside_results_are_not_jobs(sweep, sweep_copy, caplog) -> None:
    job = sweep_copy / "degradation=ablation"
    (job / "records.parquet").unlink()
    with open(job / "records.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"timestamp": "2026-')  # a write torn by a crash
    shutil.copytree(sweep / "degradation=mult_gauss", sweep_copy / "degradation=mult_gauss" / "previous-20260101")
    with caplog.at_level(logging.WARNING, logger="degrade"):
        records = collect(sweep_copy)
    torn = [r.getMessage() for r in caplog.records if "torn" in r.getMessage()]
    assert len(torn) == 1 and "degradation=ablation/records.jsonl" in torn[0]
    reference = collect(sweep)
    assert len(records) == len(reference) == N_RECORDS
    order = ["job_dir", "level_value", "repeat_index", "prompt_id"]
    got, want = (r.sort_values(order).reset_index(drop=True) for r in (records, reference))
    for column in ["output", "level_value", "correct", "mattr", "tokens_out", "timestamp", "duration"]:
        assert got[column].equals(want[column]), column
    assert got.gen_params.tolist() == want.gen_params.tolist()


def test_an_unreadable_middle_line_is_one_error_and_changes_nothing(sweep_copy) -> None:
    journal = sweep_copy / "degradation=ablation" / "records.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[2] = b"{not json"
    journal.write_bytes(b"\n".join(lines))
    before = {p: p.read_bytes() for p in sweep_copy.rglob("*") if p.is_file()}
    with pytest.raises(DegradeError, match=r"records.jsonl: line 3 is unreadable and is not the last line"):
        collect(sweep_copy)
    result = run_report(str(sweep_copy))
    assert result.returncode == 2 and "line 3 is unreadable" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr + result.stdout
    assert {p: p.read_bytes() for p in sweep_copy.rglob("*") if p.is_file()} == before
    assert not (sweep_copy / "report").exists()


def test_a_parquet_only_job_is_read_and_an_unreadable_one_is_an_error(sweep_copy) -> None:
    (sweep_copy / "degradation=ablation" / "records.jsonl").unlink()
    records = collect(sweep_copy)
    assert records.groupby("job_dir").size().to_dict() == {f"degradation={m}": N_RECORDS // 2 for m in METHODS}
    (sweep_copy / "degradation=ablation" / "records.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DegradeError, match="records.parquet: unreadable .* no records.jsonl beside it"):
        collect(sweep_copy)


def test_dirs_without_records_are_skipped_quietly(sweep_copy, caplog) -> None:
    # What a failed, refused or dry run may leave: a metadata.json only, or an empty journal.
    (sweep_copy / "degradation=failed").mkdir()
    (sweep_copy / "degradation=failed" / "metadata.json").write_text('{"status": "failed"}', encoding="utf-8")
    (sweep_copy / "degradation=refused").mkdir()
    (sweep_copy / "degradation=refused" / "records.jsonl").write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="degrade"):
        paths = write_report(sweep_copy)
    shown = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not [m for m in shown if "failed" in m or "refused" in m or " 0 records" in m], shown
    assert sum(m.endswith(f": {N_RECORDS // 2} records") for m in shown) == len(METHODS)
    assert set(pd.read_parquet(paths["records"]).job_dir) == {f"degradation={m}" for m in METHODS}


def test_missing_or_empty_dir_is_one_clear_error(tmp_path) -> None:
    with pytest.raises(DegradeError, match="no such directory"):
        collect(tmp_path / "nope")
    (tmp_path / "empty" / "job").mkdir(parents=True)
    (tmp_path / "empty" / "job" / "records.jsonl").write_bytes(b"")
    with pytest.raises(DegradeError, match="no records found .*records.parquet or records.jsonl"):
        write_report(tmp_path / "empty")
    assert not (tmp_path / "empty" / "report").exists()


def test_cli_writes_the_report(sweep_copy) -> None:
    result = run_report(str(sweep_copy))
    assert result.returncode == 0, result.stderr
    out = sweep_copy / "report"
    for name in ["all_records.parquet", "summary.csv", "summary.md", "tokens_out.png", "accuracy.png"]:
        assert (out / name).exists() and f"wrote {out / name}" in result.stdout, name
    assert "| experiment | model_name | degradation_method | param_group_name | level_value | n |" in result.stdout


def test_cli_without_records_exits_2_with_one_line(tmp_path) -> None:
    result = run_report(str(tmp_path), "--out", str(tmp_path / "rep"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout and not (tmp_path / "rep").exists()
