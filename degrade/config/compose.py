"""Composing the config: the schemas registered in Hydra's ConfigStore, composition for notebooks and tests,
and the typed, checked :class:`~degrade.config.schema.RunConfig` made from what Hydra composed."""

from __future__ import annotations

import dataclasses
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
        return to_typed(compose(config_name="config", overrides=list(overrides)))


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
