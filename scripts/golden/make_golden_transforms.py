#!/usr/bin/env python3
"""Golden fixtures for vcpclip's image/mask preprocessing (tests/data/test_transforms.cpp).

Inputs are procedural (integer formula `pattern` / `mask_pattern`, re-implemented in the C++ test),
so no input image is committed. Outputs come from PIL (Image.resize) and from the reference's own
test transform (`_transform_test` in <ref>/models/model_CLIP.py, extracted with `ast` because the
module's other imports need files we do not have). Large outputs (1024² → 518²) are stored as a
crop plus checksums over the whole image.

usage: /usr/bin/python3 scripts/golden/make_golden_transforms.py [--ref /tmp/ref] [--out tests/fixtures/data/transforms]
"""
import argparse
import ast
import json
import os

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image


def pattern(w, h, channels, seed):
    """uint8 [h,w,channels]: diagonal ramps that wrap (hard edges) plus hashed noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.uint64)
    out = np.zeros((h, w, channels), np.uint8)
    m32 = np.uint64(0xFFFFFFFF)
    for c in range(channels):
        cc = np.uint64(c)
        hsh = ((x * np.uint64(73856093)) ^ (y * np.uint64(19349663)) ^ ((cc + np.uint64(1)) * np.uint64(83492791))
               ^ np.uint64(seed * 2654435761 & 0xFFFFFFFF)) & m32
        hsh ^= hsh >> np.uint64(13)
        hsh = (hsh * np.uint64(0x5BD1E995)) & m32
        hsh ^= hsh >> np.uint64(15)
        v = (x * (np.uint64(3) + cc) + y * (np.uint64(5) + np.uint64(2) * cc) + (hsh & np.uint64(63))) & np.uint64(255)
        out[:, :, c] = v.astype(np.uint8)
    return out


def mask_pattern(w, h, value):
    """uint8 [h,w]: a disk, a thin bar, a 1-pixel diagonal line and a small square, set to `value`."""
    y, x = np.mgrid[0:h, 0:w]
    m = (x - w * 0.3) ** 2 + (y - h * 0.35) ** 2 < (min(w, h) * 0.18) ** 2
    m |= (x >= int(w * 0.7)) & (x < int(w * 0.7) + 3) & (y >= h // 8) & (y < h - h // 8)
    m |= x == y + 5
    m |= (x >= w // 2) & (x < w // 2 + 4) & (y >= int(h * 0.75)) & (y < int(h * 0.75) + 4)
    return np.where(m, value, 0).astype(np.uint8)


def checksums(arr):
    flat = arr.reshape(-1).astype(np.int64)
    weights = (np.arange(flat.size, dtype=np.int64) % 251) + 1
    return int(flat.sum()), int((flat * weights).sum())


def load_reference_transform(ref):
    """Executes only `_convert_image_to_rgb`, the BICUBIC choice and `_transform_test` of the reference."""
    path = os.path.join(ref, "models", "model_CLIP.py")
    tree = ast.parse(open(path).read(), path)
    keep = [n for n in tree.body
            if (isinstance(n, ast.FunctionDef) and n.name in ("_convert_image_to_rgb", "_transform_test"))
            or isinstance(n, ast.Try)
            or (isinstance(n, (ast.ImportFrom, ast.Import)) and any(a.name in ("Compose", "Image") for a in n.names))]
    ns = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns["_transform_test"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "data", "transforms"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    transform_test = load_reference_transform(args.ref)
    manifest = {"image_resize": [], "mask": [], "preprocess": []}

    # Image resizes: PIL Image.resize(BICUBIC) == torchvision Resize(BICUBIC) on PIL images.
    cases = [  # name, w, h, channels, out_w, out_h, seed, crop (x, y, w, h) or None
        ("rgb_131x97_to_64", 131, 97, 3, 64, 64, 1, None),
        ("rgb_40x30_to_90x70", 40, 30, 3, 90, 70, 2, None),
        ("l_131x97_to_64", 131, 97, 1, 64, 64, 3, None),
        ("rgb_64x64_to_64x20", 64, 64, 3, 64, 20, 4, None),
        ("rgb_1024_to_518", 1024, 1024, 3, 518, 518, 5, (227, 301, 48, 40)),
        ("rgb_300x200_to_518", 300, 200, 3, 518, 518, 6, (10, 470, 40, 40)),
    ]
    for name, w, h, ch, ow, oh, seed, crop in cases:
        arr = pattern(w, h, ch, seed)
        img = Image.fromarray(arr[:, :, 0] if ch == 1 else arr, "L" if ch == 1 else "RGB")
        out = np.asarray(img.resize((ow, oh), Image.BICUBIC))
        total, weighted = checksums(out)
        entry = dict(name=name, width=w, height=h, channels=ch, out_width=ow, out_height=oh, seed=seed,
                     sum=total, weighted_sum=weighted)
        if crop is None:
            Image.fromarray(out).save(os.path.join(args.out, name + ".png"))
            entry["file"] = name + ".png"
        else:
            cx, cy, cw, chh = crop
            Image.fromarray(out[cy:cy + chh, cx:cx + cw]).save(os.path.join(args.out, name + "_crop.png"))
            entry["file"] = name + "_crop.png"
            entry["crop"] = [cx, cy, cw, chh]
        manifest["image_resize"].append(entry)

    # Masks: the reference dataset's path: (>0)*255 "L" image → Resize((S,S)) (bilinear) →
    # ToTensor → gt > 0.5 (train.py / test.py binarisation).
    for name, w, h, value, size in [("mask_131x97_to_64", 131, 97, 255, 64),
                                    ("mask_40x30_to_90", 40, 30, 255, 90),
                                    ("mask_values1_200x150_to_56", 200, 150, 1, 56)]:
        raw = mask_pattern(w, h, value)
        binary = Image.fromarray((raw > 0).astype(np.uint8) * 255, mode="L")
        target = T.Compose([T.Resize((size, size)), T.CenterCrop(size), T.ToTensor()])(binary)[0]
        gt = (target > 0.5).numpy().astype(np.uint8) * 255
        Image.fromarray(gt).save(os.path.join(args.out, name + ".png"))
        manifest["mask"].append(dict(name=name, width=w, height=h, value=value, size=size, file=name + ".png",
                                     positives=int((gt > 0).sum())))

    # Full image preprocessing through the reference's _transform_test → float32 [3,S,S] raw.
    for name, w, h, ch, size, seed in [("pre_rgb_131x97_s64", 131, 97, 3, 64, 7),
                                        ("pre_l_70x90_s48", 70, 90, 1, 48, 8)]:
        arr = pattern(w, h, ch, seed)
        img = Image.fromarray(arr[:, :, 0] if ch == 1 else arr, "L" if ch == 1 else "RGB")
        t = transform_test(size)(img).to(torch.float32).contiguous().numpy()
        t.astype("<f4").tofile(os.path.join(args.out, name + ".f32"))
        manifest["preprocess"].append(dict(name=name, width=w, height=h, channels=ch, size=size, seed=seed,
                                           file=name + ".f32"))

    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
