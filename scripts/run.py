"""Run one degrade job (or a sweep with --multirun). See the README for recipes.

python scripts/run.py
python scripts/run.py experiment=iq degradation=ablation param_group=attn_only
python scripts/run.py --multirun degradation=mult_gauss,ablation param_group=attn,mlp
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from degrade.config import register_configs, to_run_config  # noqa: E402
from degrade.errors import DegradeError  # noqa: E402
from degrade.runner import run_job  # noqa: E402
from degrade.store import check_output_dir  # noqa: E402

log = logging.getLogger("degrade")
register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_cfg = to_run_config(cfg)
        summary = run_job(run_cfg, out_dir, OmegaConf.to_yaml(cfg, resolve=True))
    except DegradeError as exc:
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted: every finished batch is kept in %s; run the same command to continue", out_dir)
        sys.exit(130)
    if summary.plan is not None:
        log.info("dry run: nothing generated, no file written")
        return
    log.info(
        "done: %d records (%d generated, %d already there) in %.1f s → %s",
        summary.records,
        summary.generated,
        summary.skipped,
        summary.seconds,
        summary.out_dir,
    )


def preflight(argv: list[str]) -> None:
    """Refuse an output dir that cannot be written before Hydra tries to create it."""
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    try:
        for d in dirs or ["."]:
            check_output_dir(Path(d))
    except DegradeError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    preflight(sys.argv[1:])
    main()
