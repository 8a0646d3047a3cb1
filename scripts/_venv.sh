# Sourced by the set-up scripts: create/refresh the project's virtual environment.
# Usage: jisik_venv "<extras>"   (e.g. "dev,postgres")
set -euo pipefail
jisik_venv() {
  local extras="$1"
  local root; root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  VENV="${JISIK_VENV:-$root/.venv}"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  # constraints pin every package version we have tested with (offline-safe, no torch/CUDA)
  PIP_CONSTRAINT="$root/requirements/constraints.txt" "$VENV/bin/python" -m pip install --quiet \
    --disable-pip-version-check -e "$root[$extras]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import jisik" || { echo "jisik failed to install" >&2; exit 1; }
  export PATH="$VENV/bin:$PATH"
}
