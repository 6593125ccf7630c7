#!/usr/bin/env bash
# The main job, end to end, offline, on what the repository makes itself: a torchvision
# MobileNetV3-Small checkpoint written by the fixture tools (seeded random weights) and the sample
# image zoo/samples/sailboat.jpg. Then, when the network reaches download.pytorch.org, real
# pretrained weights are fetched and the sample image classified for real.
# Run by `make demo` after setup and a release build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
zoo=$(swift build -c release --show-bin-path)/zoo
fixtures=${ZOO_FIXTURES:-$root/.cache/fixtures}
"$root/tools/fixtures/generate.sh" predict
work="$root/.cache/demo"; mkdir -p "$work"
image=zoo/samples/sailboat.jpg
step() { printf '\n\033[1m$ zoo %s\033[0m\n' "$*"; "$zoo" "$@"; }
# Like step, showing only the first N lines of the output.
stepcut() { local n=$1; shift; step "$@" > "$work/out.txt"; head -"$n" "$work/out.txt"; echo "..."; }
step convert "$fixtures/predict/mobilenet_v3_small.pth" --arch mobilenet_v3_small -o "$work/mobilenet_v3_small.safetensors" --force
stepcut 16 inspect "$work/mobilenet_v3_small.safetensors"
step list --family mobilenet_v3
stepcut 16 info mobilenet_v3_small
step predict "$work/mobilenet_v3_small.safetensors" "$image" --top 5
echo "(seeded random weights: the labels are arbitrary; the numbers match torchvision's, see make test)"
step features "$work/mobilenet_v3_small.safetensors" "$image" -o "$work/embeddings.safetensors" --force
if curl -sfI --max-time 5 https://download.pytorch.org/models/ >/dev/null 2>&1 || curl -sI --max-time 5 https://download.pytorch.org/ >/dev/null 2>&1; then
  step fetch resnet50 --weights IMAGENET1K_V2
  step predict resnet50 "$image" --top 5
else
  printf '\n(no network to download.pytorch.org: skipping `zoo fetch resnet50` and classifying with real weights)\n'
fi
