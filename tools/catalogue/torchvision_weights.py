"""Writes a family's catalogue file zoo/<family>.json from the installed torchvision's Weights enums.

The facts (URL, the SHA-256 prefix torchvision puts in the file name and checks on download, parameter
count, GFLOPs, acc@1/acc@5, file size in MB, the training recipe, the transforms) are read from
`torchvision.models.get_model_weights(arch)`, so the file can be rebuilt from the repository and the
reference environment alone (.venv, tools/requirements.txt pins torchvision). The transforms become
preprocessing recipes of zoo/preprocessing.json (added when missing, named
`torchvision_resize{R}_crop{C}_{interpolation}` plus `_mean05` for the mean/std 0.5 of some ports);
existing recipes are checked, never changed.

Usage (from the repository root):
    .venv/bin/python tools/catalogue/torchvision_weights.py efficientnet EfficientNet efficientnet_b0 ... efficientnet_v2_l
"""
import sys

import torchvision
from torchvision.models import get_model_weights

from zoo_files import add_recipe, load_recipes, write_recipes, write_zoo_json

LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access apply"
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def recipe_for(t):
    """(name, recipe) of a torchvision ImageClassification transforms object, in preprocessing.json's layout."""
    interp = t.interpolation.value.lower()
    mean, std = [float(v) for v in t.mean], [float(v) for v in t.std]
    name = f"torchvision_resize{t.resize_size[0]}_crop{t.crop_size[0]}_{interp}"
    if (mean, std) != IMAGENET:
        assert mean == [0.5] * 3 and std == [0.5] * 3, (mean, std)
        name += "_mean05"
    assert t.antialias, "torchvision's presets antialias"
    return name, {"mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": list(t.resize_size),
                  "crop": list(t.crop_size), "mean": mean, "std": std, "interpolation": interp, "antialias": True}


def main():
    family, title, archs = sys.argv[1], sys.argv[2], sys.argv[3:]
    pre, recipes = load_recipes()
    version = torchvision.__version__.split("+")[0]
    out = []
    for arch in archs:
        weights = []
        for w in get_model_weights(arch):
            name, recipe = recipe_for(w.transforms())
            add_recipe(recipes, name, recipe)
            file = w.url.rsplit("/", 1)[-1]
            prefix = file.rsplit("-", 1)[-1].split(".")[0]
            assert len(prefix) >= 8 and all(c in "0123456789abcdef" for c in prefix), (w.url, "no hash prefix in the file name")
            m = w.meta
            metrics = m["_metrics"]["ImageNet-1K"]
            weights.append({
                "tag": w.name, "source": "torchvision", "url": w.url, "file": file, "sha256": None, "sha256_prefix": prefix,
                "md5": None, "file_size": int(round(m["_file_size"] * 1024 * 1024)), "file_size_approximate": True,
                "acc1": metrics["acc@1"], "acc5": metrics["acc@5"], "license": LICENSE, "preprocessing": name,
                "recipe": m["recipe"], "reference": f"torchvision.models (Weights enums, torchvision {version})",
                "published": {"num_params": m["num_params"], "gflops": m["_ops"], "min_size": list(m["min_size"])},
            })
        assert weights, arch
        crop = weights[0]["preprocessing"]
        size = recipes[crop]["crop"][0]
        out.append({"name": arch, "input_size": [size, size], "preprocessing": crop, "weights": weights})
    doc = {"family": family, "title": title, "architectures": out}
    write_zoo_json(f"{family}.json", doc)
    write_recipes(pre, recipes)
    print(f"zoo/{family}.json: {len(out)} architectures, {sum(len(a['weights']) for a in out)} weight sets")


if __name__ == "__main__":
    main()
