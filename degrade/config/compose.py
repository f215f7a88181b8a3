"""Composing the config: the schemas registered in Hydra's ConfigStore, composition for notebooks and tests,
and the typed, checked :class:`~degrade.config.schema.RunConfig` made from what Hydra composed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from hydra.core.config_store import ConfigStore

from degrade.config.schema import (
    DegradationConfig,
    ExperimentConfig,
    GenerationConfig,
    ModelConfig,
    ParamGroupConfig,
    RunConfig,
)
from degrade.errors import ConfigError
from degrade.paths import CONF_DIR


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore; the YAML files extend these by name."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
    for group, node in [
        ("model", ModelConfig),
        ("experiment", ExperimentConfig),
        ("degradation", DegradationConfig),
        ("param_group", ParamGroupConfig),
        ("generation", GenerationConfig),
    ]:
        cs.store(group=group, name=f"base_{group}", node=node)


def compose_config(*overrides: str) -> RunConfig:
    """``conf/config.yaml`` composed with ``overrides`` (as on the command line), typed and checked.

    For notebooks, tests and benchmarks: ``compose_config("experiment=iq", "experiment.limit=3")``.
    """
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return to_typed(settle_levels(cfg, overrides))


def settle_levels(cfg: Any, overrides: Iterable[str]) -> Any:
    """Keep the level list or the range the user typed last, and drop the other (returns ``cfg``, changed in place).

    A preset may set a range (``variant=quant_attn``) or a list; a range, when given, replaces the list.
    So a list typed over a preset's range would not run without this: the last of ``degradation.levels``
    and ``degradation.range`` (or one of its keys) among ``overrides`` is the one that runs.
    """
    from omegaconf import open_dict

    typed = [_levels_key(o) for o in overrides]
    last = next((k for k in reversed(typed) if k is not None), None)
    deg = cfg.get("degradation") if hasattr(cfg, "get") else None
    if last is None or deg is None:
        return cfg
    with open_dict(deg):
        if last == "levels" and deg.get("range") is not None:
            deg.range = None
        elif last == "range" and deg.get("range") is not None and deg.get("levels") is not None:
            deg.levels = None
    return cfg


def _levels_key(override: str) -> str | None:
    """``levels`` or ``range`` when ``override`` sets that key of ``degradation`` (or a key inside the range)."""
    key = override.split("=", 1)[0].lstrip("+~")
    if key == "degradation.levels":
        return "levels"
    return "range" if key == "degradation.range" or key.startswith("degradation.range.") else None


def to_typed(cfg: Any, name: str = "config") -> Any:
    """A composed structured ``DictConfig`` as its dataclass, its keys and values checked.

    Args:
        cfg: the composed config.
        name: the key named by an error that belongs to no single key.

    Raises:
        ConfigError: a key no schema defines, or a value outside its key's domain.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if OmegaConf.get_type(cfg) is dict and "degradation" in cfg:  # a job's saved .hydra/config.yaml: no schemas
        cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), cfg)
    check_known_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(getattr(exc, "full_key", None) or name, str(exc).splitlines()[0]) from None


def check_known_keys(cfg: Any) -> None:
    """Refuse a key that no schema defines, before anything runs.

    Hydra's ``+key=value`` adds a key even where the schema has none (``+foo=1``,
    ``+generation.temprature=0.7``), and the typed config would then drop it without a word:
    the job would run with a setting the user believes is in force. The ``hydra`` node is
    Hydra's own and is not checked.

    Raises:
        ConfigError: naming the first unknown key and the closest known one.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def walk(node: Any, path: str) -> None:
        if isinstance(node, ListConfig):
            for index in range(len(node)):  # a list that is null has length 0
                walk(node[index], f"{path}.{index}")
            return
        if not isinstance(node, DictConfig) or not len(node):
            return
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            return
        known = [f.name for f in dataclasses.fields(schema)]
        for key, value in node.items_ex(resolve=False):
            name = f"{path}.{key}" if path else str(key)
            if name == "hydra":
                continue
            if key not in known:
                raise unknown_key(name, known)
            walk(value, name)

    walk(cfg, "")


def unknown_key(name: str, known: list[str]) -> ConfigError:
    """The one-line refusal of the key ``name`` (dotted), naming the closest of the ``known`` keys beside it."""
    import difflib

    close = difflib.get_close_matches(name.rpartition(".")[2], known, n=1)
    if close:
        return ConfigError(name, f"unknown key — did you mean {close[0]!r}?")
    return ConfigError(name, f"unknown key; the keys here are {', '.join(known)}")
