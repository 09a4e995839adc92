# Shared by scripts/test and scripts/run: make .venv with LifeLog and its test
# extra installed (which pulls in the demo extra: aw-client, for the demo's
# synthetic activity and the tests' feeders), and reinstall whenever
# pyproject.toml changes.
ensure_venv() {
  local py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1 &&
         "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        py=$candidate; break
      fi
    done
  fi
  if [ -z "$py" ]; then
    echo "LifeLog needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 2
  fi
  local stamp=".venv/.lifelog-installed"
  local want
  want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "Setting up .venv with $py (one-time, about a minute)..." >&2
    "$py" -m venv .venv
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' >&2
    echo "$want" > "$stamp"
  fi
}
