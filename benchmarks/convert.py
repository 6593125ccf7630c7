"""Conversion benchmark: `zoo convert` vs `cp` vs Python torch.load + safetensors.save_file.

Usage: .venv/bin/python benchmarks/convert.py [--runs 5] [--zoo .build/release/zoo] [--write-results]

Writes a ~100 MB torchvision checkpoint (resnet50, random init, torch.save zip format) into
.cache/bench/, then times each whole process side by side (interleaved, median of --runs),
reporting wall time and peak resident memory of each child process. With --write-results
the figures replace the "Conversion" section of benchmarks/RESULTS.md (and nothing else in it:
see benchmarks/results_md.py).
"""
import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import results_md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--zoo", default=os.path.join(ROOT, ".build", "release", "zoo"))
ap.add_argument("--write-results", action="store_true")
args = ap.parse_args()

bench = os.path.join(ROOT, ".cache", "bench")
os.makedirs(bench, exist_ok=True)
src = os.path.join(bench, "resnet50-random.pth")
if not os.path.exists(src):
    # In a child process, so this harness stays small (a fork inherits the parent's peak RSS).
    subprocess.run([sys.executable, "-c", "import sys, torch, torchvision; torch.manual_seed(0); "
                    "torch.save(torchvision.models.resnet50().state_dict(), sys.argv[1])", src], check=True)
size = os.path.getsize(src)
if not os.path.exists(args.zoo):
    sys.exit(f"{args.zoo} not found: run `swift build -c release --product zoo` first")

PY_CONVERT = (
    "import sys, torch; from safetensors.torch import save_file; "
    "sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True); "
    "save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])"
)
out_cp = os.path.join(bench, "copy.pth")
out_zoo = os.path.join(bench, "zoo.safetensors")
out_py = os.path.join(bench, "python.safetensors")
outputs = {"cp": out_cp, "zoo convert": out_zoo, "python torch.load + save_file": out_py}
commands = {
    "cp": ["cp", src, out_cp],
    "zoo convert": [args.zoo, "convert", src, "-o", out_zoo, "--force"],
    "python torch.load + save_file": [sys.executable, "-c", PY_CONVERT, src, out_py],
}


def anon_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd):
    """Wall time, peak RSS (KiB) and peak anonymous RSS (KiB, sampled every ms) of one child process."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_anon = 0
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        peak_anon = max(peak_anon, anon_kib(p.pid))
        time.sleep(0.001)
    wall = time.perf_counter() - start
    p.returncode = status
    err = p.stderr.read().decode()
    p.stderr.close()
    if status != 0:
        sys.exit(f"{cmd[0]} failed: {err}")
    return wall, usage.ru_maxrss, peak_anon, usage.ru_utime + usage.ru_stime


# Warm the page cache once for every command, then interleave the timed runs.
for cmd in commands.values():
    run(cmd)
times = {k: [] for k in commands}
rss = {k: [] for k in commands}
anon = {k: [] for k in commands}
cpu_s = {k: [] for k in commands}
for i in range(args.runs):
    for k, cmd in commands.items():
        if os.path.exists(outputs[k]):
            os.remove(outputs[k])  # every command writes a fresh file, outside the timing
        w, m, a, c = run(cmd)
        cpu_s[k].append(c)
        times[k].append(w)
        rss[k].append(m)
        anon[k].append(a)

med = {k: statistics.median(v) for k, v in times.items()}
cpu = platform.processor() or platform.machine()
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
ncpu = os.cpu_count()
mem = ""
try:
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) // 1024 // 1024} GiB RAM"
except OSError:
    pass

lines = [
    "## Conversion",
    "",
    f"`benchmarks/convert.py`, {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
    f"{cpu}, {ncpu} cores, {mem}, {platform.system()} {platform.release()}.",
    f"Input: torchvision resnet50 state_dict, random init, `torch.save` zip format, {size / 1e6:.1f} MB, page cache warm.",
    f"Whole process wall time, median of {args.runs} interleaved runs. Peak RSS counts the mapped input pages a process",
    "touches (page cache, shared); peak anonymous RSS (sampled every millisecond) is the memory the process itself allocates.",
    f"Load average during the run: {os.getloadavg()[0]:.1f} (the machine is shared; figures are noisy).",
    "",
    "| command | median | min | max | x cp | CPU (user+sys, median) | peak RSS | peak anon RSS |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]
for k in commands:
    lines.append(f"| {k} | {med[k] * 1000:.0f} ms | {min(times[k]) * 1000:.0f} ms | {max(times[k]) * 1000:.0f} ms | "
                 f"{med[k] / med['cp']:.2f} | {statistics.median(cpu_s[k]) * 1000:.0f} ms | {max(rss[k]) / 1024:.0f} MiB | "
                 f"{max(anon[k]) / 1024:.0f} MiB |")
lines += ["", f"Target (issue #3): zoo convert at most 2x cp: {'met' if med['zoo convert'] <= 2 * med['cp'] else 'NOT met'} "
          f"({med['zoo convert'] / med['cp']:.2f}x).", "",
          "What zoo does beyond a copy: SHA-256 of the whole input for `zoo.source` (on a second thread, off the",
          "critical path), CRC-32 verification of every storage record, validation of every tensor view, and an",
          "fsync before the atomic rename; `cp` copies in the kernel (copy_file_range) without reading the data into",
          "the process. Profile of one conversion (perf): SHA-256 ~31% of CPU, zlib crc32 ~19%, kernel copies ~15%,",
          "the rest start-up and page faults. When the machine is loaded, wall time follows CPU time, so the",
          "ratio approaches the CPU ratio; on an idle machine the two threads overlap and the expected wall time",
          "is about max(hash, CRC + write) + fsync.", ""]
text = "\n".join(lines)
print(text)

if args.write_results:
    results_md.replace_section(os.path.join(ROOT, "benchmarks", "RESULTS.md"), "Conversion", text)
