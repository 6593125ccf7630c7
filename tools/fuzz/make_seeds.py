"""Writes the small committed fuzz seeds: Tests/Fixtures/fuzz-seeds/<target>/.

Run: .venv/bin/python tools/fuzz/make_seeds.py   (numpy only; outputs are a few hundred bytes each).
The fixture generators' outputs (.cache/fixtures) are added to the corpora by tools/fuzz.sh too.
"""
import io, json, os, struct, sys

import numpy as np

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "Tests", "Fixtures", "fuzz-seeds")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# safetensors: a few dtypes, scalar, empty tensor, metadata (native keys too).
f32 = np.arange(6, dtype="<f4").tobytes()
put("safetensors", "two.safetensors", safetensors({"a": ("F32", [2, 3], f32), "b": ("I64", [2], np.array([1, -1], "<i8").tobytes())}))
put("safetensors", "meta.safetensors", safetensors(
    {"w": ("BF16", [2], b"\x80\x3f\x00\x40"), "s": ("F16", [], b"\x00\x3c"), "e": ("U8", [0], b"")},
    {"format": "pt", "zoo.format_version": "1", "zoo.labels": "[\"a\",\"b\"]"}))
put("safetensors", "f8.safetensors", safetensors({"x": ("F8_E4M3", [4], b"\x38\x40\xb8\x7f"), "y": ("BOOL", [2], b"\x01\x00")}))
put("safetensors", "empty.safetensors", safetensors({}))

# json: the shapes a parser must handle.
for i, text in enumerate([
    '{"a": [1, -2, 3.5e-3, true, false, null], "b": {"c": "d\\u00e9\\ud83d\\ude00\\n"}}',
    '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]',
    '{"__metadata__": {"format": "pt"}, "t": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}}',
    '-0.0',
    '9223372036854775807',
    '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
]):
    put("json", f"seed{i}.json", text.encode())


def npy(arr, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, arr)
    else:
        np.lib.format.write_array(b, arr, version=version)
    return b.getvalue()


put("npy", "f32.npy", npy(np.arange(6, dtype="<f4").reshape(2, 3)))
put("npy", "fortran.npy", npy(np.asfortranarray(np.arange(12, dtype="<i2").reshape(3, 4))))
put("npy", "bigendian.npy", npy(np.arange(4, dtype=">f8")))
put("npy", "scalar.npy", npy(np.array(True)))
put("npy", "empty.npy", npy(np.zeros((0, 3), "u1")))
put("npy", "v2.npy", npy(np.arange(3, dtype="<u4"), version=(2, 0)))
put("npy", "v3.npy", npy(np.arange(3, dtype="<i8"), version=(3, 0)))
print("seeds written to", out, file=sys.stderr)


# ---- importer targets (torch, h5py, Pillow) ----
import argparse, collections, pathlib, pickle, zipfile

import h5py
import torch
from PIL import Image

sd = collections.OrderedDict(
    [("conv.weight", torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2)),
     ("conv.bias", torch.tensor([1.0, -1.0])),
     ("bn.num_batches_tracked", torch.tensor(3)),
     ("half", torch.ones(3, dtype=torch.float16)),
     ("bf", torch.ones(2, dtype=torch.bfloat16))])
view_base = torch.arange(12, dtype=torch.float32)
objs = {
    "state_dict": sd,
    "checkpoint": {"epoch": 3, "state_dict": {"w": torch.ones(2, 2)}, "args": [1, "x", 2.5, None, True]},
    "views": {"a": view_base[2:6], "b": view_base.reshape(3, 4).t(), "c": view_base.reshape(3, 4)[:, 1]},
    "channels_last": {"w": torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2).to(memory_format=torch.channels_last)},
    "single": torch.tensor([[1, 2], [3, 4]], dtype=torch.int16),
}
for name, obj in objs.items():
    b = io.BytesIO()
    torch.save(obj, b)
    put("torch", f"{name}.pt", b.getvalue())
    put("zip", f"{name}.pt", b.getvalue())
    b = io.BytesIO()
    torch.save(obj, b, _use_new_zipfile_serialization=False)
    put("torch", f"{name}.legacy.pt", b.getvalue())
    put("pickle", f"{name}.legacy.pkl", b.getvalue())  # the stream starts with a pickle
b = io.BytesIO()
torch.save(sd, b, pickle_protocol=4)
put("torch", "protocol4.pt", b.getvalue())


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


torch.manual_seed(0)
b = io.BytesIO()
torch.jit.save(torch.jit.script(Tiny()), b)
put("torch", "torchscript.pt", b.getvalue())
put("zip", "torchscript.pt", b.getvalue())
for proto in range(0, 6):
    put("pickle", f"plain-p{proto}.pkl", pickle.dumps(
        {"a": [1, 2.5, "s", b"b", None, True, (1, 2), {3, 4}, frozenset([5]), 2**70, -2**40], "b": bytearray(b"xy")}, protocol=proto))
    # Globals kept as opaque values: REDUCE, NEWOBJ, BUILD.
    put("pickle", f"objects-p{proto}.pkl", pickle.dumps(
        {"od": collections.OrderedDict([("k", 1)]), "ns": argparse.Namespace(lr=0.1, name="x"),
         "np": np.float32(1.5), "path": pathlib.PurePosixPath("/a/b")}, protocol=proto))
# A stored (not deflated) and a deflated zip with a data descriptor.
b = io.BytesIO()
with zipfile.ZipFile(b, "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", pickle.dumps({"x": 1}, protocol=2))
    z.writestr("archive/code/x.py", "def f():\n    return 1\n" * 20)
put("zip", "deflated.zip", b.getvalue())


def h5(name, build):
    b = io.BytesIO()
    with h5py.File(b, "w") as f:
        build(f)
    put("hdf5", name, b.getvalue())


def generic(f):
    f.create_dataset("a/f32", data=np.arange(6, dtype="<f4").reshape(2, 3))
    f.create_dataset("a/f64be", data=np.arange(3, dtype=">f8"))
    f.create_dataset("b/i16", data=np.arange(4, dtype="<i2"))
    f.create_dataset("scalar", data=np.float16(1.5))
    f.create_dataset("boolean", data=np.array([True, False]))
    f.attrs["fixed"] = np.bytes_("fixed string")
    f.attrs["vlen"] = "variable string"
    f.attrs["nums"] = np.arange(3)


def chunked(f):
    f.create_dataset("c", data=np.arange(64, dtype="<f4").reshape(8, 8), chunks=(4, 4), compression="gzip", shuffle=True)


def keras_like(f):
    g = f.create_group("model_weights")
    g.attrs["layer_names"] = np.array([b"dense"])
    d = g.create_group("dense/dense")
    d.create_dataset("kernel:0", data=np.ones((2, 3), "<f4"))
    d.create_dataset("bias:0", data=np.zeros(3, "<f4"))
    g["dense"].attrs["weight_names"] = np.array([b"dense/kernel:0", b"dense/bias:0"])
    f.attrs["keras_version"] = "2.15.0"
    f.attrs["backend"] = "tensorflow"


def keras3(f):
    v = f.create_group("layers/dense/vars")
    v.attrs["name"] = "dense"
    v.create_dataset("0", data=np.ones((2, 2), "<f4"))
    v.create_dataset("1", data=np.zeros(2, "<f4"))


h5("generic.h5", generic)
h5("chunked.h5", chunked)
h5("keras2.h5", keras_like)
h5("keras3.weights.h5", keras3)


def img(name, im, **kw):
    b = io.BytesIO()
    im.save(b, **kw)
    put("image", name, b.getvalue())


rgb = Image.fromarray((np.arange(8 * 6 * 3) % 251).astype("uint8").reshape(6, 8, 3), "RGB")
img("rgb.png", rgb, format="PNG")
img("gray.png", rgb.convert("L"), format="PNG")
img("rgba.png", rgb.convert("RGBA"), format="PNG")
img("palette.png", rgb.convert("P"), format="PNG")
img("gray16.png", Image.fromarray((np.arange(48).reshape(6, 8) * 1000).astype("uint16")), format="PNG")
img("interlaced.png", rgb, format="PNG", optimize=False)
img("baseline.jpg", rgb, format="JPEG", quality=90)
img("progressive.jpg", rgb, format="JPEG", progressive=True)
img("gray.jpg", rgb.convert("L"), format="JPEG")
img("cmyk.jpg", rgb.convert("CMYK"), format="JPEG")
exif = Image.Exif()
exif[0x0112] = 6
img("exif6.jpg", rgb, format="JPEG", exif=exif.tobytes())
print("importer seeds written", file=sys.stderr)
