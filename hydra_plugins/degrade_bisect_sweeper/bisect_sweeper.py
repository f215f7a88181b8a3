"""The ``bisect`` sweeper: per combination of the swept options, bisect the level where a measure crosses a threshold.

Each probe is one ordinary job, ``<the combination's overrides> degradation.levels=[x]
experiment.n_rep=n``, launched through the configured launcher (on SLURM each probe is a job)
and named by its overrides, so re-running the same search with the same ``hydra.sweep.dir``
finds every finished probe and generates nothing again. The searches of a grid advance
together: each round launches one batch holding the next probe of every unfinished search.
The search itself is :mod:`degrade.search.bisection`; reading and writing, :mod:`degrade.search.files`.
"""

# No `from __future__ import annotations`: Hydra's plugin scan runs this module outside sys.modules, where
# dataclasses cannot resolve string annotations.
import itertools
import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from degrade.cli.sweep_summary import RUN_ID_ENV, one_line, read_statuses
from degrade.errors import ConfigError, DegradeError
from degrade.methods import METHODS, level_axis
from degrade.search.bisection import Axis, Bisection, Criterion
from degrade.search.files import Search, SearchRecord, check_measure, detail, measure_job, write_results

log = logging.getLogger(__name__)

OWNED = ("degradation.levels", "degradation.range")  # the sweeper sets the level of every probe itself


class BisectSweeper(Sweeper):
    """Hydra's entry to the search (settings: ``conf/hydra/sweeper/bisect.yaml``)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__()
        self.settings = OmegaConf.to_container(OmegaConf.create(settings), resolve=True)
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[Search]:
        try:
            searches = self.plan(arguments)
        except DegradeError as exc:  # bad settings: one line, before anything is written
            log.error("%s", exc)
            raise SystemExit(exc.exit_code) from None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        job_num = 0
        while wanted := [(s, level) for s in searches for level in s.wanted()]:
            batch = list(dict.fromkeys(tuple(s.job(level)) for s, level in wanted))
            self.validate_batch_is_legal(batch)
            returns = self.launcher.launch([list(b) for b in batch], initial_job_idx=job_num)
            dirs = {b: self.job_dir(ret) for b, ret in zip(batch, returns)}
            errors = self.failures(sweep_dir, batch, returns, job_num)
            job_num += len(batch)
            for search in searches:
                mine = [tuple(search.job(lvl)) for s, lvl in wanted if s is search]
                if any(b in errors for b in mine):  # a probe that did not run now is not decided on older records
                    search.fail(next(errors[b] for b in mine if b in errors))
                    continue
                self.take(search, {lvl: dirs[tuple(search.job(lvl))] for s, lvl in wanted if s is search})
            write_results(sweep_dir, self.summary(arguments), [s.record for s in searches])
        for search in searches:
            answer = search.record.answer or {}
            name = search.record.label
            level = answer.get("level")
            say = log.error if search.failed else log.info
            say(
                "breakpoint %s: %s%s (%s); %d jobs, %d cells",
                name,
                "failed" if search.failed else answer.get("status"),
                "" if level is None else f" at {level:g}",
                search.failed or answer.get("message"),
                search.record.jobs,
                search.record.cells,
            )
        log.info("search path and answers: %s", sweep_dir / "breakpoint.md")
        return searches

    def take(self, search: Search, dirs: dict[float, Path]) -> None:
        """Tell ``search`` what its probes of this round measured (the clean level first)."""
        if not dirs:
            return
        measure = str(self.settings["measure"])
        bisection = search.bisection
        try:
            measured = {level: measure_job(path, measure, level) for level, path in dirs.items()}
        except ConfigError as exc:  # the experiment does not score the measure: every search would say the same
            log.error("%s", exc)
            raise SystemExit(exc.exit_code) from None
        except DegradeError as exc:  # a probe's job failed: its own line is in the sweep's summary
            search.fail(str(exc))
            return
        if bisection.criterion.needs_clean and bisection.clean is None and 0.0 in measured:
            if measured[0.0].value == 0:
                error = ConfigError(
                    "hydra.sweeper.threshold.kind",
                    f"relative: the clean model's {measure} is 0 ({dirs[0.0]}), so no fraction of it can be crossed; "
                    "give threshold.kind=absolute",
                )
                log.error("%s", error)
                raise SystemExit(error.exit_code)
            bisection.tell_clean(measured[0.0].value)
            search.clean_dir = str(dirs[0.0])
        for level in bisection.pending():
            if level in measured:
                bisection.tell(level, measured[level].value, **detail(measured[level], dirs[level]))
        search.record.update(bisection, search.clean_dir)

    @staticmethod
    def failures(sweep_dir: Path, batch: list[tuple[str, ...]], returns: list[Any], first: int) -> dict[tuple, str]:
        """The probes of this batch that did not end ``done`` in this run, with their one-line error.

        Read from the status each job reported for this run (:mod:`degrade.cli.sweep_summary`), which every launcher's
        job writes: a job refused now (its dir holds records of other settings) leaves its old ``done``
        metadata in place, so the dir alone cannot tell.
        """
        statuses = {st.num: st for st in read_statuses(sweep_dir, os.environ.get(RUN_ID_ENV, ""))}
        errors = {}
        for num, (key, ret) in enumerate(zip(batch, returns), start=first):
            status, level = statuses.get(num), next(k for k in key if k.startswith("degradation.levels="))
            if ret.status == JobStatus.FAILED:  # raised through the task function: the launcher kept the exception
                errors[key] = f"probe #{num} {level} failed: {one_line(ret._return_value)}"
            elif status is not None and status.status != "done":
                errors[key] = f"probe #{num} {level} {status.status}: {status.error}"
        return errors

    @staticmethod
    def job_dir(ret: Any) -> Path:
        """Where a launched probe wrote: its runtime output dir, as the job's own Hydra config says."""
        return Path(str(ret.hydra_cfg.hydra.runtime.output_dir))

    def plan(self, arguments: list[str]) -> list[Search]:
        """One search per combination of the swept options, each checked before any job runs."""
        s = self.settings
        check_measure(str(s["measure"]))
        threshold = s.get("threshold") or {}
        criterion = Criterion(
            str(s["measure"]), str(threshold.get("kind")), float(threshold.get("value")), str(s["direction"])
        )
        searches = []
        for point in self.grid(arguments):
            cfg = self.hydra_context.config_loader.load_sweep_config(master_config=self.config, sweep_overrides=point)
            method = str(cfg.degradation.method)
            if method not in METHODS:
                raise ConfigError("degradation.method", f"unknown {method!r}; allowed: {', '.join(sorted(METHODS))}")
            if any(cfg.degradation.range.get(k) is not None for k in ("min", "max", "steps")):
                raise ConfigError(
                    "degradation.range",
                    f"set by the chosen options ({cfg.degradation.name}); the bisect sweeper sets each probe's level "
                    "itself: choose degradation= and param_group= instead of a variant",
                )
            if cfg.dry_run:
                raise ConfigError("dry_run", "true: the bisect sweeper decides from measured records; run without it")
            n_rep = int(s["n_rep"]) if s.get("n_rep") is not None else int(cfg.experiment.n_rep)
            if n_rep < 1:
                raise ConfigError("hydra.sweeper.n_rep", f"{n_rep}; must be null (the experiment's) or an integer ≥ 1")
            label = f"{cfg.degradation.name} on {cfg.param_group.name}"
            searches.append(self.search(label, point, method, criterion, n_rep))
        return searches

    def search(self, label: str, point: list[str], method: str, criterion: Criterion, n_rep: int) -> Search:
        s, meth, axis = self.settings, METHODS[method], level_axis(method)
        key, ends = ("hydra.sweeper.lo", [s.get("lo"), s.get("hi")])  # lo and hi, when given, for every search
        if ends == [None, None]:
            key, ends = f"hydra.sweeper.ranges.{method}", (s.get("ranges") or {}).get(method)
        numbers = isinstance(ends, list) and all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in ends)
        if not (numbers and len(ends) == 2):
            raise ConfigError(
                key,
                f"{ends!r}; give the range searched for {method} as hydra.sweeper.ranges.{method}=[lo,hi], "
                "or hydra.sweeper.lo and hydra.sweeper.hi for every search",
            )
        ends = [float(e) for e in ends]
        outside = [e for e in ends if not meth.accepts(e)]
        if outside:
            raise ConfigError(key, f"{outside[0]:g} outside the domain of {method}: {meth.domain}")
        least, most = sorted(ends, key=axis.damage_order)
        bisect_axis = Axis(least, most, axis.log, meth.integer_levels, float(s["tolerance"]))
        bisection = Bisection(bisect_axis, criterion, int(s["max_probes"]))
        level_overrides = [f"experiment.n_rep={n_rep}"] if s.get("n_rep") is not None else []
        axis_info = {
            "log": axis.log,
            "damage_grows_with_level": axis.damage_grows_with_level,
            "least": least,
            "most": most,
        }
        return Search(point, bisection, SearchRecord(label, point, method, axis_info, n_rep), level_overrides)

    def grid(self, arguments: list[str]) -> list[list[str]]:
        """The combinations of ``params`` and the command line's overrides (discrete sweeps only)."""
        params = [f"{k}={v}" for k, v in (self.settings.get("params") or {}).items()]
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        axes: dict[str, list[str]] = {}
        for override in parser.parse_overrides([*params, *arguments]):
            key = override.get_key_element()
            if override.key_or_group.startswith(OWNED):
                raise ConfigError(
                    override.key_or_group,
                    "set by the bisect sweeper for each probe; give the searched range as hydra.sweeper.lo and "
                    "hydra.sweeper.hi (or hydra.sweeper.ranges.<method>=[lo,hi])",
                )
            if override.key_or_group == "experiment.n_rep" and self.settings.get("n_rep") is not None:
                raise ConfigError("experiment.n_rep", "the bisect sweeper sets it from hydra.sweeper.n_rep; give that")
            if override.is_sweep_override():
                if not override.is_discrete_sweep():
                    raise ConfigError(key, "the bisect sweeper takes lists of options (a,b) or range(), not intervals")
                axes[key] = [f"{key}={v}" for v in override.sweep_string_iterator()]
            else:
                axes[key] = [f"{key}={override.get_value_element_as_str()}"]
        return [list(point) for point in itertools.product(*axes.values())]

    def summary(self, arguments: list[str]) -> dict[str, Any]:
        """The sweep's settings, as ``breakpoint.json`` keeps them."""
        s = self.settings
        threshold = s.get("threshold") or {}
        return {
            "criterion": {"measure": s["measure"], "direction": s["direction"], **threshold},
            "tolerance": s["tolerance"],
            "max_probes": s["max_probes"],
            "n_rep": s.get("n_rep"),
            "ranges": s.get("ranges"),
            "lo": s.get("lo"),
            "hi": s.get("hi"),
            "arguments": list(arguments),
        }
