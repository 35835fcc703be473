#!/usr/bin/env bash
# Set up .venv if needed, then run the main job: verify the theorem and run the quick toy/digit labs into results/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/python -m scripts.main "$@"
