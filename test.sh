#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite. Extra args go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
