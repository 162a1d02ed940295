#!/usr/bin/env bash
# Create/refresh the project venv (see scripts/venv_path.sh). Idempotent: a stamp keyed on pyproject.toml's hash
# lets repeated calls return in well under a second.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/venv_path.sh"
VENV="$ARBORIST_VENV"
mkdir -p "$(dirname "$VENV")"
PY="$VENV/bin/python"
STAMP="$VENV/.arborist-setup-stamp"

TORCH_PIN="torch==2.14.1"
TORCHVISION_PIN="torchvision==0.29.1"

if [[ ! -x "$PY" ]]; then
    PYTHON_BIN="${PYTHON:-python3.11}"
    if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
        echo "setup: $PYTHON_BIN not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "setup: creating $VENV with $PYTHON_BIN"
    "$PYTHON_BIN" -m venv "$VENV"
fi

# the editable install points at this checkout, so the stamp names it too
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $TORCH_PIN $TORCHVISION_PIN $ROOT"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

echo "setup: installing dependencies into $VENV"
"$PY" -m pip install --quiet "$TORCH_PIN" "$TORCHVISION_PIN"
"$PY" -m pip install --quiet -e '.[test]'
echo "$want" > "$STAMP"
echo "setup: done"
