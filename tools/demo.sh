#!/usr/bin/env bash
# The main job, end to end, on what the tool and the repository make themselves: no Python.
# `zoo init` writes a MobileNetV3-Small checkpoint with seeded random weights, the tour converts,
# inspects, lists, describes, classifies the sample image zoo/samples/sailboat.jpg and embeds it.
# Then, when the network reaches download.pytorch.org, real pretrained weights are fetched and the
# sample image classified for real.
# Run by `make demo` after a release build; `make test` runs it offline against the debug build
# (Tests/CLITests/DemoTests.swift).
#   ZOO_BIN           the zoo executable (default: the release build's)
#   ZOO_DEMO_WORK     the folder for the demo's files (default .cache/demo)
#   ZOO_DEMO_OFFLINE  1: skip the network part
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
zoo=${ZOO_BIN:-$(swift build -c release --show-bin-path)/zoo}
work=${ZOO_DEMO_WORK:-$root/.cache/demo}
mkdir -p "$work"
image=zoo/samples/sailboat.jpg
step() { printf '\n\033[1m$ zoo %s\033[0m\n' "$*"; "$zoo" "$@"; }
# Like step, showing only the first N lines of the output.
stepcut() { local n=$1; shift; step "$@" > "$work/out.txt"; head -"$n" "$work/out.txt"; echo "..."; }
step init mobilenet_v3_small --seed 0 -o "$work/random.safetensors" --force
step convert "$work/random.safetensors" --arch auto --dtype f16 -o "$work/mobilenet_v3_small.safetensors" --force
stepcut 16 inspect "$work/mobilenet_v3_small.safetensors"
step list --family mobilenet_v3
stepcut 16 info mobilenet_v3_small
step predict "$work/mobilenet_v3_small.safetensors" "$image" --top 5
echo "(seeded random weights: the labels are arbitrary)"
step features "$work/mobilenet_v3_small.safetensors" "$image" -o "$work/embeddings.safetensors" --force
online=0
if [ "${ZOO_DEMO_OFFLINE:-}" != 1 ]; then
  if curl -sfI --max-time 5 https://download.pytorch.org/models/ >/dev/null 2>&1 || curl -sI --max-time 5 https://download.pytorch.org/ >/dev/null 2>&1; then
    online=1
  fi
fi
if [ "$online" = 1 ]; then
  step fetch resnet50 --weights IMAGENET1K_V2
  step predict resnet50 "$image" --top 5
else
  printf '\n(no network to download.pytorch.org: skipping `zoo fetch resnet50` and classifying with real weights)\n'
fi
printf '\ndemo: done\n'
