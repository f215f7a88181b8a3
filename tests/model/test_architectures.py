"""Parameter groups on fused and mixture-of-experts layouts: what each group takes on sixteen tiny architectures.

Every model here is built by Transformers from its own config class, with tiny sizes and random
weights. The table below is what a reader checks first: in each decoder layer, the tensors that
``mlp_only``, ``attn_only`` and ``all`` take. A slice of a fused tensor is written
``name[dim:start-stop,…]`` (half-open row ranges along ``dim``).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import pytest
import torch
import transformers as tf
from conftest import build_tiny, compose_cfg
from torch import nn

from degrade.config.schema import ParamGroupConfig
from degrade.errors import DegradeError
from degrade.methods import damage
from degrade.model.groups import ResolvedGroup, Target, resolve_group
from degrade.model.restore import Snapshot
from degrade.model.tiny import CONFIGS

IDS = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
DECODER = {"vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, **IDS}
GQA = {**DECODER, "intermediate_size": 128, "num_key_value_heads": 2}
MOE = {"num_experts_per_tok": 2, "router_jitter_noise": 0.0}
# The layouts Transformers does not share with Llama, each from its config class with tiny sizes.
OTHERS: dict[str, Any] = {
    "phi": lambda: tf.PhiConfig(**GQA),
    "phi3": lambda: tf.Phi3Config(**GQA),
    "gpt_neox": lambda: tf.GPTNeoXConfig(**DECODER, intermediate_size=128),
    "falcon": lambda: tf.FalconConfig(**DECODER),  # multi-query: one key/value head
    "falcon_gqa": lambda: tf.FalconConfig(**DECODER, new_decoder_architecture=True, num_kv_heads=2),
    "falcon_mha": lambda: tf.FalconConfig(**DECODER, multi_query=False),
    "gptj": lambda: tf.GPTJConfig(vocab_size=512, n_embd=64, n_layer=2, n_head=4, rotary_dim=8, **IDS),
    "starcoder2": lambda: tf.Starcoder2Config(**GQA),
    "olmo2": lambda: tf.Olmo2Config(**GQA),
    "mixtral": lambda: tf.MixtralConfig(**GQA, num_local_experts=4, **MOE),
    "qwen2_moe": lambda: tf.Qwen2MoeConfig(
        **GQA, moe_intermediate_size=32, shared_expert_intermediate_size=64, num_experts=4, **MOE
    ),
}
ARCHS = [*CONFIGS, *OTHERS]

QKVO = "self_attn.q_proj self_attn.k_proj self_attn.v_proj self_attn.o_proj"
GATED = "mlp.gate_proj mlp.up_proj mlp.down_proj"
NEOX_MLP = "mlp.dense_h_to_4h mlp.dense_4h_to_h"
EXPERTS = "mlp.experts.gate_up_proj mlp.experts.down_proj"
SHARED = "mlp.shared_expert.gate_proj mlp.shared_expert.up_proj mlp.shared_expert.down_proj"
PER_HEAD_V = "32-48,80-96,128-144,176-192"  # 4 heads, each stored as its q, k, v rows of 16

# arch: (mlp_only, attn_only, all) in every decoder layer
TABLE = {
    "llama": (GATED, "self_attn.v_proj", f"{QKVO} {GATED}"),
    "qwen2": (GATED, "self_attn.v_proj", f"{QKVO} {GATED}"),
    "mistral": (GATED, "self_attn.v_proj", f"{QKVO} {GATED}"),
    "gemma3": (GATED, "self_attn.v_proj", f"{QKVO} {GATED}"),
    "olmo2": (GATED, "self_attn.v_proj", f"{QKVO} {GATED}"),
    "gpt2": ("mlp.c_fc mlp.c_proj", "attn.c_attn[1:128-192]", "attn.c_attn attn.c_proj mlp.c_fc mlp.c_proj"),
    "starcoder2": ("mlp.c_fc mlp.c_proj", "self_attn.v_proj", f"{QKVO} mlp.c_fc mlp.c_proj"),
    "phi": (
        "mlp.fc1 mlp.fc2",
        "self_attn.v_proj",
        "self_attn.q_proj self_attn.k_proj self_attn.v_proj self_attn.dense mlp.fc1 mlp.fc2",
    ),  # fmt: skip
    "phi3": (
        "mlp.gate_up_proj mlp.down_proj",
        "self_attn.qkv_proj[0:96-128]",  # q: 4 heads of 16 rows, k: 2 heads, v: 2 heads
        "self_attn.qkv_proj self_attn.o_proj mlp.gate_up_proj mlp.down_proj",
    ),
    "gpt_neox": (
        NEOX_MLP,
        f"attention.query_key_value[0:{PER_HEAD_V}]",
        f"attention.query_key_value attention.dense {NEOX_MLP}",
    ),
    "falcon": (
        NEOX_MLP,
        "self_attention.query_key_value[0:80-96]",  # 4 query heads, then the one key and the one value head
        f"self_attention.query_key_value self_attention.dense {NEOX_MLP}",
    ),
    "falcon_gqa": (
        NEOX_MLP,
        "self_attention.query_key_value[0:48-64,112-128]",  # per key/value group: 2 query heads, k, v
        f"self_attention.query_key_value self_attention.dense {NEOX_MLP}",
    ),
    "falcon_mha": (
        NEOX_MLP,
        f"self_attention.query_key_value[0:{PER_HEAD_V}]",
        f"self_attention.query_key_value self_attention.dense {NEOX_MLP}",
    ),
    "gptj": (
        "mlp.fc_in mlp.fc_out",
        "attn.v_proj",
        "attn.q_proj attn.k_proj attn.v_proj attn.out_proj mlp.fc_in mlp.fc_out",
    ),  # fmt: skip
    "mixtral": (EXPERTS, "self_attn.v_proj", f"{QKVO} mlp.gate {EXPERTS}"),
    "qwen2_moe": (
        f"{EXPERTS} {SHARED}",
        "self_attn.v_proj",
        f"{QKVO} mlp.gate {EXPERTS} {SHARED} mlp.shared_expert_gate",
    ),
}


def tiny(arch: str, **changes: Any) -> nn.Module:
    """A tiny random ``arch`` (seeded), float32, as Transformers builds it from its config."""
    if arch in CONFIGS and not changes:
        return build_tiny(arch)
    config = OTHERS[arch]()
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return tf.AutoModelForCausalLM.from_config(config).eval()


@cache
def shared(arch: str) -> nn.Module:
    """The read-only model of ``arch`` (tests that damage build their own)."""
    return tiny(arch)


@cache
def group_cfg(name: str) -> ParamGroupConfig:
    return compose_cfg(f"param_group={name}").param_group


def kinds_cfg(*kinds: str) -> ParamGroupConfig:
    return ParamGroupConfig(name="+".join(kinds), kinds=list(kinds))


def show(target: Target) -> str:
    """A target as the table writes it: its name inside the layer, ``.weight`` dropped, a slice's rows appended."""
    inside = target.name.split(f".{target.layer}.", 1)[1].removesuffix(".weight")
    if target.part is None:
        return inside
    return f"{inside}[{target.part.dim}:" + ",".join(f"{a}-{b}" for a, b in target.part.ranges) + "]"


def per_layer(group: ResolvedGroup) -> dict[int | None, set[str]]:
    found: dict[int | None, set[str]] = {}
    for target in group.targets:
        found.setdefault(target.layer, set()).add(show(target) if target.layer is not None else target.name)
    return found


def test_the_table_covers_every_architecture_asked_for() -> None:
    assert set(TABLE) == set(ARCHS)


# --- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", [0, 1, 2], ids=["mlp_only", "attn_only", "all"])
@pytest.mark.parametrize("arch", ARCHS)
def test_each_group_takes_what_the_table_says_in_every_layer(arch: str, column: int) -> None:
    """mlp_only, attn_only and all take, in every decoder layer, exactly the table's tensors (and slices)."""
    name = ("mlp_only", "attn_only", "all")[column]
    model = shared(arch)
    found = per_layer(resolve_group(model, group_cfg(name)))
    layers = model.config.get_text_config().num_hidden_layers
    expected = set(TABLE[arch][column].split())
    assert {layer: found.get(layer) for layer in range(layers)} == dict.fromkeys(range(layers), expected)
    if name != "all":
        assert set(found) == set(range(layers))  # nothing outside the decoder layers


@pytest.mark.parametrize("arch", ARCHS)
def test_all_takes_every_weight_matrix_of_the_language_model(arch: str) -> None:
    """all is every parameter of two or more dimensions (tied ones once), bar a learned position embedding."""
    model = shared(arch)
    group = resolve_group(model, group_cfg("all"))
    matrices = {n for n, p in model.named_parameters() if p.ndim >= 2}
    assert set(group.names) == matrices - {"transformer.wpe.weight"}
    assert all(t.part is None for t in group.targets)
    assert group.numel == sum(model.get_parameter(n).numel() for n in group.names)


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe"])
def test_routers_are_in_mlp_and_all_but_not_in_mlp_only(arch: str) -> None:
    """A group says whether the routers belong to it: mlp and all list mlp_router, the study's mlp_only does not."""
    model = shared(arch)
    routers = {t.name for t in resolve_group(model, kinds_cfg("mlp_router")).targets}
    assert routers and all(n.endswith(("mlp.gate.weight", "mlp.shared_expert_gate.weight")) for n in routers)
    assert routers <= set(resolve_group(model, group_cfg("mlp")).names)
    assert routers <= set(resolve_group(model, group_cfg("all")).names)
    assert not routers & set(resolve_group(model, group_cfg("mlp_only")).names)
    experts = resolve_group(model, kinds_cfg("mlp_experts"))
    assert {show(t) for t in experts.targets} == set(EXPERTS.split())


# --- a fused tensor damaged as a slice ------------------------------------------------------------

FUSED_QKV = ["gpt2", "phi3", "gpt_neox", "falcon", "falcon_gqa", "falcon_mha"]
SLICE_METHODS = [
    ("mult_gauss", 0.5, {}),
    ("add_gauss", 0.5, {}),
    ("ablation", 0.5, {}),
    ("uni_quant", 4, {}),
    ("rtn", 3, {"granularity": "group", "group_size": 32, "symmetric": False}),
    ("minifloat", 4, {}),
    ("bit_flip", 0.05, {}),
    ("prune_magnitude", 0.5, {}),
    ("prune_magnitude", 0.5, {"scope": "group"}),
    ("neuron_ablation", 1.0, {"unit": "head"}),  # below 1, a key/value head shared by several may live on
    ("neuron_ablation", 1.0, {"unit": "layer"}),
]


def rows_of(target: Target, tensor: torch.Tensor) -> torch.Tensor:
    return tensor.index_select(target.part.dim, target.part.index())


def the_rest(target: Target, tensor: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(tensor.shape[target.part.dim], dtype=torch.bool)
    keep[target.part.index()] = False
    return tensor.index_select(target.part.dim, keep.nonzero().reshape(-1))


@pytest.mark.parametrize(("method", "level", "options"), SLICE_METHODS, ids=lambda v: str(v))
@pytest.mark.parametrize("arch", FUSED_QKV)
def test_attn_only_damages_the_value_rows_of_a_fused_tensor_and_nothing_else(
    arch: str, method: str, level: float, options: dict
) -> None:
    """Only the V rows of a fused q/k/v tensor change; its other rows and every other weight stay bit-identical."""
    model = tiny(arch)
    clean = copy.deepcopy(model)
    group = resolve_group(model, group_cfg("attn_only"))
    snapshot = Snapshot(model, group.names)
    damage.apply(model, group, method, level, seed=3, repeat=0, options=options)
    for target in group.targets:
        now, before = model.get_parameter(target.name), clean.get_parameter(target.name)
        assert torch.equal(the_rest(target, now), the_rest(target, before)), target.name
        assert not torch.equal(rows_of(target, now), rows_of(target, before)), target.name
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, clean.get_parameter(n))}
    assert changed == set(group.names)
    snapshot.restore(verify=True)
    assert all(torch.equal(p, clean.get_parameter(n)) for n, p in model.named_parameters())


def attention_output(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The input of layer 0's attention output projection: the heads' weighted values, side by side."""
    out_proj = next(t for t in resolve_group(model, kinds_cfg("attn_o")).targets if t.layer == 0)
    seen: list[torch.Tensor] = []
    module = model.get_submodule(out_proj.name.removesuffix(".weight"))
    handle = module.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("arch", FUSED_QKV)
def test_the_value_rows_are_the_ones_the_model_reads_as_values(arch: str) -> None:
    """Zeroing attn_only's rows (and the fused bias) zeroes every head's output: they are the values, all of them."""
    model = tiny(arch)
    tokens = torch.randint(3, 512, (2, 7), generator=torch.Generator().manual_seed(0))
    assert attention_output(model, tokens).abs().sum() > 0
    group = resolve_group(model, group_cfg("attn_only"))
    damage.apply(model, group, "ablation", 1.0, seed=0, repeat=0)
    for target in group.targets:
        bias = getattr(model.get_submodule(target.name.removesuffix(".weight")), "bias", None)
        if bias is not None:
            bias.data.zero_()
    assert torch.equal(attention_output(model, tokens), torch.zeros_like(attention_output(model, tokens)))


def mlp_output(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The output of layer 0's MLP block (a mixture of experts with its shared expert, where there is one)."""
    layer = model.get_submodule("model.layers.0")
    seen: list[torch.Tensor] = []
    handle = layer.mlp.register_forward_hook(
        lambda mod, args, out: seen.append(out[0] if isinstance(out, tuple) else out)
    )
    with torch.no_grad():
        model(tokens)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("arch", ["phi3", "mixtral", "qwen2_moe"])
def test_the_up_rows_of_a_fused_gate_up_are_the_ones_the_model_reads_as_up(arch: str) -> None:
    """With act(0) ≠ 0 (sigmoid), zeroing mlp_up's rows zeroes the MLP's output and zeroing mlp_gate's does not."""
    tokens = torch.randint(3, 512, (2, 7), generator=torch.Generator().manual_seed(0))
    for kind, zero in (("mlp_up", True), ("mlp_gate", False)):
        model = tiny(arch, hidden_act="sigmoid")
        clean = copy.deepcopy(model)
        group = resolve_group(model, kinds_cfg(kind))
        assert all(t.part is not None for t in group.targets if "gate_up" in t.name)
        damage.apply(model, group, "ablation", 1.0, seed=0, repeat=0)
        for target in group.targets:
            if target.part is not None:
                now, before = model.get_parameter(target.name), clean.get_parameter(target.name)
                assert torch.equal(the_rest(target, now), the_rest(target, before))
                assert not rows_of(target, now).any()
        output = mlp_output(model, tokens)
        assert (not output.any()) == zero, kind


def test_a_slice_is_saved_with_its_rows() -> None:
    """param_group.json names each tensor once and says, for a slice, which rows of which dimension."""
    model = shared("gpt2")
    summary = resolve_group(model, group_cfg("attn_only")).summary()
    names = [f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)]
    assert summary == {
        "name": "attn_only",
        "count": 2,
        "elements": 2 * 64 * 64,
        "kinds": {"attn_v": 2},
        "names": names,
        "slices": [{"name": n, "kind": "attn_v", "dim": 1, "ranges": [[128, 192]]} for n in names],
    }


# --- what is refused, in one line -----------------------------------------------------------------


def test_a_weight_matrix_no_rule_knows_refuses_the_groups_that_could_hold_it() -> None:
    """An unknown matrix inside an MLP makes mlp_only and all refuse, naming it; attn_only is unaffected."""
    model = tiny("llama")
    model.model.layers[0].mlp.adapter = nn.Linear(64, 64, bias=False)
    name = "model.layers.0.mlp.adapter.weight"
    for group in ("mlp_only", "all"):
        with pytest.raises(DegradeError) as info:
            resolve_group(model, group_cfg(group))
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"param_group={group}: {name} ") and "exclude" in message
    assert resolve_group(model, group_cfg("attn_only")).names == [
        f"model.layers.{i}.self_attn.v_proj.weight" for i in range(2)
    ]
    cfg = copy.copy(group_cfg("mlp_only"))
    cfg.exclude = [r"mlp\.adapter\."]
    assert len(resolve_group(model, cfg).names) == 6


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe"])
def test_neuron_ablation_on_stacked_experts_is_refused_in_one_line(arch: str) -> None:
    """The experts' neurons sit along two axes of a 3-D tensor: neuron_ablation refuses, naming the tensor."""
    model = shared(arch)
    group = resolve_group(model, group_cfg("mlp_only"))
    with pytest.raises(DegradeError, match=r"^degradation.options.unit=neuron: model\.layers\.0\.mlp\.experts\.") as e:
        damage.check(model, group, "neuron_ablation", {"unit": "neuron"})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("arch", "group", "tensor"),
    [("gpt2", "attn_only", "transformer.h.0.attn.c_attn.weight"), ("mixtral", "mlp", "model.layers.0.mlp.gate.weight")],
)
def test_activation_noise_refuses_slices_and_routers(arch: str, group: str, tensor: str) -> None:
    """Noise on a module's output cannot hit V rows alone, nor reach a router's choice: refused in one line."""
    model = shared(arch)
    resolved = resolve_group(model, group_cfg(group))
    with pytest.raises(DegradeError, match=r"^degradation=activation_noise: ") as info:
        damage.check(model, resolved, "activation_noise")
    assert "\n" not in str(info.value) and tensor in str(info.value)


def test_activation_noise_hooks_the_experts_once() -> None:
    """The experts' two tensors share one module: its output takes noise once, not once per tensor."""
    from degrade.model import hooks

    model = tiny("mixtral")
    group = resolve_group(model, group_cfg("mlp_only"))
    damage.apply(model, group, "activation_noise", 0.5, seed=0, repeat=0)
    assert hooks.attached(model) == 2  # one experts module per layer
    hooks.detach(model)


def test_a_slice_of_a_4bit_tensor_is_refused(tmp_path) -> None:
    """Re-quantizing a 4-bit tensor would move its other rows too: attn_only on a fused 4-bit qkv is refused."""
    tiny("phi3").save_pretrained(tmp_path)
    quantized = tf.AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=tf.BitsAndBytesConfig(load_in_4bit=True), device_map="cpu"
    )
    with pytest.raises(DegradeError) as info:
        resolve_group(quantized, group_cfg("attn_only"))
    message = str(info.value)
    assert message.startswith("param_group=attn_only: model.layers.0.self_attn.qkv_proj.weight ") and "4-bit" in message
    assert len(resolve_group(quantized, group_cfg("attn")).names) == 4  # the whole fused tensors are fine


# --- units inside fused tensors -------------------------------------------------------------------


def test_neuron_ablation_on_a_fused_gate_up_kills_the_gate_row_the_up_row_and_the_down_column() -> None:
    """On phi3's gate_up_proj, neuron i is row i (gate) and row I + i (up): both die with down's column i."""
    model = tiny("phi3")
    group = resolve_group(model, group_cfg("mlp_only"))
    damage.apply(model, group, "neuron_ablation", 0.5, seed=1, repeat=0, options={"unit": "neuron"})
    for layer in model.model.layers:
        gate, up = layer.mlp.gate_up_proj.weight.chunk(2, dim=0)
        dead = ~gate.any(dim=1)
        assert 0 < int(dead.sum()) < 128
        assert torch.equal(~up.any(dim=1), dead)
        assert torch.equal(~layer.mlp.down_proj.weight.any(dim=0), dead)


@pytest.mark.parametrize("group", ["attn", "attn_only"])
@pytest.mark.parametrize("arch", ["gpt_neox", "falcon_mha"])
def test_head_ablation_on_a_fused_qkv_follows_the_models_layout(arch: str, group: str) -> None:
    """A dead head's rows of the fused q/k/v (all three, or its v rows alone) die together, so its output is zero;
    every live head's output is as it was. These layouts interleave q, k and v head by head."""
    model = tiny(arch)
    resolved = resolve_group(model, group_cfg(group))
    for target in resolved.targets:  # the fused bias is outside every group: a dead head's v would still be its bias
        bias = getattr(model.get_submodule(target.name.removesuffix(".weight")), "bias", None)
        if bias is not None:
            bias.data.zero_()
    clean = copy.deepcopy(model)
    heads = model.config.num_attention_heads
    damage.apply(model, resolved, "neuron_ablation", 0.5, seed=0, repeat=0, options={"unit": "head"})
    tokens = torch.randint(3, 512, (2, 7), generator=torch.Generator().manual_seed(0))
    now = attention_output(model, tokens).unflatten(-1, (heads, -1))
    before = attention_output(clean, tokens).unflatten(-1, (heads, -1))
    silent = ~now.flatten(0, 1).any(dim=0).any(dim=1)
    assert silent.tolist() == [True, False, True, False]  # heads 0 and 2 drew below 0.5 in layer 0 (seed 0)
    assert torch.equal(now[:, :, ~silent], before[:, :, ~silent])


# --- per-tensor methods over stacked experts ------------------------------------------------------


def test_uni_quant_rounds_each_experts_tensor_over_its_own_range() -> None:
    """uni_quant(n) leaves each 3-D experts tensor with at most n values spanning its own [min, max]."""
    model = tiny("mixtral")
    clean = copy.deepcopy(model)
    group = resolve_group(model, group_cfg("mlp_only"))
    damage.apply(model, group, "uni_quant", 5, seed=0, repeat=0)
    for name in group.names:
        now, before = model.get_parameter(name), clean.get_parameter(name)
        assert now.ndim == 3 and now.unique().numel() <= 5
        assert now.min() == before.min() and now.max() == before.max()
