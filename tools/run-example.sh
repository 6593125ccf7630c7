#!/usr/bin/env bash
# Builds Examples/BackboneDemo (a separate package depending on this one by path) and runs it on a
# checkpoint converted from the torchvision fixture and the sample image; checks what it prints. Then
# Examples/TransferDemo: trains a classifier for the images it makes on a converted resnet18 and classifies
# new ones with the saved checkpoint.
# `--build-only` builds the two examples and stops (tools/test.sh does that while the fixtures are written).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fixtures=${ZOO_FIXTURES:-$root/.cache/fixtures}
# The package is a path dependency: SwiftPM's cached build plan misses files added to it, so re-plan.
# Both examples build into one scratch folder, so ModelZoo is compiled for them once.
scratch=$root/.build/examples
# Builds Examples/NAME; prints the path of its executable.
build_example() {
  (cd "$root/Examples/$1" && swift build -q --disable-build-manifest-caching --scratch-path "$scratch" >&2 &&
    echo "$(swift build --show-bin-path --scratch-path "$scratch")/$1")
}
if [ "${1:-}" = --build-only ]; then
  build_example BackboneDemo >/dev/null
  build_example TransferDemo >/dev/null
  exit 0
fi
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
zoo=${ZOO_BIN:-$(swift build --show-bin-path)/zoo}  # `make test` names its build
"$zoo" convert "$fixtures/predict/mobilenet_v3_small.pth" --arch mobilenet_v3_small -o "$work/m.safetensors" >/dev/null
bin=$(build_example BackboneDemo)
cp "$root/zoo/samples/sailboat.jpg" "$work/sailboat.jpg"
# Counted with inotify: the demo opens the checkpoint once and the image once.
py=${ZOO_PYTHON:-$root/.venv/bin/python}
"$py" "$root/tools/count_opens.py" --out "$work/opens.json" "$work/m.safetensors" "$work/sailboat.jpg" -- \
  "$bin" "$work/m.safetensors" "$work/sailboat.jpg" | tee "$work/out.txt"
"$py" -c "import json,sys; c=json.load(open(sys.argv[1])); sys.exit(0 if sorted(c.values()) == [1, 1] else 'example: opens ' + str(c) + ', expected the checkpoint and the image once each')" "$work/opens.json"
expected_top=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['top5'][0][0])" "$fixtures/predict/reference.json")
grep -q "^features.12: \[1, 576, 7, 7\] (stride 32)$" "$work/out.txt" || { echo "example: wrong last feature map" >&2; exit 1; }
[ "$(grep -c '^features' "$work/out.txt")" = 4 ] || { echo "example: expected 4 feature maps" >&2; exit 1; }
head -5 "$work/out.txt" | tail -1 | grep -q "^$expected_top " || { echo "example: top-1 is not torchvision's ($expected_top)" >&2; exit 1; }
echo "example: BackboneDemo ok"

tbin=$(build_example TransferDemo)
"$zoo" convert "$fixtures/transfer/resnet18.pth" --arch resnet18 -o "$work/resnet18.safetensors" >/dev/null
"$tbin" "$work/resnet18.safetensors" "$work/transfer" | tee "$work/transfer.txt"
grep -q "^images: 36 training, 12 validation, classes \[\"blue\", \"green\", \"red\"\]$" "$work/transfer.txt" || { echo "example: TransferDemo did not read its images" >&2; exit 1; }
grep -q "^kept epoch [0-9]*, validation accuracy " "$work/transfer.txt" || { echo "example: TransferDemo did not train" >&2; exit 1; }
[ -f "$work/transfer/colours.safetensors" ] || { echo "example: TransferDemo wrote no checkpoint" >&2; exit 1; }
for c in red green blue; do
  grep -q "^new $c image -> $c " "$work/transfer.txt" || { echo "example: TransferDemo misclassified a new $c image" >&2; exit 1; }
done
echo "example: TransferDemo ok"
