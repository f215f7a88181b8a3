"""Aggregate every record under run or sweep dirs and in result files: one Parquet, a summary table, PNG plots.

python scripts/report.py multirun/2026-11-22/02-49-24            # writes multirun/…/report/
python scripts/report.py outputs/2026-11-22/02-49-24 --out /tmp/report
python scripts/report.py old/outputs_*.json multirun/2026-11-22/02-49-24   # the original study's files beside ours

The report dir gets all_records.parquet (every record, with its job_dir), summary.csv,
summary.md and one PNG per metric.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from degrade.analysis.report import write_report  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402
from degrade.records.collect import report_dir  # noqa: E402

log = logging.getLogger("degrade")


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
    args = parser.parse_args(argv)
    # Our own progress at INFO; third-party chatter (matplotlib's font cache) only when it matters.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s")
    log.setLevel(logging.INFO)
    try:
        inputs = args.paths[0] if len(args.paths) == 1 else args.paths
        paths = write_report(inputs, args.out or report_dir(args.paths))
    except DegradeError as exc:
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
