#!/usr/bin/env python3
"""Batch-1 latency of the newer families (issue #18) side by side with PyTorch and ONNX Runtime.

The same method as benchmarks/run.py (whose `bench` it calls): 224x224 float32, random weights, batch 1,
`--threads` (2) for every engine, `--rounds` alternating rounds of `--iterations` timed passes after
warm-ups; each engine's figure is the median over its passes. PyTorch eager under `inference_mode`;
ONNX Runtime's CPU provider on the torchvision model's ONNX export. Writes the section "Newer families
(zoo vs PyTorch vs ONNX Runtime)" of benchmarks/RESULTS.md. The issue's bar: at most 1.0x PyTorch.

    .venv/bin/python benchmarks/families.py [--models efficientnet_b0,convnext_tiny] [--rounds 3]
"""
import argparse
import datetime
import os
import platform

import results_md
from run import MACS, bench, cpu_name, fmt, loadavg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "Newer families (zoo vs PyTorch vs ONNX Runtime)"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--models", default="efficientnet_b0,convnext_tiny")
    ap.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    import onnxruntime
    import torch
    models = a.models.split(",")
    load0 = loadavg()
    r = bench(models, 1, a.threads, a.rounds, a.iterations)
    load1 = loadavg()
    lines = [f"## {SECTION}", "",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; machine: {cpu_name()}, "
             f"{os.cpu_count()} logical CPUs; {platform.machine()}",
             f"- Versions: PyTorch {torch.__version__}, ONNX Runtime {onnxruntime.__version__}",
             f"- Command: `.venv/bin/python benchmarks/families.py --models {a.models} --rounds {a.rounds}` (in `make bench`)",
             f"- Method: batch 1, 224x224, random weights, {a.threads} threads for every engine, {a.rounds} alternating rounds of "
             f"{a.iterations} timed passes after warm-ups (benchmarks/run.py's `bench`); medians. Load average at start "
             f"{'/'.join(load0)}, at end {'/'.join(load1)}.", "",
             "| model | zoo ms | PyTorch ms | ONNX Runtime ms | zoo / PyTorch | zoo / ORT | zoo GFLOP/s | must (<= PyTorch) |",
             "|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for m in models:
        z, t, o = r[m]["zoo"], r[m]["torch"], r[m]["ort"]
        gflops = 2 * MACS.get(m, 0) / (z / 1e3) / 1e9
        lines.append(f"| {m} | {fmt(z)} | {fmt(t)} | {fmt(o)} | {z / t:.2f} | {z / o:.2f} | {gflops:.1f} | "
                     f"{'met' if z <= t else '**missed**'} |")
    lines.append("")
    results_md.replace_section(a.output, SECTION, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
