"""A sweep job's dir name: Hydra's ``override_dirname``, kept under the file system's 255 bytes per name.

A sweep's job dirs are named by their overrides (``conf/hydra/default.yaml``), so a rerun of the
sweep finds them. Two kinds of override made names no file system takes (``OSError: [Errno 36]
File name too long``): a path (``experiment.prompts_file=/data/…``, which also split the name into
nested dirs at each ``/``) and a long value (``name_suffix``). Path-valued keys are left out of
``override_dirname`` (its ``exclude_keys``) and added back here as the file's name and a short hash
of the whole path, so jobs that differ only by a path still get dirs of their own; any part of the
name still longer than :data:`MAX_BYTES` keeps its start and ends in a hash of the whole part.
Names that were short enough are unchanged, so a rerun of an earlier sweep finds its dirs. An empty
``hydra.run.dir`` or ``hydra.sweep.subdir`` is refused: the job would write into the current dir, or
every job of a sweep into one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath
from typing import Any

from omegaconf import DictConfig, OmegaConf

from degrade.errors import ConfigError

RESOLVER = "degrade.job_dir"
# The keys whose values are paths; conf/hydra/default.yaml leaves them out of override_dirname.
PATH_KEYS = ("experiment.prompts_file", "experiment.answers_file", "experiment.image.path", "model.source")
MAX_BYTES = 200  # below the usual 255: room for what is added to names inside a job dir
_KEEP = 160  # bytes of a long part kept before its hash


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def shorten(part: str) -> str:
    """``part`` when it fits in :data:`MAX_BYTES`, else its start and ``~`` and a hash of the whole."""
    raw = part.encode("utf-8", "surrogatepass")
    if len(raw) <= MAX_BYTES:
        return part
    return raw[:_KEEP].decode("utf-8", "ignore") + "~" + _digest(part, 12)


def path_items(overrides: list[str]) -> list[str]:
    """``key=<file name>~<hash>`` for each override of a path-valued key, sorted as Hydra sorts its items."""
    items = []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in PATH_KEYS and value:
            items.append(f"{key}={PurePosixPath(value).name or 'root'}~{_digest(value, 8)}")
    return sorted(items)


def job_dir(override_dirname: str, *, _root_: Any) -> str:
    """The resolver: ``override_dirname`` with the path-valued overrides added back, every part short enough."""
    overrides = OmegaConf.select(_root_, "hydra.overrides.task", default=None) or []
    name = ",".join(item for item in (override_dirname, *path_items([str(o) for o in overrides])) if item)
    return "/".join(shorten(part) for part in name.split("/"))


def given_dir(config: DictConfig, key: str) -> Path:
    """``hydra.<key>`` as a path; an empty one is refused: the jobs would write into the current dir (or all in one).

    Raises:
        ConfigError: naming the key.
    """
    group, name = key.split(".")
    typed = OmegaConf.to_container(config.hydra[group], resolve=False).get(name)  # as typed: "" before resolving
    if typed is not None and not str(typed).strip():
        where = "the current dir" if key != "sweep.subdir" else "the sweep dir, all in one"
        raise ConfigError(f"hydra.{key}", f"empty: the jobs would write into {where}; give a dir")
    return Path(str(config.hydra[group][name])) if key != "sweep.subdir" else Path(str(typed))


def register() -> None:
    """Make ``${degrade.job_dir:…}`` known to OmegaConf (once per process)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dir)
