"""Run one degrade job (or a sweep with --multirun). See the README for recipes.

python scripts/run.py
python scripts/run.py experiment=iq degradation=ablation param_group=attn_only
python scripts/run.py --multirun degradation=mult_gauss,ablation param_group=attn,mlp
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

try:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf

    from degrade.cli import sweep_summary
    from degrade.cli.callbacks import one_line_errors
    from degrade.cli.joblog import JobFiles
    from degrade.cli.rerun import is_saved_config, rerun_args
    from degrade.config.compose import register_configs, settle_levels, to_typed
    from degrade.job.runner import run_job
except KeyboardInterrupt:  # Ctrl-C while torch and transformers import: one line, no traceback
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}][ERROR] interrupted while starting: nothing was run or written\n")
    sys.exit(130)

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    hc = HydraConfig.get()
    out_dir = Path(hc.runtime.output_dir)
    in_sweep = hc.mode == RunMode.MULTIRUN
    overrides = list(hc.overrides.task)
    settle_levels(cfg, overrides)  # a typed level list or range beats a preset's: what was typed is what runs
    rerun = is_saved_config(hc.runtime.config_sources, out_dir)  # the job's own .hydra/ is its source: kept
    files = JobFiles(  # written by the job when it starts writing, as Hydra would have written them
        out_dir,
        {}
        if rerun
        else {
            "config.yaml": OmegaConf.to_yaml(cfg),
            "hydra.yaml": OmegaConf.to_yaml(HydraConfig.instance().cfg),
            "overrides.yaml": OmegaConf.to_yaml(hc.overrides.task),
        },
        sweep_job=in_sweep,
        fallback_log=sweep_summary.crash_log(Path(hc.sweep.dir), hc.job.num) if in_sweep else None,
    )
    if in_sweep:
        sweep_summary.report(Path(hc.sweep.dir), hc.job.num, overrides, out_dir)
    outcome = sweep_summary.run_guarded(
        lambda: run_job(to_typed(cfg), out_dir, OmegaConf.to_yaml(cfg, resolve=True), on_start=files.start),
        files,
    )
    if in_sweep:
        sweep_summary.report(Path(hc.sweep.dir), hc.job.num, overrides, out_dir, outcome)
    if outcome.status == "interrupted" or (outcome.exit_code and not in_sweep):
        sys.exit(outcome.exit_code)  # Ctrl-C or SIGTERM stops a whole sweep; any other failure stops only its job


if __name__ == "__main__":
    sys.argv[1:] = rerun_args(sys.argv[1:])  # --config-path JOB/.hydra: the job runs again in JOB
    with one_line_errors():
        main()
