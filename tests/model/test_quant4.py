"""The 4-bit path (bitsandbytes nf4 on the CPU): what a run says on a tiny model, damage on the embedded one."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import compose_cfg, run_cli

from degrade.generation import text
from degrade.job.runner import run_job
from degrade.methods import damage
from degrade.model import loading, quant4
from degrade.model.groups import resolve_group
from degrade.model.restore import Snapshot
from degrade.model.tiny import build_random_model

TINY_4BIT = ("model=tiny_random", "model.load_4bit=true")
LOAD_LINE = r"^model {name} loaded from random:llama in \d+\.\d s \(transformers, cpu, {weights}\)$"


def load_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "degrade.model.loading" and " loaded from " in r.getMessage()
    ]


# --- what a 4-bit run says: a tiny random Llama, loaded in nf4 -----------------------------


@pytest.mark.parametrize(
    ("load_4bit", "weights"), [(True, "nf4 (4-bit) linear weights, float32 elsewhere"), (False, "float32")]
)
def test_the_load_line_says_how_the_weights_are_stored(caplog, embedded_dir, load_4bit: bool, weights: str) -> None:
    """A 4-bit load says nf4 (4-bit) rather than float32; a plain load says float32."""
    name = f"tiny-load-line-{load_4bit}"  # a name of its own: a fresh load, not the process's cached model
    cfg = compose_cfg("model=tiny_random", f"model.load_4bit={str(load_4bit).lower()}", f"model.name={name}")
    with caplog.at_level(logging.INFO, logger="degrade.model.loading"):
        loaded = loading.load(cfg.model, "cpu")
    [line] = load_lines(caplog)
    assert re.match(LOAD_LINE.format(name=name, weights=re.escape(weights)), line), line
    assert any(quant4.is_4bit(p) for p in loaded.model.parameters()) == load_4bit


def test_a_4bit_group_counts_its_real_weights(embedded_dir) -> None:
    """Packed nf4 storage holds two weights a byte; the group's element count is the number of weights."""
    cfg = compose_cfg(*TINY_4BIT)
    model = loading.load(cfg.model, "cpu").model
    group = resolve_group(model, cfg.param_group)
    float_model, _ = build_random_model("llama", tokenizer_dir=embedded_dir)
    assert group.numel == resolve_group(float_model, cfg.param_group).numel
    for target in group.targets:
        packed = model.get_parameter(target.name)
        assert packed.dtype == torch.uint8 and target.numel == 2 * packed.numel(), target.name


@pytest.mark.slow
def test_a_4bit_run_prints_no_bitsandbytes_kernels_warning(tmp_path, embedded_dir) -> None:
    """bitsandbytes warns about the optional ``kernels`` package on import; a 4-bit run does not pass that on."""
    bare = subprocess.run(
        [sys.executable, "-c", "import logging; logging.basicConfig(); import bitsandbytes"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if "kernels-community" not in bare.stderr:
        pytest.skip("bitsandbytes gives no kernels warning on this CPU (no AVX512-BF16)")
    result = run_cli(
        *TINY_4BIT,
        "experiment.limit=1",
        "generation.max_new_tokens=2",
        "degradation.levels=[0]",
        f"hydra.run.dir={tmp_path}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "kernels" not in output
    assert "nf4 (4-bit) linear weights" in output


# --- damage and restore on the embedded SmolLM2 in nf4 -------------------------------------


@pytest.fixture(scope="module")
def loaded4(embedded_dir):
    cfg = compose_cfg("model.load_4bit=true")
    return cfg, loading.load(cfg.model, "cpu")


def _state(snapshot: Snapshot) -> list[torch.Tensor]:
    return [t.clone() for t in snapshot.tensors]


def _generate(cfg, loaded) -> list[str]:
    params = text.effective_params(loaded.model, compose_cfg("generation.max_new_tokens=6").generation)
    ids = [text.encode(loaded.tokenizer, p.text) for p in cfg.experiment.prompts[:2]]
    return [s.text for s in text.generate(loaded.model, loaded.tokenizer, ids, params, loaded.device)]


@pytest.mark.slow
def test_group_is_4bit_and_restore_is_bit_exact_after_generation(loaded4) -> None:
    cfg, loaded = loaded4
    group = resolve_group(loaded.model, cfg.param_group)
    params = [loaded.model.get_parameter(n) for n in group.names]
    assert all(quant4.is_4bit(p) for p in params) and params[0].dtype == torch.uint8
    snapshot = Snapshot(loaded.model, group.names, loaded.clean)
    clean = _state(snapshot)
    clean_text = _generate(cfg, loaded)  # a forward pass may repack the codes for the CPU kernel
    for method, level in [("mult_gauss", 0.3), ("ablation", 0.5), ("uni_quant", 4)]:
        snapshot.restore()
        damage.apply(loaded.model, group, method, level, seed=1, repeat=0)
        assert not all(torch.equal(a, b) for a, b in zip(clean, snapshot.tensors)), method
        _generate(cfg, loaded)
        snapshot.restore(verify=True)
        assert all(torch.equal(a, b) for a, b in zip(clean, snapshot.tensors)), method
    assert _generate(cfg, loaded) == clean_text
    snapshot.restore()  # leave the codes in their loaded layout for the next test


@pytest.mark.slow
def test_a_second_group_after_generation_restores_bit_exact(loaded4) -> None:
    """Jobs of a 4-bit sweep share clean copies taken before any forward pass, whatever group comes next."""
    cfg, loaded = loaded4
    mlp = resolve_group(loaded.model, cfg.param_group)
    attn = resolve_group(loaded.model, compose_cfg("param_group=attn").param_group)
    Snapshot(loaded.model, mlp.names, loaded.clean).restore()
    clean_text = _generate(cfg, loaded)  # may repack every 4-bit weight for the CPU kernel
    second = Snapshot(loaded.model, attn.names, loaded.clean)
    second.restore()  # as every cell does: the codes go back to their loaded layout before damage
    damage.apply(loaded.model, attn, "mult_gauss", 0.3, seed=1, repeat=0)
    second.restore(verify=True)
    assert _generate(cfg, loaded) == clean_text
    second.restore()


@pytest.mark.slow
def test_damage_acts_on_dequantized_values(loaded4) -> None:
    cfg, loaded = loaded4
    group = resolve_group(loaded.model, cfg.param_group)
    snapshot = Snapshot(loaded.model, group.names, loaded.clean)
    snapshot.restore()
    param = loaded.model.get_parameter(group.names[0])
    before = quant4.dequantize(param)
    damage.apply(loaded.model, group, "ablation", 0.5, seed=1, repeat=0)
    after = quant4.dequantize(param)
    newly_zero = ((after == 0) & (before != 0)).float().sum() / (before != 0).float().sum()
    assert 0.45 < float(newly_zero) < 0.55  # nf4 has an exact zero: the mask survives re-quantization
    kept = (after != 0) & (before != 0)
    assert torch.allclose(after[kept], before[kept], rtol=0.3, atol=1e-3)  # the rest re-quantizes near itself
    snapshot.restore(verify=True)


@pytest.mark.slow
def test_4bit_job_end_to_end(tmp_path, embedded_dir) -> None:
    cfg = compose_cfg(
        "model.load_4bit=true",
        "experiment.limit=2",
        "degradation.levels=[0,0.4]",
        "generation.max_new_tokens=8",
        "verify_restore=true",
    )
    run_job(cfg, tmp_path)
    frame = pd.read_parquet(tmp_path / "records.parquet")
    assert len(frame) == 4 and frame.load_4bit.all() and frame.usar_4bit.all()
    assert frame.groupby("level_value").weights_fingerprint.nunique().tolist() == [1, 1]
    assert frame.weights_fingerprint.nunique() == 2
