"""Makes the committed hostile HDF5 files in Tests/Fixtures/hdf5/ (run once; the outputs are committed).

They are copies of the generated tf-keras fixture `.cache/fixtures/keras/tfk_nested.h5` with 8 bytes
flipped (xor with a random non-zero byte) by a seeded RNG, chosen because Debian's libhdf5 1.10.8
crashes (SIGSEGV) or runs for minutes on them. The importer must refuse each with one line.

usage: .venv/bin/python tools/make_hdf5_hostile.py
"""
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, ".cache/fixtures/keras/tfk_nested.h5")
OUT = os.path.join(ROOT, "Tests/Fixtures/hdf5")
# copy index -> committed name, from the seed-7 sequence below
KEEP = {2: "libhdf5_segv_1.h5", 16: "libhdf5_segv_2.h5", 23: "libhdf5_segv_3.h5", 230: "libhdf5_slow.h5"}


def main():
    data = open(SOURCE, "rb").read()
    rng = random.Random(7)
    os.makedirs(OUT, exist_ok=True)
    for i in range(max(KEEP) + 1):
        b = bytearray(data)
        span = 4096 if i % 2 == 0 else len(b)
        for _ in range(8):
            b[rng.randrange(span)] ^= rng.randrange(1, 256)
        if i in KEEP:
            open(os.path.join(OUT, KEEP[i]), "wb").write(bytes(b))


if __name__ == "__main__":
    main()
