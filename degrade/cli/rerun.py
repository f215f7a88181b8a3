"""Hydra's way to run a saved job again, ``--config-path JOB/.hydra --config-name config``, resumes JOB.

A job's ``.hydra/config.yaml`` holds its composed config alone, without a defaults list. Hydra
composes its own defaults around it: a new dir under ``outputs/``, its own logging, none of this
command's refusals, and a config without the schemas. :func:`rerun_args` adds to the command line,
before Hydra reads it, this command's Hydra settings (``conf/hydra/default.yaml``) and the saved
job's own dir as ``hydra.run.dir``, so the job runs where it ran and resumes;
:func:`degrade.config.compose.to_typed` puts the schemas back. A relative ``--config-path`` is
taken from the current dir, as a user types it (Hydra would take it from ``scripts/``).
"""

from __future__ import annotations

from pathlib import Path

from degrade.paths import CONF_DIR

SAVED = ".hydra"  # where a job keeps its composed config
_PATH_FLAGS = ("--config-path", "-cp")
_NAME_FLAGS = ("--config-name", "-cn")


def _flag(argv: list[str], flags: tuple[str, ...]) -> tuple[int, str, str] | None:
    """Where the first of ``flags`` gives its value in ``argv``: (index, prefix, value).

    ``--flag value`` gives the next argument with prefix ``""``; ``--flag=value`` gives the argument
    itself with prefix ``--flag=``, so ``prefix + value`` is the argument as typed.
    """
    for index, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and index + 1 < len(argv):
                return index + 1, "", argv[index + 1]
            if arg.startswith(flag + "="):
                return index, flag + "=", arg[len(flag) + 1 :]
    return None


def saved_job(config_path: str | Path) -> Path | None:
    """The job dir whose saved config ``config_path`` is (``JOB/.hydra``), or None."""
    path = Path(config_path).expanduser().absolute()
    return path.parent if path.name == SAVED and (path / "config.yaml").is_file() else None


def rerun_args(argv: list[str]) -> list[str]:
    """``argv`` (without the program name), completed to rerun a saved job in its own dir; else unchanged."""
    found, name = _flag(argv, _PATH_FLAGS), _flag(argv, _NAME_FLAGS)
    if found is None or name is None or name[2] not in ("config", "config.yaml"):
        return argv
    index, prefix, value = found
    job = saved_job(value)
    if job is None:
        return argv
    argv = list(argv)
    argv[index] = prefix + str(job / SAVED)
    extra = [f"hydra.searchpath=['file://{CONF_DIR}']", "+hydra=default"]
    if not any(a.startswith("hydra.run.dir=") for a in argv):
        extra.append(f"hydra.run.dir='{job}'")
    return [*argv, *extra]


def is_saved_config(config_sources: list, out_dir: Path) -> bool:
    """Whether the job was composed from ``out_dir``'s own saved config (a rerun: its ``.hydra/`` stays as it is)."""
    return any(
        getattr(s, "provider", None) == "main" and Path(str(s.path)).absolute() == (out_dir / SAVED).absolute()
        for s in config_sources
    )
