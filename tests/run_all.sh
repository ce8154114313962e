#!/usr/bin/env bash
# Every test, in two environments (README, "Tests"): this one (the CPU torch build the main job uses), then, unless
# this one has torchvision already, the families whose processor needs torchvision in a second virtual environment
# with torch 2.14.1 + torchvision 0.29.1, made on first use (~5.5 GB) and reused. Arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1

python -m pytest -q "$@"
if python -c "import torchvision" >/dev/null 2>&1; then
  exit 0  # the run above already ran the torchvision families
fi

venv="${FINEDEFICS_TORCHVISION_VENV:-.venv-torchvision}"
if [ ! -f "$venv/.installed" ]; then
  echo "Making the torchvision environment in $venv (torch 2.14.1 + torchvision 0.29.1, once)"
  python -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$venv/bin/pip" install -q -e ".[dev,torchvision]"
  touch "$venv/.installed"
fi
"$venv/bin/python" -m pytest -q -m torchvision "$@"
