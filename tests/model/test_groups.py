"""Parameter groups resolved on tiny models of every supported layout."""

from __future__ import annotations

import ast
import copy
import dataclasses
from functools import cache
from pathlib import Path

import pytest
import torch
from conftest import CONF, ROOT, build_tiny, compose_cfg
from torch import nn
from transformers import Gemma3ForConditionalGeneration

from degrade.config.schema import ParamGroupConfig
from degrade.errors import ConfigError, DegradeError
from degrade.methods import damage
from degrade.model.groups import KINDS, ResolvedGroup, candidates, resolve_group
from degrade.model.tiny import tiny_config

GROUP_NAMES = sorted(p.stem for p in (CONF / "param_group").glob("*.yaml"))
TEXT_ARCHS = ["llama", "qwen2", "mistral", "gpt2", "gemma3"]
LM_GROUPS = ["attn_only", "attn", "mlp", "mlp_only", "embed", "embed_only", "all"]
# Groups a text-only model cannot serve, and the words its error must contain.
NOT_ON_TEXT = {"vision": "vision"}


@cache
def group_cfg(name: str) -> ParamGroupConfig:
    """The typed config of ``param_group=name`` (composed once per name)."""
    return compose_cfg(f"param_group={name}").param_group


@cache
def model_of(arch: str) -> nn.Module:
    """A tiny random ``arch`` shared by the read-only tests (tests that damage build their own)."""
    return build_tiny(arch)


def resolve(arch: str, group: str, **changes: object) -> ResolvedGroup:
    cfg = dataclasses.replace(group_cfg(group), **changes) if changes else group_cfg(group)
    return resolve_group(model_of(arch), cfg)


def kinds_of(group: ResolvedGroup) -> dict[str, int]:
    return group.summary()["kinds"]


def test_the_groups_are_globbed() -> None:
    """The YAMLs these tests cover include the study's groups."""
    assert {"all", "attn", "attn_only", "mlp", "mlp_only", "embed", "embed_only", "norms", "vision"} <= set(GROUP_NAMES)


# --- every YAML on Llama ------------------------------------------------------------------


@pytest.mark.parametrize("name", GROUP_NAMES)
def test_every_group_resolves_on_llama_or_says_why_not(name: str) -> None:
    """Each group selects ≥ 1 weight of tiny Llama, except one that cannot apply, which names itself."""
    if name in NOT_ON_TEXT:
        with pytest.raises(DegradeError) as info:
            resolve("llama", name)
        message = str(info.value)
        assert f"param_group={name}" in message and NOT_ON_TEXT[name] in message
        return
    group = resolve("llama", name)
    assert group.name == name and group.targets
    assert all(t.kind in group_cfg(name).kinds and t.tower == "language" for t in group.targets)
    assert len(set(group.names)) == len(group.names)
    params = dict(model_of("llama").named_parameters())
    assert group.numel == sum(params[n].numel() for n in group.names)


def test_group_summary_is_what_a_run_saves() -> None:
    """The summary holds the name, count, element count, kinds and names of the resolved group."""
    group = resolve("llama", "attn")
    summary = group.summary()
    assert summary["name"] == "attn" and summary["count"] == len(group.names) == 8
    assert summary["elements"] == group.numel and summary["names"] == group.names
    assert summary["kinds"] == {"attn_q": 2, "attn_k": 2, "attn_v": 2, "attn_o": 2}


# --- the study's groups on every layout ---------------------------------------------------


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma3", "gemma3_vlm"])
def test_attn_only_is_the_value_projections_one_per_layer(arch: str) -> None:
    """attn_only is exactly the language model's v_proj weights, one per decoder layer."""
    model = model_of(arch)
    layers = model.config.get_text_config().num_hidden_layers
    group = resolve(arch, "attn_only")
    expected = {
        n for n, _ in model.named_parameters() if n.endswith("self_attn.v_proj.weight") and "vision_tower" not in n
    }
    assert set(group.names) == expected
    assert len(group.names) == layers
    assert sorted(t.layer for t in group.targets) == list(range(layers))


def test_attn_only_on_gpt2_is_the_value_columns_of_the_fused_qkv() -> None:
    """GPT-2 has no separate v_proj: attn_only takes the V columns of each c_attn (Conv1D stores (in, out)), only."""
    group = resolve("gpt2", "attn_only")
    assert group.names == [f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)]
    assert [(t.kind, t.part.dim, t.part.ranges) for t in group.targets] == [("attn_v", 1, ((128, 192),))] * 2
    assert group.numel == 2 * 64 * 64  # the V columns, not the whole 64 × 192 tensor


@pytest.mark.parametrize("arch", TEXT_ARCHS + ["gemma3_vlm"])
def test_mlp_only_is_gate_up_down(arch: str) -> None:
    """mlp_only is every MLP projection of the language model: gate/up/down (GPT-2: c_fc, c_proj)."""
    model = model_of(arch)
    layers = model.config.get_text_config().num_hidden_layers
    group = resolve(arch, "mlp_only")
    leaves = ("c_fc", "c_proj") if arch == "gpt2" else ("gate_proj", "up_proj", "down_proj")
    expected = {
        n
        for n, _ in model.named_parameters()
        if any(n.endswith(f"mlp.{leaf}.weight") for leaf in leaves) and "vision_tower" not in n
    }
    assert set(group.names) == expected
    assert len(group.names) == layers * len(leaves)
    assert set(kinds_of(group)) == ({"mlp_up", "mlp_down"} if arch == "gpt2" else {"mlp_gate", "mlp_up", "mlp_down"})
    assert set(resolve(arch, "mlp").names) == expected  # mlp and mlp_only are the same set


@pytest.mark.parametrize(
    ("arch", "embedding"),
    [
        ("llama", "model.embed_tokens.weight"),
        ("qwen2", "model.embed_tokens.weight"),
        ("mistral", "model.embed_tokens.weight"),
        ("gpt2", "transformer.wte.weight"),
        ("gemma3", "model.embed_tokens.weight"),
        ("gemma3_vlm", "model.language_model.embed_tokens.weight"),
    ],
)
def test_embed_only_is_the_token_embedding_only(arch: str, embedding: str) -> None:
    """embed_only is the token embedding alone: no LM head, no position embedding, nothing of a vision tower."""
    group = resolve(arch, "embed_only")
    assert group.names == [embedding]
    assert model_of(arch).get_parameter(embedding) is model_of(arch).get_input_embeddings().weight


@pytest.mark.parametrize(
    ("arch", "tied"),
    [
        ("llama", True),
        ("gpt2", True),
        ("gemma3", True),
        ("gemma3_vlm", True),
        ("qwen2", False),
        ("mistral", False),
    ],
)
def test_embed_takes_the_lm_head_only_when_untied(arch: str, tied: bool) -> None:
    """embed is the token embedding plus the LM head; a head tied to the embedding is the same tensor, counted once."""
    model = model_of(arch)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    group = resolve(arch, "embed")
    assert kinds_of(group) == ({"embed": 1} if tied else {"embed": 1, "lm_head": 1})


@pytest.mark.parametrize("arch", TEXT_ARCHS + ["gemma3_vlm"])
def test_all_counts_each_tensor_once(arch: str) -> None:
    """The group all never lists one storage twice, so tied embeddings are damaged (and counted) once."""
    model = model_of(arch)
    group = resolve(arch, "all")
    ptrs = [model.get_parameter(n).data_ptr() for n in group.names]
    assert len(set(ptrs)) == len(ptrs)
    assert group.numel == sum(model.get_parameter(n).numel() for n in group.names)
    assert "norm" not in kinds_of(group)


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_attn_mlp_embed_partition_all(arch: str) -> None:
    """On a text model, attn, mlp and embed are disjoint and together make up all."""
    attn, mlp, embed = (set(resolve(arch, g).names) for g in ("attn", "mlp", "embed"))
    assert not (attn & mlp) and not (attn & embed) and not (mlp & embed)
    assert attn | mlp | embed == set(resolve(arch, "all").names)


@pytest.mark.parametrize("arch", TEXT_ARCHS + ["gemma3_vlm"])
def test_norms_are_only_on_request(arch: str) -> None:
    """Every normalisation weight is in norms and in no other language-model group."""
    model = model_of(arch)
    norms = set(resolve(arch, "norms").names)
    expected = {
        n
        for n, _ in model.named_parameters()
        if n.endswith(".weight")
        and ("norm" in n or ".ln_" in n)
        and "vision_tower" not in n
        and "multi_modal_projector" not in n
    }
    assert norms == expected
    for name in LM_GROUPS:
        assert not norms & set(resolve(arch, name).names), name


# --- GPT-2's Conv1D layout ----------------------------------------------------------------


def test_gpt2_fused_qkv_and_the_two_c_proj() -> None:
    """c_attn is in attn as attn_qkv; attn.c_proj is attn_o and mlp.c_proj is mlp_down."""
    attn, mlp = resolve("gpt2", "attn"), resolve("gpt2", "mlp")
    by_name = {t.name: t.kind for t in [*attn.targets, *mlp.targets]}
    for layer in range(2):
        prefix = f"transformer.h.{layer}"
        assert by_name[f"{prefix}.attn.c_attn.weight"] == "attn_qkv"
        assert by_name[f"{prefix}.attn.c_proj.weight"] == "attn_o"
        assert by_name[f"{prefix}.mlp.c_proj.weight"] == "mlp_down"
        assert by_name[f"{prefix}.mlp.c_fc.weight"] == "mlp_up"
        assert f"{prefix}.attn.c_proj.weight" in attn.names and f"{prefix}.attn.c_proj.weight" not in mlp.names
        assert f"{prefix}.mlp.c_proj.weight" in mlp.names and f"{prefix}.mlp.c_proj.weight" not in attn.names
    assert kinds_of(attn) == {"attn_qkv": 2, "attn_o": 2}


def test_gpt2_position_embedding_is_its_own_kind() -> None:
    """GPT-2's wpe is embed_pos, outside embed and all (the study damages token embeddings)."""
    kinds = {t.name: t.kind for t in candidates(model_of("gpt2"))}
    assert kinds["transformer.wpe.weight"] == "embed_pos"
    assert "transformer.wpe.weight" not in resolve("gpt2", "all").names


# --- Gemma 3 with a vision tower ----------------------------------------------------------


@pytest.mark.parametrize("name", ["attn_only", "attn", "mlp", "mlp_only", "embed", "embed_only", "all", "norms"])
def test_language_groups_skip_the_vision_tower(name: str) -> None:
    """A language-model group on Gemma 3 VLM is the same group as on text-only Gemma 3: nothing of the vision side."""
    group = resolve("gemma3_vlm", name)
    text_only = resolve("gemma3", name)
    assert group.names == [n.replace("model.", "model.language_model.", 1) for n in text_only.names]
    assert group.numel == text_only.numel


def test_vision_group_is_the_vision_towers_projections() -> None:
    """vision selects q/k/v/o and MLP projections of every SigLIP encoder layer, and nothing of the LM."""
    model = model_of("gemma3_vlm")
    group = resolve("gemma3_vlm", "vision")
    assert all(n.startswith("model.vision_tower.") for n in group.names)
    layers = model.config.vision_config.num_hidden_layers
    for layer in range(layers):
        for leaf in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.out_proj",
            "mlp.fc1",
            "mlp.fc2",
        ):
            assert f"model.vision_tower.encoder.layers.{layer}.{leaf}.weight" in group.names
    assert "norm" not in kinds_of(group)


def vision_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_parameters() if "vision_tower" in n]


def test_damaging_all_leaves_the_vision_tower_bit_identical() -> None:
    """mult_gauss on all changes the language model and leaves every vision-tower parameter as it was."""
    model = build_tiny("gemma3_vlm")
    clean = copy.deepcopy(model)
    group = resolve_group(model, group_cfg("all"))
    damage.apply(model, group, "mult_gauss", 0.5, seed=1, repeat=0)
    names = vision_names(model)
    assert names == [f"model.vision_tower.{n}" for n, _ in model.model.vision_tower.named_parameters()]
    assert all(torch.equal(model.get_parameter(n), clean.get_parameter(n)) for n in names)
    assert all(not torch.equal(model.get_parameter(n), clean.get_parameter(n)) for n in group.names)


def test_damaging_vision_changes_the_tower_and_not_the_language_model() -> None:
    """mult_gauss on vision changes every selected tower weight; every other parameter is bit-identical."""
    model = build_tiny("gemma3_vlm")
    clean = copy.deepcopy(model)
    group = resolve_group(model, group_cfg("vision"))
    damage.apply(model, group, "mult_gauss", 0.5, seed=1, repeat=0)
    assert all(not torch.equal(model.get_parameter(n), clean.get_parameter(n)) for n in group.names)
    others = [n for n, _ in model.named_parameters() if n not in set(group.names)]
    assert any(n.startswith("model.language_model.") for n in others)
    changed = [n for n in others if not torch.equal(model.get_parameter(n), clean.get_parameter(n))]
    assert not changed, changed


# --- layer range, exclusions, errors ------------------------------------------------------


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_layer_range_is_half_open(arch: str) -> None:
    """layers=[1, 2] selects layer 1 only, and exactly what all selects in layer 1."""
    group = resolve(arch, "all", layers=[1, 2])
    assert {t.layer for t in group.targets} == {1}
    assert set(group.names) == {t.name for t in resolve(arch, "all").targets if t.layer == 1}
    assert all(".1." in n for n in group.names)


def test_layer_range_on_the_vlm_counts_decoder_layers_of_the_language_model() -> None:
    """On Gemma 3 VLM a layer range over a language group stays in the language model."""
    group = resolve("gemma3_vlm", "attn", layers=[0, 1])
    assert group.names == [f"model.language_model.layers.0.self_attn.{p}_proj.weight" for p in "qkvo"]


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_layer_range_past_the_model_is_refused_in_one_line(arch: str) -> None:
    """A stop beyond the model's decoder layers is refused, naming the key, the count and what is allowed."""
    n = model_of(arch).config.num_hidden_layers
    with pytest.raises(ConfigError) as info:
        resolve(arch, "all", layers=[0, 99])
    assert str(info.value) == (
        f"param_group.layers: [0, 99] goes beyond this model's {n} layers (0–{n - 1}); "
        f"allowed: [start, stop) with 0 ≤ start < stop ≤ {n}"
    )
    with pytest.raises(ConfigError, match=rf"^param_group.layers: \[{n}, {n + 1}\] goes beyond"):
        resolve(arch, "all", layers=[n, n + 1])  # starts past the last layer


@pytest.mark.parametrize("arch", TEXT_ARCHS)
def test_layer_range_up_to_the_last_layer_is_every_layer(arch: str) -> None:
    """[0, n) on an n-layer model selects every layered weight of the group, and nothing outside the layers."""
    n = model_of(arch).config.num_hidden_layers
    group = resolve(arch, "all", layers=[0, n])
    assert group.names == [t.name for t in resolve(arch, "all").targets if t.layer is not None]
    assert {t.layer for t in group.targets} == set(range(n))


def test_layer_bound_is_counted_per_tower() -> None:
    """On a VLM whose vision tower is deeper than its language model, each tower's own count bounds its groups."""
    config = tiny_config("gemma3_vlm")
    config.vision_config.num_hidden_layers = 3
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config).eval()
    vision = resolve_group(model, dataclasses.replace(group_cfg("vision"), layers=[2, 3]))
    leaves = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"]
    assert set(vision.names) == {f"model.vision_tower.encoder.layers.2.{leaf}.weight" for leaf in leaves}
    with pytest.raises(ConfigError, match=r"^param_group.layers: \[2, 3\] goes beyond this model's 2 layers \(0–1\)"):
        resolve_group(model, dataclasses.replace(group_cfg("attn"), layers=[2, 3]))
    both = resolve_group(model, dataclasses.replace(group_cfg("all"), tower="all", layers=[2, 3]))
    assert {(t.tower, t.layer) for t in both.targets} == {("vision", 2)}


def test_exclude_drops_matching_names() -> None:
    """exclude regexes remove what they match (searched anywhere in the name) and nothing else."""
    full = resolve("llama", "all").names
    group = resolve("llama", "all", exclude=[r"\.layers\.0\.", r"embed_tokens\.weight$"])
    assert group.names == [n for n in full if ".layers.0." not in n and "embed_tokens" not in n]
    assert len(group.names) == len(full) - 8


def test_exclude_everything_is_an_error() -> None:
    """Excluding every selected weight leaves an empty group, which is an error."""
    with pytest.raises(DegradeError, match="param_group=attn_only"):
        resolve("llama", "attn_only", exclude=["v_proj"])


def test_group_matching_nothing_names_itself_and_lists_the_model() -> None:
    """An empty match names the group and lists the kinds/towers the model does have."""
    cfg = dataclasses.replace(group_cfg("attn"), name="fused_only", kinds=["attn_qkv"])
    with pytest.raises(DegradeError) as info:
        resolve_group(model_of("llama"), cfg)
    message = str(info.value)
    assert "param_group=fused_only" in message and "attn_qkv" in message
    present = {f"{t.kind}/{t.tower}" for t in candidates(model_of("llama"))}
    assert present == {
        "attn_q/language",
        "attn_k/language",
        "attn_v/language",
        "attn_o/language",
        "mlp_gate/language",
        "mlp_up/language",
        "mlp_down/language",
        "embed/language",
        "norm/language",
    }
    assert all(entry in message for entry in present)


def test_every_candidate_kind_is_known() -> None:
    """Classification only produces the documented kinds, on every layout."""
    for arch in TEXT_ARCHS + ["gemma3_vlm"]:
        assert {t.kind for t in candidates(model_of(arch))} <= set(KINDS), arch


# --- package structure: no import cycle, no private names across modules -------------------

PACKAGE = ROOT / "degrade"


def module_name(path: Path) -> str:
    """``degrade/model/groups.py`` → ``degrade.model.groups``; a package's ``__init__.py`` → the package."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}


def imported_modules(tree: ast.AST) -> dict[str, str]:
    """The degrade modules a file imports anywhere (top level, functions, TYPE_CHECKING), by the name bound to each."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    bound[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                else:
                    bound[f"from {node.module}"] = node.module
    return bound


def private_uses(tree: ast.AST) -> list[str]:
    """``from m import _x`` and ``m._x`` for an imported degrade module ``m`` (dunder names are public)."""
    modules = imported_modules(tree)

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [f"from {node.module} import {a.name}" for a in node.names if private(a.name)]
        elif isinstance(node, ast.Attribute) and private(node.attr):
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                found.append(f"{node.value.id}.{node.attr}")
            elif isinstance(node.value, ast.Attribute) and ast.unparse(node.value) in MODULES:
                found.append(f"{ast.unparse(node.value)}.{node.attr}")
    return found


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def test_no_import_cycle_in_the_package() -> None:
    """No module of degrade/ reaches itself through its imports (lazy and TYPE_CHECKING imports count too)."""
    graph = {module_name(p): set(imported_modules(parse(p)).values()) for p in PACKAGE.rglob("*.py")}
    assert {"degrade.model.groups"} <= graph["degrade.config.schema"]  # the edge that used to run both ways
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(module, ())):
            if nxt in path:
                cycles.append(" → ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        visit(module, [module])
    assert not cycles, cycles


@pytest.mark.parametrize("folder", ["degrade", "scripts", "tests"])
def test_no_module_uses_another_modules_private_names(folder: str) -> None:
    """Underscore names stay inside their module: no ``from m import _x`` and no ``m._x``, in any folder."""
    found = {str(p.relative_to(ROOT)): private_uses(parse(p)) for p in sorted((ROOT / folder).rglob("*.py"))}
    assert not {path: uses for path, uses in found.items() if uses}
