"""The benchmark's arithmetic, its table and its progress lines, on known numbers (nothing timed)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from degrade.benchmark.cell_overhead import overhead_share
from degrade.benchmark.context import QUICK, Context
from degrade.benchmark.driver import run_part
from degrade.benchmark.progress import Progress
from degrade.benchmark.table import format_table
from degrade.benchmark.timing import TARGETS, median_ratio, result


@pytest.mark.parametrize(
    ("name", "ratio", "met"),
    [
        ("generate_efficiency", 0.95, True),
        ("generate_efficiency", 0.9499, False),
        ("cell_overhead_share", 0.05, True),
        ("cell_overhead_share", 0.0501, False),
        ("multirun_speedup", 1.65, True),
        ("restore_vs_copy", 0.76, False),
    ],
)
def test_a_ratio_is_met_on_the_side_of_its_target(name: str, ratio: float, met: bool) -> None:
    entry = result(name, ratio, {"x": 1})
    assert entry["met"] is met
    assert entry["target"] == f"{TARGETS[name][0]} {TARGETS[name][1]}"
    assert entry["raw"] == {"x": 1}


def test_paired_timings_are_summarised_by_their_medians() -> None:
    # one outlier on each side moves neither median
    assert median_ratio([1.0, 2.0, 9.0], [4.0, 0.1, 4.0]) == pytest.approx(0.5)


def test_overhead_share_is_restore_damage_record_and_views_over_the_whole_job() -> None:
    timings = {"restore_s": 1.0, "damage_s": 2.0, "generate_s": 90.0, "record_s": 0.5, "views_s": 1.5, "total_s": 100.0}
    assert overhead_share(timings) == pytest.approx(0.05)
    # a job whose cells did not run writes only views_s and total_s
    assert overhead_share({"cells": 0, "views_s": 0.2, "total_s": 4.0}) == pytest.approx(0.05)


def test_the_table_has_a_row_per_ratio_in_target_order_and_names_a_failed_part() -> None:
    report = {
        "mode": "full",
        "wall_s": 301.4,
        "restore_vs_copy": {**result("restore_vs_copy", 0.76, {"foreign_cpu_share": 0.12, "part_wall_s": 9.6})},
        "generate_efficiency": result("generate_efficiency", 1.0123, {"foreign_cpu_share": 0.0, "part_wall_s": 31.0}),
        "resume_skip_share": {"error": "RuntimeError: scripts/run.py exited 2", "raw": {"part_wall_s": 3.0}},
    }
    lines = format_table(report).splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["generate_efficiency", "restore_vs_copy", "resume_skip_share"]
    assert lines[1].split() == ["generate_efficiency", "1.0123", ">=", "0.95", "met", "0%", "31", "s"]
    assert lines[2].split()[1:6] == ["0.7600", ">=", "0.8", "MISSED", "12%"]
    assert "FAILED" in lines[3] and "exited 2" in lines[3]
    assert lines[-1] == "wall 301 s (full run)"


def test_a_failed_part_is_reported_as_failed_with_its_error_line(tmp_path: Path, caplog) -> None:
    def broken(ctx: Context) -> dict:
        raise RuntimeError("no model here\nsecond line")

    caplog.set_level(logging.INFO, logger="degrade.benchmark")
    with Progress() as progress:
        entry = run_part("resume_skip_share", broken, Context(QUICK, None, tmp_path, progress))
    assert entry["error"] == "RuntimeError: no model here"
    assert {"part_wall_s", "foreign_cpu_s", "foreign_cpu_share"} <= set(entry["raw"])
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith("resume_skip_share: start") for m in messages)
    assert any("resume_skip_share: failed in" in m for m in messages)
    assert not any("resume_skip_share: done" in m for m in messages)


def test_a_long_part_is_never_silent(caplog) -> None:
    caplog.set_level(logging.INFO, logger="degrade.benchmark")
    with Progress(every=0.1) as progress, progress.part("cell_overhead_share"):
        progress.doing("the job")
        time.sleep(1.0)
    beats = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert beats and all(m.startswith("[") and "cell_overhead_share: still running" in m for m in beats)
    assert beats[-1].endswith("s in, the job)")


def test_a_sweeps_wall_time_is_split_into_its_jobs_parts_and_the_rest() -> None:
    from degrade.benchmark.vllm_speedup import breakdown

    first = {"process_start_s": 4.0, "load_s": 2.0, "engine_start_s": 7.5, "reload_s": 1.0, "generate_s": 30.0}
    second = {"process_start_s": 0.0, "load_s": 0.0, "engine_start_s": 0.0, "reload_s": 1.5, "generate_s": 20.0}
    for job in (first, second):
        job.update(restore_s=0.25, damage_s=0.25, record_s=0.1, views_s=0.4)
    parts = breakdown(70.0, [first, second])
    assert parts == {
        "process_start": 4.0,
        "model_load": 2.0,
        "engine_start": 7.5,
        "hand_over": 2.5,
        "restore_damage": 1.0,
        "generation": 50.0,
        "writing": 1.0,
        "other": 2.0,
    }
    assert sum(parts.values()) == pytest.approx(70.0)
