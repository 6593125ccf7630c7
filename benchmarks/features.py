#!/usr/bin/env python3
"""Embedding throughput at scale: `zoo features` over camera-size JPEGs vs PyTorch's DataLoader pipeline (issue #17).

Images: `--images` JPEGs of `--megapixels` MP (default 1,000 at 3.1 MP, 2048 x 1536, quality 90), made from the
sample photo (zoo/samples/sailboat.jpg) upscaled, each with its own crop offset, mirror and pixel noise so that no
two files are the same and the JPEG decoder does real work. Model: ResNet-50 (torchvision architecture, seeded
random weights; the timing does not depend on the values), its weights' transforms (resize 256, centre crop 224).
Threads: `--threads` (2) for the compute in both.

Measured, alternating the engines each round, medians over `--rounds`:
- zoo: `zoo features BASE DIR -o OUT --batch 8 --threads T` (whole process: start-up, decoding, resizing,
  inference, writing), in images/s, with the default decode pipeline (one decode thread ahead of inference),
  with `--decode-threads 0` (decoding between batches on the calling thread: no overlap), with
  `--decode-threads 2`, and with `--fast-decode` (libjpeg-turbo DCT scaling, Pillow's draft rule).
- zoo, inference alone on pre-decoded tensors: `zoo bench BASE --batch 8` (median forward pass), in images/s.
  Its ratio to the lines above is the issue's "at least 0.9x" figure.
- What `--fast-decode` does to the numbers: per image, the cosine similarity of its embedding to the exact
  decode's, and the largest difference relative to the largest value.
- PyTorch: torchvision's resnet50 under `no_grad`, a list-of-files Dataset with PIL decoding and the same
  transforms, `DataLoader(batch_size=8, num_workers=2)`, `torch.set_num_threads(T)` (whole process), images/s.

Writes the "Embeddings at scale (zoo features vs PyTorch)" section of benchmarks/RESULTS.md. Usage (from the
repository root, after `swift build -c release`):

    .venv/bin/python benchmarks/features.py [--threads 2] [--rounds 2] [--images 1000]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import results_md
from common import calibrated_resnet50, timed, zoo_bin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "Embeddings at scale (zoo features vs PyTorch)"

TORCH = r"""
import os, sys, torch, torchvision
from PIL import Image
folder, threads, pth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
model = torchvision.models.resnet50()
model.load_state_dict(torch.load(pth))
model.fc = torch.nn.Identity()
model.eval()
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
transform = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
class Files(torch.utils.data.Dataset):
    def __len__(self): return len(files)
    def __getitem__(self, i): return transform(Image.open(files[i]).convert("RGB"))
rows = 0
with torch.no_grad():
    for x in torch.utils.data.DataLoader(Files(), batch_size=8, num_workers=2):
        rows += len(model(x))
assert rows == len(files)
"""




def make_images(folder, count, megapixels):
    """`count` distinct camera-size JPEGs (4:3) from the sample photo: crop offset, mirror and noise per image."""
    import numpy as np
    from PIL import Image
    os.makedirs(folder)
    w = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = w * 3 // 4
    big = Image.open(os.path.join(ROOT, "zoo", "samples", "sailboat.jpg")).convert("RGB").resize((w + 64, h + 48), Image.BICUBIC)
    base = np.asarray(big)
    rng = np.random.default_rng(0)
    for i in range(count):
        dx, dy = int(rng.integers(0, 64)), int(rng.integers(0, 48))
        a = base[dy:dy + h, dx:dx + w]
        if i % 2:
            a = a[:, ::-1]
        noise = rng.integers(-6, 7, size=a.shape, dtype=np.int16)
        a = np.clip(a.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(a, "RGB").save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)
    return w, h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--megapixels", type=float, default=3.1)
    ap.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    import torch
    import torchvision
    work = tempfile.mkdtemp(prefix="zoo-features-bench-")
    try:
        photos = os.path.join(work, "photos")
        t0 = time.perf_counter()
        w, h = make_images(photos, a.images, a.megapixels)
        print(f"{a.images} JPEGs of {w} x {h} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        pth, base = calibrated_resnet50(work)
        load0 = open("/proc/loadavg").read().split()[:3]
        t = {"zoo": [], "zoo_serial": [], "zoo_decode2": [], "zoo_fast": [], "zoo_predecoded": [], "torch": []}
        variants = {"zoo": [], "zoo_serial": ["--decode-threads", "0"], "zoo_decode2": ["--decode-threads", "2"],
                    "zoo_fast": ["--fast-decode"]}
        for r in range(a.rounds):
            for key, extra in variants.items():
                seconds, _ = timed([zoo_bin(), "features", base, photos, "-o", os.path.join(work, f"{key}.safetensors"), "--batch", "8",
                                    "--threads", str(a.threads), "-q", "--force"] + extra)
                t[key].append(a.images / seconds)
            _, out = timed([zoo_bin(), "bench", base, "--batch", "8", "--threads", str(a.threads), "--iterations", "10", "--json"])
            t["zoo_predecoded"].append(8000 / json.loads(out)["median_ms"])
            seconds, _ = timed([sys.executable, "-c", TORCH, photos, str(a.threads), pth])
            t["torch"].append(a.images / seconds)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} images/s" for k, v in t.items()), file=sys.stderr, flush=True)
        load1 = open("/proc/loadavg").read().split()[:3]
        import numpy as np
        from safetensors.numpy import load_file
        exact = load_file(os.path.join(work, "zoo.safetensors"))["embeddings"].astype(np.float64)
        fast = load_file(os.path.join(work, "zoo_fast.safetensors"))["embeddings"].astype(np.float64)
        for key in ("zoo_serial", "zoo_decode2"):
            same = load_file(os.path.join(work, f"{key}.safetensors"))["embeddings"]
            assert np.array_equal(same, exact.astype(np.float32)), f"{key}: the decode threads changed the embeddings"
        cosine = (exact * fast).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(fast, axis=1)
        fast_effect = (float(np.median(cosine)), float(cosine.min()), float(np.abs(exact - fast).max() / np.abs(exact).max()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = {k: statistics.median(v) for k, v in t.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    pre = m["zoo_predecoded"]
    bound = (a.threads * 1000 / pre + 1000 / m["zoo_serial"] - 1000 / pre) / a.threads

    def must(ratio):
        return f"{'met' if ratio >= 0.9 else '**missed**'} (>= 0.9)"
    lines = [f"## {SECTION}", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {cpu}, "
             f"{os.cpu_count()} logical CPUs; PyTorch {torch.__version__}, torchvision {torchvision.__version__}",
             f"- Command: `.venv/bin/python benchmarks/features.py --threads {a.threads} --rounds {a.rounds} --images {a.images}`",
             f"- {a.images} distinct JPEGs of {w} x {h} ({a.megapixels} MP, quality 90), ResNet-50 (random weights), resize 256 + "
             f"centre crop 224, batch 8, {a.threads} compute threads. zoo: `zoo features BASE DIR` (whole process); pre-decoded: "
             "`zoo bench BASE --batch 8` (median forward pass). PyTorch: torchvision model, PIL decoding in "
             "`DataLoader(num_workers=2)` (whole process).",
             f"- Method: {a.rounds} alternating rounds; medians. Load average (1/5/15 min) at start {'/'.join(load0)}, "
             f"at end {'/'.join(load1)}.", "",
             "| measure | images/s | / pre-decoded | / PyTorch | must |",
             "|---|---:|---:|---:|:---:|",
             f"| zoo features (default: 1 decode thread ahead of inference) | {m['zoo']:.2f} | {m['zoo'] / pre:.2f} | "
             f"{m['zoo'] / m['torch']:.2f} | {must(m['zoo'] / pre)}; {'met' if m['zoo'] >= m['torch'] else '**missed**'} (faster than PyTorch) |",
             f"| zoo features --decode-threads 0 (no overlap) | {m['zoo_serial']:.2f} | {m['zoo_serial'] / pre:.2f} | "
             f"{m['zoo_serial'] / m['torch']:.2f} | - |",
             f"| zoo features --decode-threads 2 | {m['zoo_decode2']:.2f} | {m['zoo_decode2'] / pre:.2f} | {m['zoo_decode2'] / m['torch']:.2f} | - |",
             f"| zoo features --fast-decode | {m['zoo_fast']:.2f} | {m['zoo_fast'] / pre:.2f} | {m['zoo_fast'] / m['torch']:.2f} | "
             f"{must(m['zoo_fast'] / pre)} |",
             f"| zoo, inference on pre-decoded tensors | {pre:.2f} | 1 | {pre / m['torch']:.2f} | - |",
             f"| PyTorch, DataLoader with 2 workers | {m['torch']:.2f} | {m['torch'] / pre:.2f} | 1 | - |",
             "",
             f"Per image: {1000 / m['zoo_serial']:.0f} ms without overlap, of which {1000 / m['zoo_serial'] - 1000 / pre:.0f} ms decode and "
             f"preprocessing and {1000 / pre:.0f} ms inference; the pipeline brings it to {1000 / m['zoo']:.0f} ms, --fast-decode to "
             f"{1000 / m['zoo_fast']:.0f} ms. The decode threads share the same {os.cpu_count()} cores with inference: if inference "
             f"kept all {a.threads} busy, no schedule could do better than (inference x {a.threads} + decode) / {a.threads} per image, "
             f"{bound:.0f} ms here ({(1000 / pre) / bound:.2f}x of pre-decoded); the pipeline's {1000 / m['zoo']:.0f} ms "
             f"{'beats that: inference leaves cycles idle (its serial parts, its threads waiting for each other), which the decode thread, at the lowest priority, fills' if 1000 / m['zoo'] < bound else 'is above it: decoding still takes cycles from inference'}. "
             "DCT scaling removes most of the decoding work.",
             f"`--fast-decode` against the exact decode (same images, same model): cosine similarity of the embeddings median "
             f"{fast_effect[0]:.6f}, minimum {fast_effect[1]:.6f}; largest difference {fast_effect[2]:.2%} of the largest value. "
             "The decode threads change no byte (checked: the embeddings of every variant but --fast-decode are identical).",
             ""]
    results_md.replace_section(a.output, SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
