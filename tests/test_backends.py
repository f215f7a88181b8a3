"""Backend selection: Unsloth only where CUDA and unsloth both are; Transformers otherwise.

The Unsloth loading path itself needs a GPU and is not exercised here.
"""

from __future__ import annotations

import pytest
from conftest import run_cli

from degrade.backends import select_backend
from degrade.errors import DegradeError


@pytest.mark.parametrize(
    ("cuda", "unsloth", "gguf", "expected"),
    [
        (True, True, False, "unsloth"),
        (True, False, False, "transformers"),
        (False, True, False, "transformers"),
        (False, False, False, "transformers"),
        (True, True, True, "transformers"),  # Unsloth does not read GGUF
    ],
)
def test_auto_picks_unsloth_only_with_cuda_and_unsloth(cuda: bool, unsloth: bool, gguf: bool, expected: str) -> None:
    assert select_backend("auto", cuda=cuda, unsloth=unsloth, gguf=gguf) == expected


def test_transformers_is_always_allowed() -> None:
    assert select_backend("transformers", cuda=False, unsloth=False) == "transformers"


@pytest.mark.parametrize(
    ("cuda", "unsloth", "needs"),
    [
        (False, True, "a CUDA GPU"),
        (True, False, "the unsloth package"),
        (False, False, "a CUDA GPU and the unsloth"),
    ],
)
def test_unsloth_where_it_cannot_run_names_what_is_missing(cuda: bool, unsloth: bool, needs: str) -> None:
    with pytest.raises(DegradeError, match="model.backend=unsloth: needs " + needs):
        select_backend("unsloth", cuda=cuda, unsloth=unsloth)


def test_cli_unsloth_on_this_machine_is_one_line(tmp_path) -> None:
    result = run_cli("model.backend=unsloth", "experiment.limit=1", f"hydra.run.dir={tmp_path}")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "model.backend=unsloth: needs" in output and "Traceback" not in output
