"""Aggregate every record under run or sweep dirs and in result files: one Parquet, a summary table, PNG plots.

python scripts/report.py multirun/2026-11-22/02-49-24            # writes multirun/…/report/
python scripts/report.py outputs/2026-11-22/02-49-24 --out /tmp/report
python scripts/report.py old/outputs_*.json multirun/2026-11-22/02-49-24   # the original study's files beside ours
python scripts/report.py study/results multirun/2026-11-22/02-49-24 --stats study   # the thesis's analysis

The report dir gets all_records.parquet (every record, with its job_dir), summary.csv,
summary.md and one PNG per metric.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from degrade.analysis.report import write_report  # noqa: E402
from degrade.analysis.stats import analysis  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402
from degrade.records.collect import parse_legacy_models, report_dir  # noqa: E402
from degrade.records.jobdir import cannot_write  # noqa: E402

log = logging.getLogger("degrade")


def out_problem(out: Path, *, given: bool) -> str | None:
    """Why the report cannot be written to ``out``, in one line; None when it can."""
    how = "give another --out" if given else "pass --out DIR to write it elsewhere"
    if out.exists() and not out.is_dir():
        return f"--out {out}: a file, and the report is a dir of files; {how}"
    reason = cannot_write(out)
    return f"{out}: the report cannot be written there ({reason}); {how}" if reason else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "paths",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="a job dir, a run or sweep dir with job dirs below it, or a result file (.json array, the original "
        "study's included, or .jsonl journal); several are read into one table",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the report goes (default: report/ in the first dir given)"
    )
    parser.add_argument(
        "--stats",
        default="default",
        metavar="ANALYSIS",
        help="default (as documented) or study (the thesis's: d signed in the direction of damage, the crossing "
        "interpolated in the level's own unit, Spearman over the per-level means)",
    )
    parser.add_argument(
        "--legacy-model",
        action="append",
        default=[],
        metavar="[PATH=]MODEL",
        help="the model name of the study's records whose model_name is a local path (PATH=MODEL for one path), "
        "so they join ours; repeatable",
    )
    args = parser.parse_args(argv)
    try:  # the options' bad values stop here, in one line, before anything is written
        how, legacy_models = analysis(args.stats).name, parse_legacy_models(args.legacy_model)
    except DegradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    # Our own progress at INFO; third-party chatter (matplotlib's font cache) only when it matters.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s")
    log.setLevel(logging.INFO)
    out = args.out or report_dir(args.paths)
    problem = out_problem(out, given=args.out is not None)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    made = next((p for p in reversed([out.absolute(), *out.absolute().parents]) if not p.exists()), None)
    try:
        paths = write_report(
            args.paths[0] if len(args.paths) == 1 else args.paths, out, stats=how, legacy_models=legacy_models
        )
    except BaseException as exc:
        if made is not None:  # a report that fails leaves no part of itself behind
            shutil.rmtree(made, ignore_errors=True)
        if not isinstance(exc, DegradeError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(paths["summary_md"].read_text(encoding="utf-8"))
    for path in [
        paths["records"],
        paths["summary_csv"],
        paths["summary_md"],
        paths["stats_csv"],
        paths["stats_md"],
        *paths["plots"],
        paths["page"],
    ]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
