# Sourced by scripts/demo and scripts/test: a virtualenv in .venv with Nurture installed.
# Idempotent: it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Nurture needs Python 3.11 or newer (found: $("$python" --version 2>&1)); set PYTHON=…" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$python" -m venv .venv 2>/dev/null; then
    # Debian's python3 ships venv separately.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
      rm -rf .venv && "$python" -m venv .venv
    else
      echo "could not create a virtualenv: install python3-venv" >&2
      exit 1
    fi
  fi
fi
stamp=.venv/.nurture-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing Nurture and its dependencies into .venv…" >&2
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip &&
          .venv/bin/python -m pip install --disable-pip-version-check -e ".[dev]"; } \
       > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "installation failed; the whole log is in .venv/install.log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
