"""What the vLLM backend hands its engine after a cell's damage: the blocks holding the group's tensors.

Runs without vLLM: the choice of tensors is plain Python (tests/generation/test_vllm_engine.py runs the engine).
"""

from __future__ import annotations

from degrade.generation.vllm_engine import blocks

MLP = [
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.0.mlp.down_proj.weight",
    "model.layers.11.mlp.up_proj.weight",
]


def test_a_layers_tensors_go_with_their_whole_block() -> None:
    assert blocks(MLP) == {"model.layers.0.mlp", "model.layers.11.mlp"}
    assert blocks(["model.layers.3.self_attn.v_proj.weight"]) == {"model.layers.3.self_attn"}  # q, k, v together
    assert blocks(["transformer.h.2.attn.c_attn.weight"]) == {"transformer.h.2.attn"}  # gpt2's names


def test_a_tensor_outside_a_numbered_layer_hands_every_weight() -> None:
    assert blocks([*MLP, "model.embed_tokens.weight"]) is None
    assert blocks(["lm_head.weight"]) is None
    assert blocks(["model.norm.weight"]) is None


class _Recorder:
    """Stands in for vLLM's LLM object (no vLLM here): records what each hand-over sends."""

    def __init__(self) -> None:
        self.sent: list[set[str]] = []

    def collective_rpc(self, method: str, kwargs: dict) -> None:
        self.sent.append({name for name, _ in kwargs["weights_iterator"]})

    def reset_prefix_cache(self) -> None:
        pass


def test_the_engine_is_handed_back_every_block_it_may_hold_damaged() -> None:
    """After a group outside the numbered layers (the embeddings) was damaged, a clean cell hands every weight."""
    from torch import nn

    from degrade.generation.vllm_engine import Engine

    model = nn.Module()
    model.embed = nn.Embedding(4, 2)
    block = {"mlp": nn.ModuleDict({"up": nn.Linear(2, 2)}), "attn": nn.ModuleDict({"v": nn.Linear(2, 2, bias=False)})}
    model.layers = nn.ModuleList([nn.ModuleDict(block)])
    everything = set(model.state_dict())
    engine = Engine(_Recorder(), "cpu", 0.1, 0.0)
    engine.load(model, clean=True, names=["embed.weight"])
    assert engine.llm.sent == []  # clean on both sides: nothing to hand
    engine.load(model, clean=False, names=["embed.weight"])
    engine.load(model, clean=True, names=["layers.0.mlp.up.weight"])  # the embeddings must go back too
    assert engine.llm.sent == [everything, everything]
    engine.load(model, clean=False, names=["layers.0.mlp.up.weight"])
    engine.load(model, clean=False, names=["layers.0.attn.v.weight"])  # another group: the mlp goes back as well
    engine.load(model, clean=True, names=["layers.0.attn.v.weight"])
    mlp, attn = {"layers.0.mlp.up.weight", "layers.0.mlp.up.bias"}, {"layers.0.attn.v.weight"}
    assert engine.llm.sent[2:] == [mlp, mlp | attn, attn]
