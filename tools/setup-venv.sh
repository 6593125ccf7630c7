#!/usr/bin/env bash
# Creates (or reuses) the Python reference environment used by the tests and
# fixture generators. Location: $ZOO_VENV, default .venv in the repository.
# A stamp keyed by requirements.txt's content makes a second run a no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${ZOO_VENV:-$root/.venv}
req="$here/requirements.txt"
stamp="$venv/.zoo-requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup-venv: installing the Python reference environment into $venv (first run downloads ~4 GB)" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --progress-bar off -r "$req"
echo "$want" > "$stamp"
