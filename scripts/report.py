"""Aggregate every record under a run or sweep dir: one Parquet, a summary table, PNG plots.

python scripts/report.py multirun/2026-11-22/02-49-24            # writes multirun/…/report/
python scripts/report.py outputs/2026-11-22/02-49-24 --out /tmp/report

The report dir gets all_records.parquet (every record, with its job_dir), summary.csv,
summary.md and one PNG per metric.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from degrade.errors import DegradeError  # noqa: E402
from degrade.report import write_report  # noqa: E402

log = logging.getLogger("degrade")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a job dir, or a run or sweep dir with job dirs below it")
    parser.add_argument("--out", type=Path, default=None, help="where the report goes (default: DIR/report)")
    args = parser.parse_args(argv)
    # Our own progress at INFO; third-party chatter (matplotlib's font cache) only when it matters.
    logging.basicConfig(level=logging.WARNING, format="[%(levelname)s] %(message)s")
    log.setLevel(logging.INFO)
    try:
        paths = write_report(args.dir, args.out)
    except DegradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(paths["summary_md"].read_text(encoding="utf-8"))
    for path in [paths["records"], paths["summary_csv"], paths["summary_md"], *paths["plots"]]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
