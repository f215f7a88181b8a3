"""The statistics in the report: a real tiny sweep through scripts/report.py, stats.csv read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, compose_cfg

from degrade.analysis.stats import MEASURES
from degrade.job.runner import run_job

PROMPTS = (
    'experiment.prompts=[{id:m1,text:"What is 2 plus 2?",category:math,answers:["4"]},'
    '{id:m2,text:"What is 3 plus 3?",category:math,answers:["6"]},'
    '{id:l1,text:"The opposite of hot?",category:language,answers:["cold"]}]'
)
JOBS = {"mult_gauss": "[0,0.5,2]", "uni_quant": "[0,16,4]"}
N_REP, N_PROMPTS = 2, 3
PNG = b"\x89PNG\r\n\x1a\n"
pytestmark = pytest.mark.slow  # two whole jobs and a report subprocess


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A two-job sweep of the tiny model (sampling, so repetitions differ), and the report of it."""
    root = tmp_path_factory.mktemp("stats") / "multirun"
    for method, levels in JOBS.items():
        cfg = compose_cfg(
            "model=tiny_random",
            "experiment=iq",
            PROMPTS,
            f"experiment.n_rep={N_REP}",
            f"degradation={method}",
            f"degradation.levels={levels}",
            "generation=sampling",
            "generation.max_new_tokens=6",
        )
        run_job(cfg, root / f"degradation={method}")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), str(root)], capture_output=True, text=True, timeout=600
    )
    return root, done


def test_the_report_writes_the_statistics_beside_the_summary(report) -> None:
    root, done = report
    assert done.returncode == 0, done.stderr
    out = root / "report"
    stats = pd.read_csv(out / "stats.csv")
    assert {"measure", "level_value", "mean", "ci_low", "ci_high", "d", "d_ci_low", "d_ci_high"} <= set(stats)
    assert {"critical_level", "critical_how", "spearman_rho", "spearman_p", "normalised"} <= set(stats)
    # Every record has tokens_out and a repetition rate; every item here is scored. mattr needs 50 words: none
    # has it, so it is left out; so is any other declared measure null in every record.
    records = pd.read_parquet(out / "all_records.parquet")
    present = {m.column for m in MEASURES if m.column in records and records[m.column].notna().any()}
    assert {"correct", "tokens_out", "repetition_rate"} <= set(stats["measure"]) == present
    assert "mattr" not in present
    for method, levels in JOBS.items():
        for measure in ("correct", "tokens_out"):
            line = stats[(stats["degradation_method"] == method) & (stats["measure"] == measure)]
            assert line["level_value"].tolist() == [float(v) for v in levels.strip("[]").split(",")]  # damage order
            assert line["n"].tolist() == [N_REP * N_PROMPTS] * 3 and line["n_rep"].tolist() == [N_REP] * 3
            assert line["d"].iloc[0] == 0
    assert set(stats["critical_how"]) <= {"interpolated", "first damaged level", "no spread", "not reached"}
    text = (out / "stats.md").read_text(encoding="utf-8")
    assert "## Critical levels" in text and "## Vulnerability ranking" in text and "uni_quant" in text
    for name in ("breaking_iq.png", "normalised_iq.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_the_statistics_agree_with_the_records(report) -> None:
    """The means match summary.csv, and d of the last level is what pandas computes from the records."""
    root, _ = report
    out = root / "report"
    stats = pd.read_csv(out / "stats.csv")
    summary = pd.read_csv(out / "summary.csv")
    records = pd.read_parquet(out / "all_records.parquet")
    tokens = stats[stats["measure"] == "tokens_out"]
    merged = tokens.merge(summary, on=["degradation_method", "level_value"], suffixes=("", "_summary"))
    assert merged["mean"].tolist() == pytest.approx(merged["tokens_out"].tolist())
    line = records[records["degradation_method"] == "mult_gauss"]
    clean, worst = line[line["level_value"] == 0]["tokens_out"], line[line["level_value"] == 2]["tokens_out"]
    n0, n1 = len(clean), len(worst)
    pooled = (((n0 - 1) * clean.var() + (n1 - 1) * worst.var()) / (n0 + n1 - 2)) ** 0.5
    row = tokens[(tokens["degradation_method"] == "mult_gauss") & (tokens["level_value"] == 2)].iloc[0]
    if pooled > 0:
        assert row["d"] == pytest.approx((worst.mean() - clean.mean()) / pooled)
    else:
        assert row["d"] == 0 if worst.mean() == clean.mean() else abs(row["d"]) == float("inf")
