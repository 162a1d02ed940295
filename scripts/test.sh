#!/usr/bin/env bash
# Run the test suite (default: everything not marked slow). Extra args go to pytest,
# e.g. `bash scripts/test.sh -m slow` or `bash scripts/test.sh tests/engine -k counting`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/venv_path.sh
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
exec "$ARBORIST_VENV/bin/python" -m pytest -q "$@"
