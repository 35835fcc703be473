#!/usr/bin/env bash
# Create .venv (once) and install the project into it. Idempotent; safe to rerun.
# - If a torch is already importable (e.g. your CUDA build, via --system-site-packages), it is kept.
# - Otherwise the pinned CPU build torch==2.13.0 is installed first, so the unpinned
#   dependency resolution never pulls a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
stamp=.venv/.bootstrap-stamp
want="$(sha1sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  "$VPY" -m pip install --quiet --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
fi
"$VPY" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
echo "$want" > "$stamp"
