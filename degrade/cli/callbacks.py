"""Where degrade meets Hydra's command line: checks before Hydra writes anything, a sweep's summary, one-line errors.

:class:`CommandCallback` is registered in ``conf/hydra/default.yaml``. Before a run or a sweep
starts it refuses, in one line, what would otherwise fail later with a traceback (an output
dir that cannot be created, a SLURM launcher where there is no SLURM); at the start of a
sweep it picks the run id its jobs report under; at the end it prints the sweep's summary
and exits 1 when a job failed. :func:`one_line_errors` wraps the entry script, so that
Hydra's own errors (a misspelt group option or key, a value of the wrong type) and a
Ctrl-C during start-up are each one line too.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import HydraException, MissingConfigException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from degrade.cli import dirname, sweep_summary
from degrade.cli.dirname import given_dir
from degrade.cli.joblog import CREATED_DIR_ENV, remove_created_dirs
from degrade.cli.sweep_summary import RUN_ID_ENV, STATUS_DIR_ENV
from degrade.config.compose import unknown_key
from degrade.errors import ConfigError, DegradeError
from degrade.records.jobdir import check_output_dir, try_write

log = logging.getLogger(__name__)
dirname.register()  # the sweep's job dir names (conf/hydra/default.yaml); also where a job process unpickles this

CONSOLE_FORMAT = "[%(asctime)s][%(levelname)s] %(message)s"


class CommandCallback(Callback):
    """Hydra's hooks around a run or a sweep of this command (see the module docstring)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _refusals():
            prepare_output_dir(given_dir(config, "run.dir"), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _refusals():
            check_launcher(config)
            check_swept_options(list(config.hydra.overrides.task))
            prepare_output_dir(given_dir(config, "sweep.dir"), "hydra.sweep.dir")
            given_dir(config, "sweep.subdir")
        os.environ[RUN_ID_ENV] = sweep_summary.new_run_id()  # before any job process starts, so every job inherits it
        self.multirun_yaml: tuple[bytes, int] | None = None
        if OmegaConf.select(config, "dry_run", default=False) is True:  # the jobs report outside the sweep dir
            os.environ[STATUS_DIR_ENV] = tempfile.mkdtemp(prefix="degrade-dry-run-")
            kept = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"  # Hydra writes it again: put back after
            self.multirun_yaml = (kept.read_bytes(), kept.stat().st_mtime_ns) if kept.is_file() else None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir, run = Path(str(config.hydra.sweep.dir)), os.environ.get(RUN_ID_ENV, "")
        statuses = sweep_summary.read_statuses(sweep_dir, run)
        lines, ok = sweep_summary.closing_lines(statuses)
        dry = bool(os.environ.get(STATUS_DIR_ENV))
        if dry or sweep_summary.is_dry_run(statuses):  # a dry run writes nothing: take back what this sweep wrote
            sweep_summary.forget(sweep_dir, statuses)
            os.environ.pop(STATUS_DIR_ENV, None)
            self.put_back(sweep_dir / "multirun.yaml")
            if os.environ.get(CREATED_DIR_ENV):
                remove_created_dirs(sweep_dir)
        else:
            sweep_summary.write_summary(sweep_dir, run, statuses, lines)
        for line in lines[:-1]:
            log.info("%s", line)
        (log.info if ok else log.error)("%s", lines[-1])
        if not ok:
            raise SystemExit(1)  # a Callback's exceptions are only warned about by Hydra; an exit goes through

    def put_back(self, path: Path) -> None:
        """``multirun.yaml`` as it was before this dry run (gone when there was none)."""
        kept = getattr(self, "multirun_yaml", None)
        if kept is None:
            path.unlink(missing_ok=True)
            return
        path.write_bytes(kept[0])
        os.utime(path, ns=(kept[1], kept[1]))


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except DegradeError as exc:
        log.error("%s", exc)
        raise SystemExit(exc.exit_code) from None


def prepare_output_dir(path: Path, key: str) -> Path | None:
    """Refuse, in one line, an output dir that cannot be created and written; return the first dir it would create.

    The dir is created for real, with a probe file, and what was created is removed again, so a
    dir that only the kernel refuses (``/proc/x``, even as root) is caught before Hydra tries.
    The first dir the command creates is remembered in ``DEGRADE_CREATED_DIR`` (for the jobs:
    a job that never starts removes what this command created for it, and nothing else).

    Raises:
        ConfigError: naming ``key``, the dir and the system's reason.
    """
    try:
        check_output_dir(path)  # a file in the way or a read-only parent: the usual mistakes, said plainly
    except OSError as exc:  # a name the file system refuses
        raise ConfigError(key, os_error(exc)) from None
    path = path.absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    created = missing[-1] if missing else None
    try:
        try_write(path)
    except OSError as exc:
        raise ConfigError(key, f"{path} cannot be created or written ({exc.strerror}); pass a writable dir") from None
    finally:
        for made in missing:  # deepest first; Hydra creates them again when the job starts
            try:
                made.rmdir()
            except OSError:
                break
    if created is None:
        os.environ.pop(CREATED_DIR_ENV, None)
    else:
        os.environ[CREATED_DIR_ENV] = str(created)
    return created


def check_launcher(config: DictConfig) -> None:
    """Refuse a SLURM launcher on a machine without SLURM (no ``sbatch``), before Hydra submits anything.

    Raises:
        ConfigError: naming the launcher and what to use instead.
    """
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    if target.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        choice = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/launcher", "slurm")
        raise ConfigError(
            f"hydra/launcher={choice}",
            "submits to SLURM, and there is no SLURM here (no sbatch on PATH); run it on the cluster's login "
            "node, or use hydra/launcher=submitit_local or hydra/launcher=joblib on this machine",
        )


def check_swept_options(overrides: list[str]) -> None:
    """Refuse a sweep over a group option that does not exist (``param_group=attn,mpl``).

    Hydra finds it only when the jobs are composed, after it has written the sweep dir's
    ``multirun.yaml``; here it is found before anything is written.

    Raises:
        DegradeError: naming the missing option and the group's options.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    if not GlobalHydra.instance().is_initialized():
        return
    loader = GlobalHydra.instance().config_loader()
    for override in OverridesParser.create(config_loader=loader).parse_overrides(overrides):
        if override.value_type not in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP) or override.is_delete():
            continue  # ranges and globs are Hydra's to expand
        options = loader.get_group_options(override.key_or_group)
        missing = [v for v in override.sweep_string_iterator() if v not in options] if options else []
        if missing:
            raise DegradeError(missing_option(f"{override.key_or_group}/{missing[0]}", options))


def missing_option(missing: str, options: list[str]) -> str:
    """``Could not find 'group/name'. Available options in 'group': …`` in one line (Hydra's words)."""
    group = missing.rpartition("/")[0]
    shown = ", ".join(o for o in options if not o.startswith("base_"))  # base_* are the schemas
    return f"Could not find '{missing}'. Available options in '{group}': {shown}"


def describe(exc: BaseException) -> str:
    """One line for an error Hydra raises while composing the config."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        return missing_option(exc.missing_cfg_file, exc.options)
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    key = getattr(cause, "full_key", None)
    schema = getattr(cause, "object_type", None)
    first = _first_line(cause)
    if key and dataclasses.is_dataclass(schema) and ("not in" in first or "not a valid" in first):
        return str(unknown_key(key, [f.name for f in dataclasses.fields(schema)]))
    if key:
        return f"{key}: {first}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Wrap the entry point: Hydra's errors and a Ctrl-C before or between jobs become one line each.

    Hydra prints its errors itself, on several lines, unless ``HYDRA_FULL_ERROR`` is set; it is
    set here so that they reach this function instead. A user who set it keeps Hydra's full traces.
    """
    user_wants_traces = bool(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except KeyboardInterrupt:
        _say("interrupted: no job was running; every finished batch is kept; run the same command to continue", 130)
    except (HydraException, OmegaConfBaseException) as exc:
        if user_wants_traces:
            raise
        _say(describe(exc), 2)
    except OSError as exc:  # Hydra making a dir the file system refuses (a name over 255 bytes, a full disk)
        if user_wants_traces:
            raise
        _say(os_error(exc), 2 if exc.errno == errno.ENAMETOOLONG else 1)


def os_error(exc: OSError) -> str:
    """One line for a file system's refusal, naming the path (its start, when it is long)."""
    path = str(exc.filename or "")
    shown = path if len(path) <= 160 else path[:157] + "…"
    if exc.errno == errno.ENAMETOOLONG:
        return (
            f"{shown}: a name in this path is longer than the file system allows (255 bytes); shorten the "
            "overrides that name it, or pass hydra.run.dir / hydra.sweep.dir"
        )
    return f"{shown}: {exc.strerror or exc}" if shown else str(exc)


def _say(line: str, code: int) -> NoReturn:
    if not logging.getLogger().handlers:  # Hydra had not set up logging yet
        logging.basicConfig(format=CONSOLE_FORMAT, datefmt="%H:%M:%S", stream=sys.stdout)
    log.error("%s", line)
    raise SystemExit(code)
