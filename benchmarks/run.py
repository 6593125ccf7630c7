#!/usr/bin/env python3
"""Side-by-side CPU inference benchmark: `zoo bench` vs PyTorch (eager) vs ONNX Runtime.

In one run, for each model, rounds alternate the three engines (zoo, torch, ort) so that machine
load affects all of them alike; each engine's figure is the median over all its timed passes.
Writes the "Inference" section of benchmarks/RESULTS.md and leaves the other sections (e.g. the
"Conversion" section of benchmarks/convert.py) as they are. Usage (from the repository root, after
`swift build -c release`):

    .venv/bin/python benchmarks/run.py [--threads 2] [--rounds 3] [--iterations 10] [--batch8] [--memory]
                                       [--cpu] [--repeat N] [--models resnet18,resnet50,...]

`make bench` runs the recorded configuration (all six models at batch 1 and batch 8, memory, CPU cost,
batch 1 repeated twice). The section it writes names the exact command, the library versions and a
summary generated from the figures (nothing in it is written by hand); benchmarks/results_md.py then
derives the section's "Summary:" line from its tables and copies it into README.md.

ONNX files are exported from torchvision into benchmarks/.cache (gitignored).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import results_md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "benchmarks", ".cache")
MODELS = ["resnet18", "resnet50", "vgg16", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
SECTION = "Inference (zoo vs PyTorch vs ONNX Runtime)"  # the part of RESULTS.md this script owns
# Issue #7 reference figures (quiet machine, batch 1, 224, 2 threads), for context only.
HEAVY = {"vgg16"}  # half the passes: these take seconds each on a loaded machine
ISSUE_TORCH = {"resnet18": 72, "resnet50": 173, "vgg16": 493, "mobilenet_v2": 35, "mobilenet_v3_large": 42, "mobilenet_v3_small": 16}
ISSUE_ORT = {"resnet18": 48, "resnet50": 112, "vgg16": 425, "mobilenet_v2": 11.1, "mobilenet_v3_large": 9.5, "mobilenet_v3_small": 3.6}


def zoo_bin():
    return os.environ.get("ZOO_BIN", os.path.join(ROOT, ".build", "release", "zoo"))


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


MACS = {}  # multiply-accumulates per image, as `zoo bench` counts them


def zoo_samples(model, batch, threads, iterations):
    out = subprocess.run([zoo_bin(), "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--iterations", str(iterations), "--warmup", "2", "--json", "--samples"],
                         check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    MACS[model] = doc["macs"] // batch
    return doc["samples_ms"]


def conv_peak(threads):
    """The machine's convolution peak: GFLOP/s of one large 1x1 convolution through oneDNN (`zoo bench --conv-peak`)."""
    out = subprocess.run([zoo_bin(), "bench", "--conv-peak", "--threads", str(threads), "--iterations", "20", "--warmup", "3",
                          "--json"], check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    return doc["gflops_per_s"], doc["kernels"]


class TorchModel:
    def __init__(self, name, batch, threads):
        import torch
        import torchvision
        torch.set_num_threads(threads)
        self.torch = torch
        self.model = getattr(torchvision.models, name)().eval()
        self.x = torch.randn(batch, 3, 224, 224)

    def samples(self, iterations, warmup=2):
        torch = self.torch
        ts = []
        with torch.inference_mode():
            for _ in range(warmup):
                self.model(self.x)
            for _ in range(iterations):
                t = time.perf_counter()
                self.model(self.x)
                ts.append((time.perf_counter() - t) * 1e3)
        return ts


class OrtModel:
    def __init__(self, name, batch, threads, torch_model):
        import onnxruntime as ort
        import numpy as np
        os.makedirs(CACHE, exist_ok=True)
        path = os.path.join(CACHE, f"{name}.onnx")
        if not os.path.exists(path):
            torch = torch_model.torch
            kwargs = {"input_names": ["x"], "output_names": ["y"], "dynamic_axes": {"x": {0: "n"}, "y": {0: "n"}}, "opset_version": 17}
            try:
                torch.onnx.export(torch_model.model, torch.randn(1, 3, 224, 224), path + ".tmp", dynamo=False, **kwargs)
            except TypeError:
                torch.onnx.export(torch_model.model, torch.randn(1, 3, 224, 224), path + ".tmp", **kwargs)
            os.replace(path + ".tmp", path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)

    def samples(self, iterations, warmup=2):
        ts = []
        for _ in range(warmup):
            self.session.run(None, {"x": self.x})
        for _ in range(iterations):
            t = time.perf_counter()
            self.session.run(None, {"x": self.x})
            ts.append((time.perf_counter() - t) * 1e3)
        return ts


def bench(models, batch, threads, rounds, iterations):
    results = {}
    for name in models:
        print(f"[{name}] batch {batch}", file=sys.stderr, flush=True)
        tm = TorchModel(name, batch, threads)
        om = OrtModel(name, batch, threads, tm)
        s = {"zoo": [], "torch": [], "ort": []}
        its = max(3, iterations // 2) if name in HEAVY else iterations
        for r in range(rounds):
            s["zoo"] += zoo_samples(name, batch, threads, its)
            s["torch"] += tm.samples(its, warmup=2 if r == 0 else 1)
            s["ort"] += om.samples(its, warmup=2 if r == 0 else 1)
            print(f"  round {r + 1}: zoo {statistics.median(s['zoo']):.1f}  torch {statistics.median(s['torch']):.1f}  "
                  f"ort {statistics.median(s['ort']):.1f} ms", file=sys.stderr, flush=True)
        results[name] = {k: statistics.median(v) for k, v in s.items()}
        del tm, om
    return results


def cpu_cost(models, iterations):
    """Single-thread CPU milliseconds per pass (process CPU time, not wall time), so a busy machine
    barely moves it: zoo reports its own (`cpu_ms_per_pass`), PyTorch and ORT from the process clock."""
    results = {}
    for name in models:
        k = max(3, iterations // 2) if name in HEAVY else iterations
        out = subprocess.run([zoo_bin(), "bench", name, "--threads", "1", "--iterations", str(k), "--warmup", "1", "--json"],
                             check=True, capture_output=True, text=True).stdout
        zoo = json.loads(out)["cpu_ms_per_pass"]
        tm = TorchModel(name, 1, 1)
        om = OrtModel(name, 1, 1, tm)
        def proc(fn):
            fn(1)
            t = time.process_time()
            fn(k)
            return (time.process_time() - t) / k * 1e3
        torch_ms = proc(lambda n: tm.samples(n, warmup=0))
        ort_ms = proc(lambda n: om.samples(n, warmup=0))
        results[name] = {"zoo": zoo, "torch": torch_ms, "ort": ort_ms}
        print(f"[{name}] cpu ms/pass, 1 thread: zoo {zoo:.1f} torch {torch_ms:.1f} ort {ort_ms:.1f}", file=sys.stderr, flush=True)
        del tm, om
    return results


def resnet50_checkpoint():
    """A ResNet-50 native checkpoint (torchvision's random initialisation) in benchmarks/.cache, converted
    with `zoo convert` from a saved state_dict, so it carries the metadata `zoo predict` needs."""
    import torch
    import torchvision
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "resnet50-native.safetensors")
    if not os.path.exists(path):
        torch.manual_seed(0)
        pth = os.path.join(CACHE, "resnet50-random.pth")
        torch.save(torchvision.models.resnet50().state_dict(), pth)
        subprocess.run([zoo_bin(), "convert", pth, "--arch", "resnet50", "-o", path, "-q"], check=True)
        os.remove(pth)
    return path


def rss_and_wall(argv, env=None):
    """Peak RSS (bytes) and wall time (ms) of one run of `argv`, measured from a fresh Python parent."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, (time.perf_counter() - t) * 1e3)")
    out = subprocess.run([sys.executable, "-c", code] + argv, check=True, capture_output=True, text=True, env=env).stdout.split()
    return int(out[0]) * 1024, float(out[1])


def startup_and_memory(threads, runs=3):
    """For ZooKernels' own kernels (`ZOO_KERNELS=own`, the engine before oneDNN) and the default backend:
    the median wall time of `zoo predict` on a ResNet-50 checkpoint and one image (load to first result,
    process start to exit), and the peak RSS of `zoo bench` on the same checkpoint."""
    from PIL import Image
    import numpy as np
    path = resnet50_checkpoint()
    image = os.path.join(CACHE, "startup.jpg")
    if not os.path.exists(image):
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(image, quality=90)
    result = {}
    for label, extra in (("own kernels", {"ZOO_KERNELS": "own"}), ("default", {})):
        env = dict(os.environ, **extra)
        walls = []
        for _ in range(runs):
            walls.append(rss_and_wall([zoo_bin(), "predict", path, image, "--threads", str(threads)], env)[1])
        rss, _ = rss_and_wall([zoo_bin(), "bench", path, "--threads", str(threads), "--iterations", "3", "--warmup", "1", "--json"], env)
        result[label] = {"predict_ms": statistics.median(walls), "rss": rss}
    return result, os.path.getsize(path)


def fmt(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batch8", action="store_true", help="also measure batch-8 throughput")
    ap.add_argument("--batch8-models", default=",".join(MODELS), help="models for the batch-8 run (default: all six)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the whole batch-1 comparison N times; the table gives the median over runs and the "
                         "range of zoo/PyTorch across them, so a margin smaller than the run-to-run spread shows")
    ap.add_argument("--memory", action="store_true",
                    help="also measure ResNet-50 start-up (zoo predict) and peak RSS, own kernels against the default")
    ap.add_argument("--cpu", action="store_true", help="also measure single-thread CPU time per pass (robust to load)")
    ap.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    models = [m for m in a.models.split(",") if m]
    load0 = loadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    mem = startup_and_memory(a.threads) if a.memory else None
    peaks, runs1 = [], []
    for _ in range(max(1, a.repeat)):
        peaks.append(conv_peak(a.threads))
        runs1.append(bench(models, 1, a.threads, a.rounds, a.iterations))
    peaks.append(conv_peak(a.threads))
    peak = statistics.median(p for p, _ in peaks)
    peak_kernel = peaks[-1][1]
    b1 = {m: {k: statistics.median(r[m][k] for r in runs1) for k in ("zoo", "torch", "ort")} for m in models}
    spread = {m: (min(r[m]["zoo"] / r[m]["torch"] for r in runs1), max(r[m]["zoo"] / r[m]["torch"] for r in runs1))
              for m in models}
    models8 = [m for m in a.batch8_models.split(",") if m in models]
    rounds8, its8 = max(1, a.rounds - 1), max(3, a.iterations // 3)
    b8 = bench(models8, 8, a.threads, rounds8, its8) if a.batch8 else None
    cpu = cpu_cost(models, a.iterations) if a.cpu else None
    load1 = loadavg()
    blas = json.loads(subprocess.run([zoo_bin(), "bench", "mobilenet_v3_small", "--iterations", "1", "--warmup", "0", "--json"],
                                     check=True, capture_output=True, text=True).stdout).get("blas", "?")

    import torch
    import onnxruntime
    must1 = [m for m in models if b1[m]["zoo"] <= b1[m]["torch"]]
    must8 = [m for m in models8 if b8 and b8[m]["zoo"] <= b8[m]["torch"]]
    target = [m for m in models if b1[m]["zoo"] <= b1[m]["ort"]]
    close = [m for m in models if spread[m][1] > 0.95]
    summary = [f"Batch-1 latency at or below PyTorch: {len(must1)} of {len(models)} models"
               + ("" if len(must1) == len(models) else f" (missed: {', '.join(m for m in models if m not in must1)})") + "."]
    if b8:
        summary.append(f"Batch-8 throughput at or above PyTorch: {len(must8)} of {len(models8)}"
                       + ("" if len(must8) == len(models8) else f" (missed: {', '.join(m for m in models8 if m not in must8)})") + ".")
    if mem:
        now, before = mem[0]["default"], mem[0]["own kernels"]
        summary.append(f"ResNet-50 peak memory {now['rss'] / 1e6:.0f} MB against a budget of {mem[1] / 1e6 + 150:.0f} MB: "
                       f"{'met' if now['rss'] <= mem[1] + 150e6 else 'missed'}.")
    summary.append(f"ONNX Runtime target (batch 1): {len(target)} of {len(models)}.")
    gflops = {m: 2 * MACS[m] / (b1[m]["zoo"] / 1e3) / 1e9 for m in models if m in MACS}
    if "resnet50" in gflops:
        summary.append(f"ResNet-50 at batch 1 runs at {gflops['resnet50']:.0f} GFLOP/s, {100 * gflops['resnet50'] / peak:.0f}% of the "
                       f"convolution peak measured in the same run ({peak:.0f} GFLOP/s).")
    if close:
        summary.append("Within 5% of PyTorch in at least one run (parity rather than a lead): " + ", ".join(close) + ".")
    lines = [f"## {SECTION}", "",
             f"Generated by `benchmarks/run.py` on {started:%Y-%m-%d %H:%M} UTC: `{' '.join(['benchmarks/run.py'] + sys.argv[1:])}`.", "",
             " ".join(summary), "",
             f"- CPU: {cpu_name()} ({os.cpu_count()} logical CPUs), {blas}",
             f"- Threads: {a.threads} for every engine (zoo `--threads`, `torch.set_num_threads`, ORT `intra_op_num_threads`)",
             f"- Input: 224x224 float32, random weights; PyTorch eager + `inference_mode`; ONNX Runtime CPU provider on the torchvision export",
             f"- Versions: PyTorch {torch.__version__}, ONNX Runtime {onnxruntime.__version__}, Python {platform.python_version()}",
             f"- Method, batch 1: {a.rounds} alternating rounds (zoo, torch, ort) of {a.iterations} timed passes ({max(3, a.iterations // 2)} for vgg16) "
             "after 2 warm-ups (1 for torch and ORT in later rounds); each engine's figure is the median over all its passes"
             + (f"; the whole comparison ran {a.repeat} times, the table gives the median of the runs' medians" if a.repeat > 1 else ""),
             f"- Method, batch 8: {rounds8} alternating rounds of {its8} timed passes ({max(3, its8 // 2)} for vgg16), same warm-ups",
             f"- Convolution peak: {peak:.1f} GFLOP/s, the median over {len(peaks)} measurements in this run (before each batch-1 "
             f"comparison and at the end) of one 1x1 convolution, 256 -> 1024 channels on 56x56, batch 1 (`zoo bench --conv-peak`: "
             f"{peak_kernel}); a model's GFLOP/s is 2 x its multiply-accumulates (convolutions and linear layers) / zoo's median latency",
             f"- Load average (1/5/15 min) at start {'/'.join(load0)}, at end {'/'.join(load1)}. "
             "A busy machine inflates every figure; compare columns of one run, not runs.", "",
             "### Batch 1 latency (median ms, lower is better)", "",
             "| model | zoo | PyTorch | ONNX Runtime | zoo / PyTorch | zoo / PyTorch, range over runs | zoo / ORT | zoo / ORT, range over runs "
             "| zoo GFLOP/s | % of peak | must (<= PyTorch) | target (<= ORT) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|:---:|"]
    for m in models:
        r = b1[m]
        lo, hi = min(x[m]["zoo"] / x[m]["ort"] for x in runs1), max(x[m]["zoo"] / x[m]["ort"] for x in runs1)
        g = gflops.get(m)
        lines.append(f"| {m} | {fmt(r['zoo'])} | {fmt(r['torch'])} | {fmt(r['ort'])} | {r['zoo'] / r['torch']:.2f} | "
                     f"{spread[m][0]:.2f}-{spread[m][1]:.2f} | "
                     f"{r['zoo'] / r['ort']:.2f} | {lo:.2f}-{hi:.2f} | {fmt(g) if g else '?'} | {f'{100 * g / peak:.0f}%' if g else '?'} | "
                     f"{'met' if r['zoo'] <= r['torch'] else '**missed**'} | "
                     f"{'met' if r['zoo'] <= r['ort'] else 'missed'} |")
    if b8:
        lines += ["", "### Batch 8 throughput (images/s, higher is better)", "",
                  "| model | zoo | PyTorch | ONNX Runtime | zoo / PyTorch | zoo / ORT | must (>= PyTorch) |", "|---|---:|---:|---:|---:|---:|:---:|"]
        for m in models8:
            r = {k: 8000 / v for k, v in b8[m].items()}
            lines.append(f"| {m} | {fmt(r['zoo'])} | {fmt(r['torch'])} | {fmt(r['ort'])} | {r['zoo'] / r['torch']:.2f} | "
                         f"{r['zoo'] / r['ort']:.2f} | {'met' if r['zoo'] >= r['torch'] else '**missed**'} |")
    if cpu:
        lines += ["", "### Single-thread CPU cost (CPU ms per pass, batch 1, lower is better)", "",
                  "Process CPU time rather than wall time, each engine at one thread: this measures the work "
                  "each engine does and is barely affected by other processes, unlike the latencies above.", "",
                  "| model | zoo | PyTorch | ONNX Runtime | zoo / PyTorch | zoo / ORT |", "|---|---:|---:|---:|---:|---:|"]
        for m in models:
            r = cpu[m]
            lines.append(f"| {m} | {fmt(r['zoo'])} | {fmt(r['torch'])} | {fmt(r['ort'])} | {r['zoo'] / r['torch']:.2f} | {r['zoo'] / r['ort']:.2f} |")
    if mem:
        figures, weights = mem
        now, before = figures["default"], figures["own kernels"]
        lines += ["", "### Start-up and peak memory (ResNet-50)", "",
                  "Load to first result: wall time of `zoo predict CKPT IMAGE` from process start to exit (median of 3). Peak RSS: "
                  "`zoo bench CKPT` (3 passes). \"Before\" is ZooKernels' own kernels (`ZOO_KERNELS=own`, the engine before oneDNN), "
                  "measured in the same run; the issue allows at most 10% worse.", "",
                  "| | own kernels (before) | default (oneDNN) | after / before |", "|---|---:|---:|---:|",
                  f"| `zoo predict` load to first result (ms) | {before['predict_ms']:.0f} | {now['predict_ms']:.0f} | "
                  f"{now['predict_ms'] / before['predict_ms']:.2f} |",
                  f"| peak RSS (MB) | {before['rss'] / 1e6:.0f} | {now['rss'] / 1e6:.0f} | {now['rss'] / before['rss']:.2f} |", "",
                  f"Weights file {weights / 1e6:.0f} MB; memory budget (weights + 150 MB) {weights / 1e6 + 150:.0f} MB: "
                  f"{'met' if now['rss'] <= weights + 150e6 else '**missed**'}."]
    lines += ["", "Issue #7 quoted these figures for a quiet machine (copied from the issue, not measured by this script): PyTorch " +
              ", ".join(f"{m} {ISSUE_TORCH[m]}" for m in MODELS) + " ms; ONNX Runtime " +
              ", ".join(f"{m} {ISSUE_ORT[m]}" for m in MODELS) + " ms.", ""]
    results_md.replace_section(a.output, SECTION, "\n".join(lines))
    if os.path.abspath(a.output) == os.path.join(ROOT, "benchmarks", "RESULTS.md"):
        # The section's "Summary:" line and README's quoted block, derived from the tables just written.
        results_md.refresh(a.output, os.path.join(ROOT, "README.md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
