"""Counts how many times a command opens each of some files (Linux inotify, IN_OPEN), for tests
that check a file is read once (`zoo features --stages`, Examples/BackboneDemo).

    python3 tools/count_opens.py --out COUNTS.json FILE... -- COMMAND [ARG...]

Watches every FILE, runs COMMAND (its output passes through), then writes {FILE: opens} to
COUNTS.json and exits with the command's status. Standard library only (ctypes over libc).
"""
import ctypes
import ctypes.util
import json
import os
import struct
import subprocess
import sys

IN_OPEN = 0x00000020
IN_CLOSE = 0x00000008 | 0x00000010  # IN_CLOSE_WRITE | IN_CLOSE_NOWRITE
IN_NONBLOCK = 0o4000


def main(argv):
    if "--" not in argv or argv[0] != "--out":
        sys.exit(__doc__)
    sep = argv.index("--")
    out, files, command = argv[1], argv[2:sep], argv[sep + 1:]
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = libc.inotify_init1(IN_NONBLOCK)
    if fd < 0:
        sys.exit(f"count_opens: inotify_init1 failed (errno {ctypes.get_errno()})")
    watches = {}
    for f in files:
        # Close events too: inotify merges identical consecutive events that were not read yet, so
        # open, open would count once; open, close, open, close counts twice.
        wd = libc.inotify_add_watch(fd, os.fsencode(f), IN_OPEN | IN_CLOSE)
        if wd < 0:
            sys.exit(f"count_opens: cannot watch {f} (errno {ctypes.get_errno()})")
        watches[wd] = f
    counts = {f: 0 for f in files}
    status = subprocess.call(command)
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        i = 0
        while i + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, i)
            if mask & IN_OPEN and wd in watches:
                counts[watches[wd]] += 1
            i += 16 + length
    with open(out, "w") as f:
        json.dump(counts, f)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
