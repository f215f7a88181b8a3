"""scripts/report.py PATHS --stats study on a real tiny sweep, its table recomputed from the records with scipy.

Two dirs, as the study's runs came: a clean job (degradation=none) in one, and in the other a uni_quant job
with no level 0 (as quant_attn, n 1024 → 4) and a mult_gauss job with its own. Both dirs are judged; the
report over the two reads the judgments of both and measures uni_quant against the clean job.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, compose_cfg
from scipy import stats as scipy_stats

from degrade.job.runner import run_job
from degrade.judge.config import compose_judge_config
from degrade.judge.runner import judge_run
from degrade.scoring.measures import measure_of

sys.path.insert(0, str(ROOT / "tests" / "judge"))
from chat_server import serve  # noqa: E402

pytestmark = pytest.mark.slow  # three jobs, two judged dirs and a report subprocess
COMMON = (
    "model=tiny_random",
    "experiment=iq",
    "experiment.limit=4",
    "experiment.n_rep=2",
    "generation=sampling",
    "generation.max_new_tokens=8",
)
JOBS = {"clean/none": ("degradation=none",), "sweep/quant": ("degradation=uni_quant", "degradation.levels=[16,4]")}
JOBS["sweep/gauss"] = ("degradation=mult_gauss", "degradation.levels=[0,0.5,2]")
THRESHOLD = 0.8


def verdict(body: dict) -> str:
    """A judge whose answer follows the text it reads, so its ratings vary from record to record."""
    digest = hashlib.sha256(body["messages"][-1]["content"].encode()).digest()[0]
    return json.dumps({"knows_method": digest % 2 == 0, "applies_method": digest % 3 == 0, "answer_correct": True})


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("study")
    for name, overrides in JOBS.items():
        run_job(compose_cfg(*COMMON, *overrides), root / name)
    server = serve(verdict)
    for run in ("clean", "sweep"):
        judge_run(
            compose_judge_config(
                f"run={root / run}",
                "judge/rubric=reasoning",
                "judge/backend=openai",
                "judge.backend.model=j",
                f"judge.backend.base_url={server.url}",
                "judge.backend.concurrency=1",
            )  # fmt: skip
        )
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report.py"), "clean", "sweep", "--out", "out", "--stats", "study"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return root, done


def cohen(level: pd.Series, clean: pd.Series) -> float:
    n, n0 = len(level), len(clean)
    pooled = (((n - 1) * level.var() + (n0 - 1) * clean.var()) / (n + n0 - 2)) ** 0.5
    diff = level.mean() - clean.mean()
    return diff / pooled if pooled > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))


def directed(d: float, better: str) -> float:
    return {"higher": -d, "lower": d}.get(better, abs(d))


def crossing(levels: list[float], effects: list[float], log_axis: bool) -> float:
    """The thesis's critical level: the first where d ≥ 0.8, linear in the level between its neighbours."""
    prev_x, prev_e = 0.0, 0.0
    for x, e in zip(levels[1:], effects[1:]):
        if e < THRESHOLD:
            prev_x, prev_e = x, e
            continue
        if math.isinf(e) or (prev_x == 0 and log_axis):
            return x
        return prev_x + (THRESHOLD - prev_e) / (e - prev_e) * (x - prev_x)
    return math.nan


def test_the_study_table_recomputed_from_the_records(report) -> None:
    root, done = report
    assert done.returncode == 0, done.stdout + done.stderr
    out = root / "out"
    table = pd.read_csv(out / "stats.csv")
    records = pd.read_parquet(out / "all_records.parquet")
    clean = records[records["job_dir"].str.startswith("clean")]
    checked = 0
    for method, levels in (("uni_quant", [0.0, 16.0, 4.0]), ("mult_gauss", [0.0, 0.5, 2.0])):
        mine = records[records["degradation_method"] == method]
        if method == "uni_quant":
            assert (mine["level_value"] != 0).all()  # the job has no clean level of its own
            mine = pd.concat([clean, mine])
        for measure in ("tokens_out", "repetition_rate", "correct"):
            rows = table[(table["degradation_method"] == method) & (table["measure"] == measure)]
            if rows.empty:
                continue
            better = measure_of(measure).better
            by_level = [mine[mine["level_value"] == lv][measure].astype(float) for lv in levels]
            means = np.array([v.mean() for v in by_level])
            effects = [directed(cohen(v, by_level[0]), better) for v in by_level]
            assert rows["level_value"].tolist() == levels
            assert rows["mean"].tolist() == pytest.approx(means.tolist())
            assert rows["d"].tolist() == pytest.approx(effects)
            expected = crossing(levels, effects, log_axis=method == "uni_quant")
            assert rows["critical_level"].iloc[0] == pytest.approx(expected, nan_ok=True)
            if np.ptp(means) > 0:
                alternative = {"higher": "less", "lower": "greater"}.get(better, "two-sided")
                exact = scipy_stats.permutation_test(
                    (np.arange(len(levels), dtype=float), means),
                    lambda x, y: scipy_stats.spearmanr(x, y).statistic,
                    permutation_type="pairings",
                    alternative=alternative,
                    n_resamples=np.inf,
                )
                assert rows["spearman_rho"].iloc[0] == pytest.approx(exact.statistic)
                assert rows["spearman_p"].iloc[0] == pytest.approx(exact.pvalue)
            checked += 1
    assert checked >= 4


def test_stats_md_says_the_analysis_and_the_baseline_and_the_judge_joins_from_both_dirs(report) -> None:
    root, _ = report
    text = (root / "out" / "stats.md").read_text(encoding="utf-8")
    assert "Analysis: **study**" in text and "The unit of d is the record" in text
    baselines = text.split("## Shared clean baselines")[1].split("\n## ")[0]
    assert "uni_quant" in baselines and "clean/none" in baselines and "mult_gauss" not in baselines
    table = pd.read_csv(root / "out" / "stats.csv")
    judged = table[table["measure"] == "judge_reasoning_knows_method"]
    assert set(judged["degradation_method"]) == {"none", "uni_quant", "mult_gauss"}
    quant = judged[judged["degradation_method"] == "uni_quant"]
    assert quant["level_value"].tolist() == [0, 16, 4] and quant["n"].tolist() == [8, 8, 8]
    assert "baseline" in table and set(table.loc[table["degradation_method"] == "uni_quant", "baseline"]) == {
        "clean/none"
    }
