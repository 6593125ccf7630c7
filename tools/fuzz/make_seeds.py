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
