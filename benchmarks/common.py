"""Helpers shared by the benchmark scripts that time whole `zoo` processes against PyTorch."""
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def zoo_bin():
    """The release `zoo` (or $ZOO_BIN)."""
    return os.environ.get("ZOO_BIN", os.path.join(ROOT, ".build", "release", "zoo"))


def timed(cmd, env=None):
    """Runs `cmd`; (wall seconds, stdout). Exits with its stderr when it fails."""
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])}...: exit {out.returncode}: {out.stderr.strip()[-2000:]}")
    return time.perf_counter() - t, out.stdout


def calibrated_resnet50(work):
    """torchvision's ResNet-50 with seeded random weights and BatchNorm statistics from one pass over random
    images (torchvision's initial running statistics, 0 and 1, let ResNet-50's activations overflow float32 in
    eval mode), saved as `work/resnet50.pth` and converted to `work/resnet50.safetensors`: (pth, native)."""
    import torch
    import torchvision
    torch.manual_seed(0)
    pth = os.path.join(work, "resnet50.pth")
    model = torchvision.models.resnet50()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = None
        model.train()
        model(torch.randn(8, 3, 224, 224))
    torch.save(model.state_dict(), pth)
    native = os.path.join(work, "resnet50.safetensors")
    subprocess.run([zoo_bin(), "convert", pth, "--arch", "resnet50", "-o", native, "-q"], check=True)
    return pth, native
