"""Hydra's submitit launchers, with a sweep that outlives a job that never returns.

A job of a sweep that SLURM cancels (``scancel``), or that dies past its last requeue, returns no
result: Hydra's own submitit launcher then raises while collecting the sweep's results, with a
traceback, before the other jobs are waited for and before the sweep's summary. These launchers
collect every job; one that returned nothing is reported as failed to the sweep (its status file
in ``.sweep/``, with SLURM's state), so the summary names it and the command exits 1, as for a job
that failed by itself. ``hydra/launcher=slurm_cpu``, ``slurm_gpu`` and ``local_gpu`` use them (Hydra takes a
launcher only from the ``hydra_plugins`` package, hence this place).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import HydraException
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher as _Local
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _Slurm
from omegaconf import OmegaConf

from degrade.cli import sweep_summary

log = logging.getLogger(__name__)
_ENDED = ("done", "failed", "interrupted", "dry_run")


def _executor(launcher: BaseSubmititLauncher) -> Any:
    """The submitit executor for ``launcher``'s parameters, as Hydra's launcher builds it."""
    import submitit

    params = dict(launcher.params)
    folder = params.pop("submitit_folder")
    init = (
        {f"{launcher._EXECUTOR}_max_num_timeout": params.pop("max_num_timeout")} if "max_num_timeout" in params else {}
    )
    executor = submitit.AutoExecutor(cluster=launcher._EXECUTOR, folder=folder, **init)
    known = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in known else f"{launcher._EXECUTOR}_{k}": v for k, v in params.items()})
    return executor


def _report_lost(sweep_dir: Path, num: int, overrides: list[str], job: Any, exc: Exception) -> None:
    """Tell the sweep that job ``num`` ended without a result, unless it reported its own end."""
    run = os.environ.get(sweep_summary.RUN_ID_ENV)
    if not run:
        return
    own = sweep_summary.status_dir(sweep_dir) / f"{num}.json"
    try:
        reported = json.loads(own.read_text(encoding="utf-8"))
        if reported.get("run") == run and reported.get("status") in _ENDED:
            return
    except (OSError, ValueError):
        pass
    state = getattr(job, "state", "UNKNOWN")
    error = f"{launcher_name(job)} job {job.job_id} ended {state} with no result"
    log.warning("job #%d: %s (%s)", num, error, str(exc).splitlines()[0][:200])
    sweep_summary.write_status(sweep_dir, sweep_summary.JobStatus(run, num, overrides, "failed", error))


def launcher_name(job: Any) -> str:
    return "SLURM" if type(job).__name__.startswith("Slurm") else "submitit"


class _Collecting(BaseSubmititLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Submit every job as one array, then wait for each; a job that returns nothing is a failed job."""
        from submitit.core.utils import FailedJobError, UncompletedJobError

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        for num, overrides in zip(nums, job_overrides):
            log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        args = [
            (list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", self._singleton_state())
            for n, o in zip(nums, job_overrides)
        ]
        try:
            jobs = _executor(self).map_array(self, *zip(*args))
        except (subprocess.CalledProcessError, FailedJobError) as exc:  # sbatch's refusal, before any job ran
            said = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else f"exit {exc}"
            raise HydraException(
                f"hydra/launcher: the cluster refused the sweep ({said}); ask for what it has "
                "(hydra.launcher.partition, gpus_per_node, cpus_per_task, mem_gb, timeout_min)"
            ) from None
        returns = []
        for num, overrides, job in zip(nums, job_overrides, jobs):
            try:
                returns.append(job.results()[0])
            except (UncompletedJobError, FailedJobError) as exc:
                _report_lost(sweep_dir, num, list(overrides), job, exc)
                returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED))
        return returns

    @staticmethod
    def _singleton_state() -> Any:
        from hydra.core.singleton import Singleton

        return Singleton.get_state()


class SlurmLauncher(_Collecting, _Slurm):
    """Hydra's SLURM launcher (``submitit_slurm``), collecting every job of the sweep."""


class LocalLauncher(_Collecting, _Local):
    """Hydra's local submitit launcher (``submitit_local``), collecting every job of the sweep."""
