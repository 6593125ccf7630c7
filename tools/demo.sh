#!/usr/bin/env bash
# The main job, end to end, offline, on data made by the repository's own tools.
# Run by `make demo` after setup and a release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
zoo=$(swift build -c release --show-bin-path)/zoo
"$root/tools/fixtures/generate.sh" core
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$zoo" inspect .cache/fixtures/core/safetensors/all_dtypes.safetensors
