#!/usr/bin/env python3
"""The GPU checks' inputs (scripts/gpu/device_check.sh part A, scripts/gpu/device_profile.sh): 17 random
518x518 RGB PNGs in OUT/in_all/img0..16.png and the first of them again in OUT/in_one/img0.png, so
that images/s = 16 / (t(17 images) - t(1 image)). Written with the standard library and numpy
(no imaging package on the GPU machine); seed 7, so both scripts time the same images.

    python3 scripts/gpu/random_pngs.py OUT
"""
import os
import struct
import sys
import zlib

import numpy as np


def png(path, a):
    h, w, _ = a.shape
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main(out):
    for sub in ("in_all", "in_one"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(17):
        a = rng.integers(0, 256, (518, 518, 3), dtype=np.uint8)
        png(f"{out}/in_all/img{i}.png", a)
        if i == 0:
            png(f"{out}/in_one/img0.png", a)


if __name__ == "__main__":
    main(sys.argv[1])
