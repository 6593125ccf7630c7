"""One-off importer that wrote zoo/*.json from the published facts (kept for provenance).

zoo/*.json is the source of truth afterwards: edit it directly; the build embeds it (SwiftPM
resources, `.embedInCode`, Package.swift's ZooArchitectures target), nothing else to run.
Output: one file per family (architectures, their weight sets) and zoo/preprocessing.json, the
preprocessing recipes the weight sets and architectures name (`"preprocessing": "keras_tf_resize224"`);
`Catalogue` (Sources/ZooArchitectures/Catalogue.swift) resolves the names. Feature stages are not
written: they come from the architecture's graph (`LayerGraph.taps`).
Inputs: the torchvision weights table (../shared/reference/torchvision-weights.json, facts
from torchvision's Weights enums) and the Keras applications' URLs and MD5 hashes
(keras/src/applications/*.py: WEIGHTS_HASHES, WEIGHTS_PATH, BASE_WEIGHT_PATH; the MobileNet v1/v2
"no top" files, `*_NOTOP` tags, as named in keras/src/applications/mobilenet.py and mobilenet_v2.py).
Usage: python tools/catalogue/import_reference.py TORCHVISION_WEIGHTS_JSON ZOO_DIR
"""
import json
import os
import sys

tv = json.load(open(sys.argv[1]))
zoo = sys.argv[2]

TV_LICENSE = "BSD-3-Clause (torchvision); trained on ImageNet-1k, whose terms of access apply"
IMNET_MEAN, IMNET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
KERAS_CAFFE = {"mode": "caffe", "channel_order": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68], "std": None,
               "resize": [224, 224], "crop": None, "interpolation": "bilinear"}


def keras_tf(size):
    return {"mode": "tf", "channel_order": "RGB", "scale": 1 / 127.5, "offset": -1.0, "mean": None, "std": None,
            "resize": [size, size], "crop": None, "interpolation": "bilinear"}


def tv_pre(t):
    interp = t["interpolation"].split(".")[-1].lower()
    return {"mode": "torch", "channel_order": "RGB", "scale": 1 / 255, "resize": t["resize"], "crop": t["crop"],
            "mean": t["mean"], "std": t["std"], "interpolation": interp, "antialias": True}


KB = "https://storage.googleapis.com/tensorflow/keras-applications/"
RESNET_MD5 = {"resnet50": "2cb95161c43110f7111970584f804107", "resnet101": "f1aeb4b969a6efcfb50fad2f0c20cfc5",
              "resnet152": "100835be76be38e30d865e96f2aaae62"}
RESNET_NOTOP_MD5 = {"resnet50": "4d473c1dd8becc155b73f8504c6f6626", "resnet101": "88cf7a10940856eca736dc7b7e228a21",
                    "resnet152": "ee4c566cf9a93f14d82f913c2dc6dd0c"}
KERAS_ACC = {"resnet50": (74.9, 92.1), "resnet101": (76.4, 92.8), "resnet152": (76.6, 93.1), "vgg16": (71.3, 90.1),
             "vgg19": (71.3, 90.0), "mobilenet_v1": (70.4, 89.5), "mobilenet_v2": (71.3, 90.1),
             "mobilenet_v3_large": (75.6, None), "mobilenet_v3_large_075": (73.3, None),
             "mobilenet_v3_small": (68.1, None), "mobilenet_v3_small_075": (65.4, None)}
KERAS_SRC = "keras.applications (keras/src/applications, tf_keras/src/applications)"


def kw(arch, tag, url, md5, pre, lic, config=None, notop=False, note=None):
    acc = KERAS_ACC.get(arch, (None, None)) if not notop else (None, None)
    w = {"tag": tag, "source": "keras", "url": url, "file": url.rsplit("/", 1)[1], "sha256": None, "md5": md5,
         "file_size": None, "acc1": acc[0], "acc5": acc[1], "license": lic, "preprocessing": pre,
         "include_top": not notop, "reference": KERAS_SRC}
    if config:
        w["config"] = config
    if note:
        w["note"] = note
    return w


arch_weights = {}
for e in tv:
    nan = e["acc1"] != e["acc1"]
    arch_weights.setdefault(e["arch"], []).append({
        "tag": e["tag"], "source": "torchvision", "url": e["url"], "file": e["file"],
        "sha256": None, "sha256_prefix": e["file"].rsplit("-", 1)[1].split(".")[0], "md5": None,
        "file_size": int(round(e["file_size_mb"] * 1024 * 1024)), "file_size_approximate": True,
        "acc1": None if nan else e["acc1"], "acc5": None if nan else e["acc5"], "license": TV_LICENSE, "preprocessing": tv_pre(e["transforms"]),
        "recipe": e["recipe"], "reference": "torchvision.models (Weights enums, torchvision 0.29)",
        "published": {"num_params": e["num_params"], "gflops": e["gflops"], "min_size": e["min_size"]}})
    if nan:
        arch_weights[e["arch"]][-1]["note"] = ("feature-extraction weights (SSD, amdegroot): torchvision publishes no ImageNet accuracy "
                                              "and the classifier holds NaN; use as a backbone only")

RES_LIC = "MIT (converted from K. He's original Caffe models)"
for a in ["resnet50", "resnet101", "resnet152"]:
    arch_weights.setdefault(a, []).append(kw(a, "KERAS_IMAGENET", f"{KB}resnet/{a}_weights_tf_dim_ordering_tf_kernels.h5",
                                              RESNET_MD5[a], KERAS_CAFFE, RES_LIC))
    arch_weights[a].append(kw(a, "KERAS_IMAGENET_NOTOP", f"{KB}resnet/{a}_weights_tf_dim_ordering_tf_kernels_notop.h5",
                              RESNET_NOTOP_MD5[a], KERAS_CAFFE, RES_LIC, notop=True))
VGG_LIC = "CC-BY-4.0 (Oxford VGG)"
for a, md5, md5n in [("vgg16", "64373286793e3c8b2b4e3219cbf3544b", "6d6bbae143d832006294945121d1f1fc"),
                     ("vgg19", "cbe5617147190e668d6c5d5026f83318", "253f8cb515780f3b799900260a226db6")]:
    arch_weights.setdefault(a, []).append(kw(a, "KERAS_IMAGENET", f"{KB}{a}/{a}_weights_tf_dim_ordering_tf_kernels.h5", md5, KERAS_CAFFE, VGG_LIC))
    arch_weights[a].append(kw(a, "KERAS_IMAGENET_NOTOP", f"{KB}{a}/{a}_weights_tf_dim_ordering_tf_kernels_notop.h5", md5n, KERAS_CAFFE,
                              VGG_LIC, notop=True))
MN_LIC = "Apache-2.0 (TensorFlow models)"
NOMD5 = "Keras publishes no file hash for this file (get_file without file_hash)"
for alpha, text, arch in [(0.25, "2_5", "mobilenet_v1_025"), (0.5, "5_0", "mobilenet_v1_050"), (0.75, "7_5", "mobilenet_v1_075"),
                          (1.0, "1_0", "mobilenet_v1")]:
    for notop in [False, True]:
        for rows in [128, 160, 192, 224]:
            tag = ("KERAS_IMAGENET" if rows == 224 else f"KERAS_IMAGENET_{rows}") + ("_NOTOP" if notop else "")
            arch_weights.setdefault(arch, []).append(
                kw(arch if rows == 224 else "", tag, f"{KB}mobilenet/mobilenet_{text}_{rows}_tf{'_no_top' if notop else ''}.h5", None,
                   keras_tf(rows), MN_LIC, config={"input_size": [rows, rows]}, notop=notop, note=NOMD5))
for alpha, arch in [(0.35, "mobilenet_v2_035"), (0.5, "mobilenet_v2_050"), (0.75, "mobilenet_v2_075"), (1.0, "mobilenet_v2"),
                    (1.3, "mobilenet_v2_130"), (1.4, "mobilenet_v2_140")]:
    for notop in [False, True]:
        for rows in ([96, 128, 160, 192, 224] if alpha <= 1.0 else [224]):
            tag = ("KERAS_IMAGENET" if rows == 224 else f"KERAS_IMAGENET_{rows}") + ("_NOTOP" if notop else "")
            arch_weights.setdefault(arch, []).append(
                kw(arch if rows == 224 else "", tag,
                   f"{KB}mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{'_no_top' if notop else ''}.h5",
                   None, keras_tf(rows), MN_LIC, config={"input_size": [rows, rows]}, notop=notop, note=NOMD5))
V3 = {"large_224_0.75_float": "40af19a13ebea4e2ee0c676887f69a2e", "large_224_1.0_float": "07fb09a5933dd0c8eaafa16978110389",
      "small_224_0.75_float": "ebdb5cc8e0b497cd13a7c275d475c819", "small_224_1.0_float": "d3e8ec802a04aa4fc771ee12a9a9b836"}
V3TOP = {"large_224_0.75_float": "765b44a33ad4005b3ac83185abf1d0eb", "large_224_1.0_float": "59e551e166be033d707958cf9e29a6a7",
         "small_224_0.75_float": "cb65d4e5be93758266aa0a7f2c6708b7", "small_224_1.0_float": "8768d4c2e7dee89b9d02b2d03d65d862"}
for mname, arch in [("large_224_0.75_float", "mobilenet_v3_large_075"), ("large_224_1.0_float", "mobilenet_v3_large"),
                    ("small_224_0.75_float", "mobilenet_v3_small_075"), ("small_224_1.0_float", "mobilenet_v3_small")]:
    pre = keras_tf(224)
    pre["note"] = "Keras builds Rescaling(1/127.5, -1) into the model; the zoo graph omits it, so this is applied as preprocessing"
    arch_weights.setdefault(arch, []).append(kw(arch, "KERAS_IMAGENET", f"{KB}mobilenet_v3/weights_mobilenet_v3_{mname}.h5", V3TOP[mname], pre, MN_LIC))
    arch_weights[arch].append(kw(arch, "KERAS_IMAGENET_NOTOP", f"{KB}mobilenet_v3/weights_mobilenet_v3_{mname}_no_top_v2.h5", V3[mname],
                                 pre, MN_LIC, notop=True))

FAMILIES = {
    "resnet": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
               "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"],
    "vgg": ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"],
    "mobilenet_v1": ["mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075", "mobilenet_v1"],
    "mobilenet_v2": ["mobilenet_v2_035", "mobilenet_v2_050", "mobilenet_v2_075", "mobilenet_v2", "mobilenet_v2_130", "mobilenet_v2_140"],
    "mobilenet_v3": ["mobilenet_v3_large_075", "mobilenet_v3_large", "mobilenet_v3_small_075", "mobilenet_v3_small"],
}
TITLES = {"resnet": "ResNet / ResNeXt / Wide ResNet", "vgg": "VGG", "mobilenet_v1": "MobileNet v1", "mobilenet_v2": "MobileNetV2",
          "mobilenet_v3": "MobileNetV3"}
RECIPES = {}


def recipe(pre):
    """The name of a preprocessing object in zoo/preprocessing.json, registering it on first use."""
    size = pre["resize"][0]
    if pre["mode"] == "torch":
        name = f"torchvision_resize{size}_crop{pre['crop'][0]}_{pre['interpolation']}"
        if pre["mean"] != IMNET_MEAN or pre["std"] != IMNET_STD:
            name += "_ssd_features"  # VGG16 IMAGENET1K_FEATURES: pixels in 0..255 minus the SSD mean
    elif pre["mode"] == "caffe":
        name = f"keras_caffe_bgr_resize{size}"
    else:
        name = f"keras_{pre['mode']}_resize{size}" + ("_mobilenet_v3" if "note" in pre else "")
    if RECIPES.setdefault(name, pre) != pre:
        sys.exit(f"two different preprocessing objects would be named {name}")
    return name


for fam, archs in FAMILIES.items():
    entries = []
    for a in archs:
        ws = arch_weights.get(a, [])
        torch_default = any(w["source"] == "torchvision" for w in ws)
        # The default is that of the weights at the architecture's input size (224), not the first listed.
        at224 = [w for w in ws if w["preprocessing"].get("resize") == [224, 224]]
        pre = (at224 or ws)[0]["preprocessing"] if ws else None
        if torch_default:
            pre = tv_pre({"resize": [256], "crop": [224], "mean": IMNET_MEAN, "std": IMNET_STD, "interpolation": "InterpolationMode.BILINEAR"})
        for w in ws:
            w.pop("config", None) if w.get("config", {}).get("input_size") == [224, 224] else None
            w["preprocessing"] = recipe(w["preprocessing"])
        entries.append({"name": a, "input_size": [224, 224], "preprocessing": recipe(pre) if pre else None, "weights": ws})
    write = {"family": fam, "title": TITLES[fam], "architectures": entries}
    with open(os.path.join(zoo, f"{fam}.json"), "w") as f:
        json.dump(write, f, indent=1)
        f.write("\n")
with open(os.path.join(zoo, "preprocessing.json"), "w") as f:
    json.dump({"about": "Preprocessing recipes, named by the `preprocessing` of the architectures and weight sets of zoo/*.json. "
                        "Keys and their order are what a converted file stores as `zoo.preprocessing` (docs/images.md).",
               "recipes": dict(sorted(RECIPES.items()))}, f, indent=1)
    f.write("\n")
