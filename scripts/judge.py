"""Judge the records of a run or sweep against a rubric, with a local model or an OpenAI-compatible server.

python scripts/judge.py run=multirun/2026-11-22/02-49-24 judge/rubric=language
python scripts/judge.py run=outputs/my_iq_run judge/rubric=reasoning judge.sample=5
python scripts/judge.py run=… judge/backend=openai judge.backend.model=Qwen/Qwen2.5-7B-Instruct judge.dry_run=true

Exit codes: 0 done, 1 some records could not be answered by the server (run again), 2 bad input, 130 Ctrl-C.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

try:
    import hydra
    from omegaconf import DictConfig

    from degrade.cli.callbacks import one_line_errors
    from degrade.errors import DegradeError
    from degrade.judge.config import register_judge_configs, to_judge_config
    from degrade.judge.frame import log_agreement
    from degrade.judge.runner import judge_run
except KeyboardInterrupt:  # Ctrl-C while torch and transformers import: one line, no traceback
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}][ERROR] interrupted while starting: nothing was judged\n")
    sys.exit(130)

log = logging.getLogger("degrade.judge")
register_judge_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="judge")
def main(cfg: DictConfig) -> None:
    try:
        config = to_judge_config(cfg)
        summary = judge_run(config)
    except DegradeError as exc:
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted: every finished batch of judgments is kept; run the same command to continue")
        sys.exit(130)
    if config.judge.dry_run:
        return
    rate = summary.judged / summary.seconds * 60 if summary.seconds else 0.0
    log.info(
        "done: %d judged (%d ok, %d failed, %d needed a re-ask), %d already judged, %.1f records/min",
        summary.judged, summary.ok, summary.failed, summary.retried, summary.skipped, rate,
    )  # fmt: skip
    log_agreement(Path(config.run), config.judge.rubric)
    if summary.unanswered:
        log.error(
            "%d records got no answer from the server (last: %s): run the same command to judge them",
            summary.unanswered, summary.errors[-1],
        )  # fmt: skip
        sys.exit(1)


if __name__ == "__main__":
    with one_line_errors():
        main()
