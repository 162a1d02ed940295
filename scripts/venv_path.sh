# Sourced by the other scripts: where the project's virtual environment lives.
# Shared across clones (CI clones afresh each run) so torch is installed once per machine;
# set ARBORIST_VENV to use another place, e.g. ARBORIST_VENV=.venv.
ARBORIST_VENV="${ARBORIST_VENV:-$HOME/.cache/arborist/venv-py311}"
