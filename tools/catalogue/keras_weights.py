"""Adds a family's Keras Applications weight files to zoo/<family>.json, from the installed Keras.

The facts (the download URL and the SHA-256 Keras checks on download, for the file with and the
file without the classifier) are read from the installed `keras` package's application module
(`WEIGHTS_HASHES`, `BASE_WEIGHTS_PATH`), so the sets can be rebuilt from the repository and the
reference environment alone (.venv, tools/requirements.txt pins keras). Sets already there are
replaced (same tag), torchvision's are kept; an architecture Keras alone has is appended. The
preprocessing recipe Keras's models build in is added to zoo/preprocessing.json when missing
(existing recipes are checked, never changed).

Usage (from the repository root):
    .venv/bin/python tools/catalogue/keras_weights.py convnext
"""
import importlib
import json
import sys

import keras

from zoo_files import add_recipe, load_recipes, write_recipes, write_zoo_json, zoo_path

REFERENCE = f"keras.applications (keras/src/applications, keras {keras.__version__})"

# ConvNeXt: Keras builds Normalization(mean = 255 x ImageNet mean, variance = (255 x ImageNet std)^2) into the
# model, on 0-255 pixels; the zoo graph omits it and applies the same arithmetic as preprocessing.
CONVNEXT_RECIPE = ("keras_torch_resize224_convnext", {
    "mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": [224, 224], "crop": None,
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "antialias": True,
    "note": "Keras builds Normalization(255 x ImageNet mean, (255 x ImageNet std)^2) into the model on 0-255 "
            "pixels; the zoo graph omits it, so this is applied as preprocessing",
})

FAMILIES = {
    # family: (module, {zoo name: Keras weights key}, recipe, license)
    "convnext": ("keras.src.applications.convnext",
                 {f"convnext_{s}": f"convnext_{s}" for s in ("tiny", "small", "base", "large", "xlarge")},
                 CONVNEXT_RECIPE,
                 "MIT (facebookresearch/ConvNeXt weights, converted by Keras Applications)"),
}


def main():
    family = sys.argv[1]
    module, names, (recipe_name, recipe), license_ = FAMILIES[family]
    app = importlib.import_module(module)
    pre, recipes = load_recipes()
    add_recipe(recipes, recipe_name, recipe)
    doc = json.load(open(zoo_path(f"{family}.json")))
    by_name = {a["name"]: a for a in doc["architectures"]}
    added = 0
    for name, key in names.items():
        full, notop = app.WEIGHTS_HASHES[key]
        sets = []
        for tag, suffix, digest, top in (("KERAS_IMAGENET", ".h5", full, True), ("KERAS_IMAGENET_NOTOP", "_notop.h5", notop, False)):
            assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest), (key, digest)
            file = key + suffix
            sets.append({
                "tag": tag, "source": "keras", "url": app.BASE_WEIGHTS_PATH + file, "file": file, "sha256": digest,
                "md5": None, "file_size": None, "acc1": None, "acc5": None, "license": license_,
                "preprocessing": recipe_name, "include_top": top, "reference": REFERENCE,
            })
        arch = by_name.get(name)
        if arch is None:
            arch = {"name": name, "input_size": [224, 224], "preprocessing": recipe_name, "weights": []}
            doc["architectures"].append(arch)
        arch["weights"] = [w for w in arch["weights"] if w["source"] != "keras"] + sets
        added += len(sets)
    write_zoo_json(f"{family}.json", doc)
    write_recipes(pre, recipes)
    print(f"zoo/{family}.json: {added} Keras weight sets")


if __name__ == "__main__":
    main()
