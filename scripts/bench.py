"""Benchmark degrade on the embedded SmolLM2: its ratios against their targets, written as JSON.

    python scripts/bench.py --out bench.json            # the full run (~5 min on 2 idle CPU cores)
    python scripts/bench.py --out bench.json --quick    # smaller sizes (~1½ min); ratios not comparable

In-process parts (generation, restore, the default job) share one loaded model; process-level
parts (multirun, resume) run ``scripts/run.py`` as a user would. Job steps are timed from each
job's own metadata.json. The parts live in ``degrade/benchmark/``, one module per ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from degrade.benchmark.context import FULL, QUICK
from degrade.benchmark.driver import PARTS, run
from degrade.benchmark.table import format_table
from degrade.records.jobdir import cannot_write
from degrade.records.jsontext import dumps


def out_problem(out: Path) -> str | None:
    """Why the JSON cannot be written to ``out``, or None (its dir is made and probed, then removed if new)."""
    if out.is_dir():
        return "a dir, not a file"
    reason = cannot_write(out.parent)
    if reason is None and out.exists() and not os.access(out, os.W_OK):
        reason = "the file is not writable"
    return f"cannot be written ({reason})" if reason else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~1½ min); ratios not comparable")
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run only this part (repeatable)")
    args = parser.parse_args()
    problem = out_problem(args.out)
    if problem:  # before minutes of measuring
        print(f"error: --out {args.out}: {problem}; give another --out (a file name for the JSON)", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("degrade.benchmark").setLevel(logging.INFO)  # the progress lines
    report = run(QUICK if args.quick else FULL, quick=args.quick, only=args.only)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(report, indent=1), encoding="utf-8")
    print(format_table(report))
    print(f"→ {args.out}")
    if any("error" in report[name] for name in PARTS if name in report):
        sys.exit(1)


if __name__ == "__main__":
    main()
