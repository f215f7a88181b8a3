"""The cache of converted GGUF weights is keyed by content: a file is never served another file's weights.

Real GGUF files, written with the ``gguf`` package's writer: a one-layer Llama with a byte-level vocabulary, small
enough that Transformers converts it in about a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader, GGUFWriter
from safetensors.torch import load_file

from degrade.model.converted import content_digest, convert_gguf

HIDDEN, FFN, KV = 64, 128, 32
SHAPES = {
    "output_norm.weight": (HIDDEN,),
    "blk.0.attn_norm.weight": (HIDDEN,),
    "blk.0.ffn_norm.weight": (HIDDEN,),
    "blk.0.attn_q.weight": (HIDDEN, HIDDEN),
    "blk.0.attn_k.weight": (KV, HIDDEN),
    "blk.0.attn_v.weight": (KV, HIDDEN),
    "blk.0.attn_output.weight": (HIDDEN, HIDDEN),
    "blk.0.ffn_gate.weight": (FFN, HIDDEN),
    "blk.0.ffn_up.weight": (FFN, HIDDEN),
    "blk.0.ffn_down.weight": (HIDDEN, FFN),
}


def byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in for each of the 256 bytes (what a byte-level BPE vocabulary is spelt in)."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    moved = [b for b in range(256) if b not in kept]
    return [chr(b) for b in kept] + [chr(256 + i) for i in range(len(moved))]


def write_gguf(path: Path, seed: int) -> None:
    """A tiny Llama GGUF whose float32 weights are drawn from ``seed``: the same size for every seed."""
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(16)
    writer.add_file_type(0)
    tokens = ["<|endoftext|>", *byte_alphabet(), "he"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))
    writer.add_token_merges(["h e"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    rng = np.random.default_rng(seed)
    for name, shape in {"token_embd.weight": (len(tokens), HIDDEN), **SHAPES}.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def up_proj(path: Path) -> torch.Tensor:
    """The MLP up projection as the GGUF file holds it."""
    tensor = next(t for t in GGUFReader(path).tensors if t.name == "blk.0.ffn_up.weight")
    return torch.from_numpy(np.array(tensor.data)).reshape(FFN, HIDDEN)


def converted_up_proj(target: Path) -> torch.Tensor:
    return load_file(target / "model.safetensors")["model.layers.0.mlp.up_proj.weight"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEGRADE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_two_files_of_one_name_and_size_are_two_conversions(tmp_path: Path, cache: Path) -> None:
    first, second = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for seed, path in enumerate((first, second)):
        path.parent.mkdir()
        write_gguf(path, seed)
    assert first.stat().st_size == second.stat().st_size and not torch.equal(up_proj(first), up_proj(second))

    converted = [convert_gguf(first), convert_gguf(second)]

    assert converted[0] != converted[1]
    for path, target in zip((first, second), converted):
        assert torch.equal(converted_up_proj(target), up_proj(path))  # each file's own weights


def test_a_file_rewritten_in_place_with_its_old_times_is_hashed_again(tmp_path: Path, cache: Path) -> None:
    """The digest is remembered by path, size and times; a rewrite that restores size and mtime is still seen."""
    path = tmp_path / "model.gguf"
    write_gguf(path, 0)
    before, stat = content_digest(path), path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last byte of the last tensor
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert content_digest(path) != before
