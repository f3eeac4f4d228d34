# Sourced by the scripts: make sure the project's virtual environment exists and is current.
# Installs the package (editable) with its dev extras when pyproject.toml changed.
VENV="${QOSPLANE_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.qosplane-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/pip" install --quiet -e ".[dev]" 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c "import qosplane" 
  touch "$stamp"
fi
export VENV
