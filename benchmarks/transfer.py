#!/usr/bin/env python3
"""Transfer-learning benchmark: `zoo train` vs PyTorch doing the same (issue #16).

Feature extraction: a ResNet-50 base (torchvision architecture, seeded random weights with BatchNorm statistics
from one pass over random images: the timing does not depend on the values), 1,000 JPEG images (scikit-learn's digits upscaled to 256 px, 10 classes, an
ImageFolder tree), 224 px (the weights' transforms: resize 256, centre crop 224), 2 threads, 20% held out for
validation, 10 epochs of a new linear head. zoo: `zoo train BASE --data DIR` with an empty embedding cache
(first run) and again with it filled (second run). PyTorch: torchvision's model with `fc` replaced by
`Identity`, frozen, `ImageFolder` + `DataLoader` (batch 32, the main process), embeddings under `no_grad`,
then `nn.Linear` trained with AdamW on them: the same work. Wall time of each whole process, so start-up,
decoding and writing the output count for both.

Fine-tuning throughput: `zoo train --mode finetune --trainable last:1` against a PyTorch training loop over
the same images with `layer4` and `fc` trainable (BatchNorm frozen, SGD with momentum at 1e-4, the backbone
at 1e-5: random weights diverge at the default 1e-2), 1 epoch of 200 training images at batch 32; images per second of the training epoch (the process's wall time minus the
time before the first step is not separated: both include decoding and start-up).

Rounds alternate the engines; figures are medians. Writes the "Transfer learning (zoo vs PyTorch)" section of
benchmarks/RESULTS.md. Usage (from the repository root, after `swift build -c release`):

    .venv/bin/python benchmarks/transfer.py [--threads 2] [--rounds 3] [--images 1000]
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

import results_md
from common import calibrated_resnet50, timed, zoo_bin

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "Transfer learning (zoo vs PyTorch)"

TORCH_FEATURES = r"""
import sys, time, torch, torchvision
data, threads, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.resnet50()
model.load_state_dict(torch.load(sys.argv[4]))
model.fc = torch.nn.Identity()
model.eval()
for p in model.parameters():
    p.requires_grad_(False)
ds = torchvision.datasets.ImageFolder(data, transform=torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms())
g = torch.Generator().manual_seed(0)
n_val = len(ds) // 5
train, val = torch.utils.data.random_split(ds, [len(ds) - n_val, n_val], generator=g)
def embed(subset):
    xs, ys = [], []
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(subset, batch_size=32, num_workers=0):
            xs.append(model(x)); ys.append(y)
    return torch.cat(xs), torch.cat(ys)
xt, yt = embed(train)
xv, yv = embed(val)
head = torch.nn.Linear(2048, len(ds.classes))
opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-4)
for epoch in range(epochs):
    perm = torch.randperm(len(yt), generator=g)
    for s in range(0, len(yt), 16):
        i = perm[s:s + 16]
        loss = torch.nn.functional.cross_entropy(head(xt[i]), yt[i])
        opt.zero_grad(); loss.backward(); opt.step()
    with torch.no_grad():
        acc = (head(xv).argmax(1) == yv).float().mean().item()
torch.save(head.state_dict(), sys.argv[5])
"""

TORCH_FINETUNE = r"""
import sys, time, json, torch, torchvision
data, threads = sys.argv[1], int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.resnet50()
model.load_state_dict(torch.load(sys.argv[3]))
model.fc = torch.nn.Linear(2048, 10)
for n, p in model.named_parameters():
    p.requires_grad_(n.startswith("layer4.") or n.startswith("fc."))
model.eval()
ds = torchvision.datasets.ImageFolder(data, transform=torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms())
opt = torch.optim.SGD([{"params": [p for n, p in model.named_parameters() if n.startswith("fc.")], "lr": 1e-4},
                       {"params": [p for n, p in model.named_parameters() if n.startswith("layer4.")], "lr": 1e-5}], momentum=0.9)
t = time.perf_counter()
count = 0
for x, y in torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=0):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    count += len(y)
print(json.dumps({"images_per_s": count / (time.perf_counter() - t)}))
"""




def make_images(folder, count):
    """`count` JPEGs, 256 x 256, of scikit-learn's digits in an ImageFolder tree (10 classes)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    for i in range(count):
        img, y = digits.images[i % len(digits.images)], int(digits.target[i % len(digits.images)])
        g = np.kron(img / 16.0 * 255.0, np.ones((32, 32))).clip(0, 255).astype(np.uint8)
        d = os.path.join(folder, f"digit_{y}")
        os.makedirs(d, exist_ok=True)
        Image.fromarray(np.stack([g, g, g], axis=-1), "RGB").save(os.path.join(d, f"{i:05d}.jpg"), quality=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune-images", type=int, default=200)
    ap.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    import torch
    import torchvision
    work = tempfile.mkdtemp(prefix="zoo-transfer-bench-")
    try:
        data, small = os.path.join(work, "data"), os.path.join(work, "small")
        make_images(data, a.images)
        make_images(small, a.finetune_images)
        pth, base = calibrated_resnet50(work)
        load0 = open("/proc/loadavg").read().split()[:3]
        t = {"zoo_first": [], "zoo_second": [], "torch": [], "zoo_ft": [], "torch_ft": []}
        for r in range(a.rounds):
            home = os.path.join(work, f"home{r}")
            env = dict(os.environ, ZOO_HOME=home)
            common = [zoo_bin(), "train", base, "--data", data, "--epochs", str(a.epochs), "--threads", str(a.threads), "-q", "--force"]
            t["zoo_first"].append(timed(common + ["-o", os.path.join(work, "a.safetensors")], env)[0])
            t["zoo_second"].append(timed(common + ["-o", os.path.join(work, "b.safetensors")], env)[0])
            t["torch"].append(timed([sys.executable, "-c", TORCH_FEATURES, data, str(a.threads), str(a.epochs), pth,
                                     os.path.join(work, "head.pt")])[0])
            # Fine-tuning: one epoch; zoo's images/s from its epoch time (JSON), PyTorch's from its loop.
            _, out = timed([zoo_bin(), "train", base, "--data", small, "--val-split", "0", "--mode", "finetune", "--epochs", "1",
                            "--batch", "32", "--lr", "1e-4", "--threads", str(a.threads), "--json", "-q", "--force", "-o", os.path.join(work, "f.safetensors")], env)
            doc = json.loads(out)
            t["zoo_ft"].append(doc["train_images"] / doc["epochs"][0]["seconds"])
            _, out = timed([sys.executable, "-c", TORCH_FINETUNE, small, str(a.threads), pth])
            t["torch_ft"].append(json.loads(out)["images_per_s"])
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in t.items()), file=sys.stderr, flush=True)
            shutil.rmtree(home, ignore_errors=True)
        load1 = open("/proc/loadavg").read().split()[:3]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    m = {k: statistics.median(v) for k, v in t.items()}
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    first, second = m["zoo_first"] / m["torch"], m["zoo_second"] / m["zoo_first"]
    lines = [f"## {SECTION}", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {cpu}, "
             f"{os.cpu_count()} logical CPUs; PyTorch {torch.__version__}, torchvision {torchvision.__version__}",
             f"- Command: `.venv/bin/python benchmarks/transfer.py --threads {a.threads} --rounds {a.rounds} --images {a.images}`",
             f"- Feature extraction: ResNet-50 base, {a.images} JPEGs (256 px digits, 10 classes), 224 px, {a.threads} threads, "
             f"20% validation, {a.epochs} epochs of a linear head; whole-process wall time. PyTorch: torchvision model, "
             "`ImageFolder` + `DataLoader` (batch 32, main process), frozen backbone under `no_grad`, `nn.Linear` with AdamW.",
             f"- Fine-tuning: `last:1` (layer4 + the classifier), BatchNorm frozen, SGD, batch 32, one epoch of "
             f"{a.finetune_images} images; images/s of the epoch.",
             f"- Method: {a.rounds} alternating rounds; medians. Load average (1/5/15 min) at start {'/'.join(load0)}, "
             f"at end {'/'.join(load1)}.", "",
             "| measure | zoo | PyTorch | ratio | must |",
             "|---|---:|---:|---:|:---:|",
             f"| feature extraction, first run (s) | {m['zoo_first']:.1f} | {m['torch']:.1f} | {first:.2f} (zoo / PyTorch) | "
             f"{'met' if first <= 1 else '**missed**'} (<= 1.0) |",
             f"| feature extraction, second run, cached embeddings (s) | {m['zoo_second']:.2f} | - | {second:.3f} (second / first) | "
             f"{'met' if second < 0.1 else '**missed**'} (< 0.1) |",
             f"| fine-tuning `last:1` (images/s, higher is better) | {m['zoo_ft']:.1f} | {m['torch_ft']:.1f} | "
             f"{m['zoo_ft'] / m['torch_ft']:.2f} (zoo / PyTorch) | - |",
             ""]
    results_md.replace_section(a.output, SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
