"""Adds a family's Keras Applications weight files to zoo/<family>.json, from the installed Keras.

The facts (the download URL and the digest Keras checks on download, SHA-256 or MD5 by its length, for
the file with and the file without the classifier) are read from the installed `keras` package's
application module (`WEIGHTS_HASHES`, `BASE_WEIGHTS_PATH`), so the sets can be rebuilt from the repository and the
reference environment alone (.venv, tools/requirements.txt pins keras). Sets already there are
replaced (same tag), torchvision's are kept; an architecture Keras alone has is appended. The
preprocessing recipe Keras's models build in is added to zoo/preprocessing.json when missing
(existing recipes are checked, never changed).

Input sizes are the `default_size` each application function passes (Keras's own input shape for a model
with its top), stated here.

Usage (from the repository root):
    .venv/bin/python tools/catalogue/keras_weights.py convnext
    .venv/bin/python tools/catalogue/keras_weights.py efficientnet
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



def efficientnet_recipe(size):
    """Keras's EfficientNet B0-B7: Rescaling(1/255), the input Normalization (its weights: ImageNet's mean, and
    ImageNet's std stored as the variance), and for weights="imagenet" Rescaling(1/sqrt(std)): together
    torchvision's mean/std arithmetic (TensorFlow issue 49930)."""
    return (f"keras_torch_resize{size}_efficientnet", {
        "mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": [size, size], "crop": None,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "antialias": True,
        "note": "Keras builds Rescaling(1/255), Normalization (weights: ImageNet mean, ImageNet std as variance) and, "
                "with weights=\"imagenet\", Rescaling(1/sqrt(ImageNet std)) into the model; the zoo graph omits them, so "
                "this is applied as preprocessing (a converted file's own Normalization replaces mean and std)",
    })


def efficientnet_v2_b_recipe(size):
    """Keras's EfficientNetV2 B0-B3: Rescaling(1/255), Normalization(ImageNet mean, std^2), no weights."""
    return (f"keras_torch_resize{size}_efficientnet_v2", {
        "mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": [size, size], "crop": None,
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "antialias": True,
        "note": "Keras builds Rescaling(1/255) and Normalization(ImageNet mean, (ImageNet std)^2) into the model; the zoo "
                "graph omits them, so this is applied as preprocessing",
    })


def efficientnet_v2_recipe(size):
    """Keras's EfficientNetV2 S/M/L: Rescaling(1/128, offset=-1), which is (x/255 - 128/255) / (128/255)."""
    return (f"keras_torch_resize{size}_efficientnet_v2_128", {
        "mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": [size, size], "crop": None,
        "mean": [128 / 255] * 3, "std": [128 / 255] * 3, "interpolation": "bilinear", "antialias": True,
        "note": "Keras builds Rescaling(1/128, offset=-1) into the model (x / 128 - 1, stated here as mean = std = "
                "128/255 on 0-1 pixels); the zoo graph omits it, so this is applied as preprocessing",
    })


# Keras Applications' default_size of each EfficientNet (the input of a model with its top).
EFFICIENTNET_SIZES = [224, 240, 260, 300, 380, 456, 528, 600]
EFFICIENTNET_V2_SIZES = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "-s": 384, "-m": 480, "-l": 480}
EFFICIENTNET_LICENSE = "Apache-2.0 (TensorFlow TPU / AutoML EfficientNet checkpoints, converted by Keras Applications)"

FAMILIES = {
    # family: [(module, {zoo name: (Keras weights key, file stem, input size, (recipe name, recipe))}, license)]
    "convnext": [("keras.src.applications.convnext",
                  {f"convnext_{s}": (f"convnext_{s}", f"convnext_{s}", 224, CONVNEXT_RECIPE)
                   for s in ("tiny", "small", "base", "large", "xlarge")},
                  "MIT (facebookresearch/ConvNeXt weights, converted by Keras Applications)")],
    "efficientnet": [
        ("keras.src.applications.efficientnet",
         {f"efficientnet_b{i}": (f"b{i}", f"efficientnetb{i}", n, efficientnet_recipe(n)) for i, n in enumerate(EFFICIENTNET_SIZES)},
         EFFICIENTNET_LICENSE),
        ("keras.src.applications.efficientnet_v2",
         {("efficientnet_v2_" + k.lstrip("-")): (k, "efficientnetv2-" + k.lstrip("-"), n,
                                                  efficientnet_v2_b_recipe(n) if k.startswith("b") else efficientnet_v2_recipe(n))
          for k, n in EFFICIENTNET_V2_SIZES.items()},
         EFFICIENTNET_LICENSE),
    ],
}


def main():
    family = sys.argv[1]
    pre, recipes = load_recipes()
    doc = json.load(open(zoo_path(f"{family}.json")))
    by_name = {a["name"]: a for a in doc["architectures"]}
    added = 0
    for module, names, license_ in FAMILIES[family]:
        app = importlib.import_module(module)
        for name, (key, stem, size, (recipe_name, recipe)) in names.items():
            add_recipe(recipes, recipe_name, recipe)
            full, notop = app.WEIGHTS_HASHES[key]
            sets = []
            for tag, suffix, digest, top in (("KERAS_IMAGENET", ".h5", full, True), ("KERAS_IMAGENET_NOTOP", "_notop.h5", notop, False)):
                assert len(digest) in (32, 64) and all(c in "0123456789abcdef" for c in digest), (key, digest)
                file = stem + suffix
                sets.append({
                    "tag": tag, "source": "keras", "url": app.BASE_WEIGHTS_PATH + file, "file": file,
                    "sha256": digest if len(digest) == 64 else None, "md5": digest if len(digest) == 32 else None,
                    "file_size": None, "acc1": None, "acc5": None, "license": license_,
                    "preprocessing": recipe_name, "include_top": top, "reference": REFERENCE,
                })
            arch = by_name.get(name)
            if arch is None:
                arch = {"name": name, "input_size": [size, size], "preprocessing": recipe_name, "weights": []}
                doc["architectures"].append(arch)
                by_name[name] = arch
            arch["weights"] = [w for w in arch["weights"] if w["source"] != "keras"] + sets
            added += len(sets)
    write_zoo_json(f"{family}.json", doc)
    write_recipes(pre, recipes)
    print(f"zoo/{family}.json: {added} Keras weight sets")


if __name__ == "__main__":
    main()
