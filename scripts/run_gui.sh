#!/usr/bin/env bash
# Launch the Arborist desktop app.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
source scripts/venv_path.sh
# Qt's xcb plugin needs system libraries pip cannot install: as root they are installed,
# otherwise the exact apt-get line is printed and we stop before launching.
case "${QT_QPA_PLATFORM:-xcb}" in
    xcb*) bash scripts/qt_system_libs.sh --install ;;
esac
if [[ ! -f app/__main__.py ]]; then
    echo "run_gui: the GUI entry point app/__main__.py does not exist yet (GUI is in progress)." >&2
    exit 2
fi
exec "$ARBORIST_VENV/bin/python" -m app "$@"
