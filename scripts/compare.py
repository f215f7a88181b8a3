"""Compare the answers of two runs of the same prompts: identical share per level, first differing token.

python scripts/compare.py outputs/…/transformers outputs/…/vllm     # e.g. two backends, greedy
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from degrade.analysis.compare import compare  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left", type=Path, help="a job dir, or a run or sweep dir with job dirs below it")
    parser.add_argument("right", type=Path, help="the same, for the other run")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer dir or hub id (default: the embedded SmolLM2's)")
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from degrade.model.loading import embedded_dir

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or embedded_dir())
    try:
        table = compare(args.left, args.right, tokenizer)
    except DegradeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
