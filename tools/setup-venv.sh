#!/usr/bin/env bash
# Creates (or reuses) the Python reference environment used by the tests and
# fixture generators. Location: $ZOO_VENV, default .venv in the repository.
# A stamp keyed by requirements.txt's content makes a second run a no-op.
#
# Disk: the installed environment is ~7.6 GB (PyPI's torch pulls its CUDA
# libraries). pip keeps no cache (--no-cache-dir: a cache would hold another
# ~4 GB of wheels) and downloads into a folder beside the venv, removed after:
# at its peak the install needs about 12 GB on the venv's file system (the
# downloaded wheels and the installed tree) and nothing in $TMPDIR.
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
need_gb=${ZOO_VENV_NEED_GB:-12}
parent=$(dirname "$venv")
mkdir -p "$parent"
free_kb=$(df -Pk "$parent" | awk 'NR == 2 { print $4 }')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((need_gb * 1024 * 1024)) ]; then
  echo "setup-venv: $parent: only $((free_kb / 1024 / 1024)) GB free; the Python reference environment needs about $need_gb GB (torch with its CUDA libraries). Free some space or set ZOO_VENV to a folder on a larger disk." >&2
  exit 1
fi
echo "setup-venv: installing the Python reference environment into $venv (first run downloads ~4 GB)" >&2
python3 -m venv "$venv"
# pip's downloads and unpacking go beside the venv (same file system as the check above), removed after.
work=$(mktemp -d "$parent/.zoo-pip-XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
"$venv/bin/python" -m pip install --quiet --no-cache-dir --progress-bar off -r "$req"
echo "$want" > "$stamp"
