#!/usr/bin/env python3
"""Side-by-side CPU training-step benchmark: `zoo bench --train` vs PyTorch eager.

One training step = forward in training mode, softmax cross-entropy, backward, SGD update (momentum
0.9), batch 16, 224 px, random input and labels. For each model and configuration, rounds alternate
the two engines (each in its own process, so that peak memory is each one's own) and each figure is
the median over all timed steps. Writes the "Training (zoo vs PyTorch)" section of benchmarks/RESULTS.md.
Usage (from the repository root, after `swift build -c release`):

    .venv/bin/python benchmarks/train.py [--threads 2] [--rounds 3] [--iterations 3] [--models resnet18,...]

Configurations: `all` (every parameter trainable, BatchNorm in train mode: the issue's fine-tune step)
and `head` (only the classifier, BatchNorm in eval mode: the feature-extraction step).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

import results_md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ["resnet18", "resnet50", "mobilenet_v2"]
CONFIGS = [("all", "train"), ("head", "eval")]
SECTION = "Training (zoo vs PyTorch)"

TORCH_STEP = r"""
import json, resource, sys, time
import torch, torchvision
name, trainable, bn, batch, threads, iterations, warmup = sys.argv[1:8]
batch, threads, iterations, warmup = int(batch), int(threads), int(iterations), int(warmup)
torch.set_num_threads(threads)
torch.manual_seed(0)
model = getattr(torchvision.models, name)()
head = {"resnet18": "fc", "resnet50": "fc", "mobilenet_v2": "classifier"}[name]
if trainable == "head":
    for n, p in model.named_parameters():
        p.requires_grad = n.startswith(head + ".")
model.train(bn == "train")
for m in model.modules():
    if isinstance(m, torch.nn.Dropout):
        m.eval()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
x = torch.randn(batch, 3, 224, 224)
y = torch.tensor([(i * 7919) % 1000 for i in range(batch)])
def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
for _ in range(warmup):
    step()
ts = []
for _ in range(iterations):
    t = time.perf_counter()
    step()
    ts.append((time.perf_counter() - t) * 1e3)
print(json.dumps({"samples_ms": ts, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def zoo_bin():
    return os.environ.get("ZOO_BIN", os.path.join(ROOT, ".build", "release", "zoo"))


def zoo_run(model, trainable, bn, batch, threads, iterations, warmup):
    out = subprocess.run([zoo_bin(), "bench", model, "--train", "--trainable", trainable, "--bn", bn, "--batch", str(batch),
                          "--threads", str(threads), "--iterations", str(iterations), "--warmup", str(warmup), "--json", "--samples", "-q"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def torch_run(model, trainable, bn, batch, threads, iterations, warmup):
    out = subprocess.run([sys.executable, "-c", TORCH_STEP, model, trainable, bn, str(batch), str(threads), str(iterations), str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    import torch
    models = a.models.split(",")
    load0 = open("/proc/loadavg").read().split()[:3]
    rows = []
    for m in models:
        for trainable, bn in CONFIGS:
            s = {"zoo": [], "torch": []}
            rss = {"zoo": 0.0, "torch": 0.0}
            for r in range(a.rounds):
                for engine, fn in (("zoo", zoo_run), ("torch", torch_run)):
                    doc = fn(m, trainable, bn, a.batch, a.threads, a.iterations, 1)
                    s[engine] += doc["samples_ms"]
                    rss[engine] = max(rss[engine], doc["peak_rss_mb"])
                print(f"[{m} {trainable}/bn {bn}] round {r + 1}: zoo {statistics.median(s['zoo']):.0f}  "
                      f"torch {statistics.median(s['torch']):.0f} ms", file=sys.stderr, flush=True)
            rows.append((m, trainable, bn, statistics.median(s["zoo"]), statistics.median(s["torch"]), rss["zoo"], rss["torch"]))
    load1 = open("/proc/loadavg").read().split()[:3]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    lines = [f"## {SECTION}", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {cpu}, "
             f"{os.cpu_count()} logical CPUs; PyTorch {torch.__version__}",
             f"- Command: `.venv/bin/python benchmarks/train.py --threads {a.threads} --rounds {a.rounds} --iterations {a.iterations}`",
             f"- One step: forward in training mode, softmax cross-entropy, backward, SGD (momentum 0.9) update; batch {a.batch}, "
             f"224 px, {a.threads} threads, random input and labels (1000 classes). `all`: every parameter trainable, BatchNorm "
             "in train mode; `head`: only the classifier, BatchNorm in eval mode.",
             f"- Method: {a.rounds} alternating rounds of {a.iterations} timed steps after 1 warm-up step, each engine in its own "
             "process; medians over all timed steps; peak RSS is each process's own (`ru_maxrss`).",
             f"- Load average (1/5/15 min) at start {'/'.join(load0)}, at end {'/'.join(load1)}.", "",
             "### Training step (median ms, lower is better)", "",
             "| model | trainable | BatchNorm | zoo | PyTorch | zoo / PyTorch | must (<= PyTorch) | zoo peak RSS (MB) | PyTorch peak RSS (MB) |",
             "|---|---|---|---:|---:|---:|:---:|---:|---:|"]
    for m, trainable, bn, z, t, rz, rt in rows:
        lines.append(f"| {m} | {trainable} | {bn} | {z:.0f} | {t:.0f} | {z / t:.2f} | {'met' if z <= t else '**missed**'} | "
                     f"{rz:.0f} | {rt:.0f} |")
    r50 = next((r for r in rows if r[0] == "resnet50" and r[1] == "all"), None)
    if r50 and a.batch == 16:
        lines += ["", f"Memory budget (issue #15: a ResNet-50 fine-tune of all layers at batch 16, 224 px, under 4 GB): "
                  f"zoo peak RSS {r50[5]:.0f} MB: {'met' if r50[5] < 4096 else '**missed**'}."]
    lines.append("")
    results_md.replace_section(a.output, SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
