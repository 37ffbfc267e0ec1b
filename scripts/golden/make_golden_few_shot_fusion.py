#!/usr/bin/python3
"""Golden fixture of the two few-shot fusions (docs/design.md §13; tests/model/test_few_shot_parity.cpp
FewShotParity.NormalStatistics*, tests/app/test_few_shot.cpp FewShotFusion.*).

A Python restatement, on the tiny VCP fixture (tests/fixtures/vcp/), of what vcpclip adds to
APRIL-GAN's few-shot branch (scripts/golden/make_golden_few_shot.py restates that branch):
  normal distances, per layer l   K >= 2: each reference image's patches against the memory of
                                  the other K - 1 references (leave-one-out), 1 - max cos;
                                  K = 1: the patches of 6 views of the one reference (shifted by
                                  a quarter of a patch left, right, up, down; rotated by +-5 degrees;
                                  F.affine_grid + F.grid_sample, bilinear, reflection border,
                                  align_corners=False) against the memory
  level_l, scale_l                mean and population standard deviation of those distances
  normal_max                      the largest mean over the layers of (d_l - level_l) / scale_l
                                  among those normal patches
  normalised map D^               mean over the layers of (up(d_l) - level_l) / scale_l
  fusion "add"                    T = weight * D          (D = sum over layers of up(d_l))
  fusion "normalized"             E = D^; center: E -= the image's median of D^ (torch.median:
                                  the lower middle value); E -= margin; threshold "references":
                                  E -= normal_max; T = weight * max(0, E)
  fused pixel map / image score   final_map + T / score + max T   (final_map.npy, score.npy: the
                                  fixture's zero-shot pixel map and image score)
  fusion "relative"               T = weight * max(0, D^ - margin); image score + weight *
                                  (max final_map - median final_map) * max(0, max D^ - normal_max)
Layers [2, 3, 4]; K = 2 (references 0, 1) and K = 1 (reference 0); the three fixture images are
the test images; weight 0.5, margin 1.0; normalized in its 4 variants (threshold fixed or
references, center false or true).

Run with Debian's python3 (torch, numpy):  /usr/bin/python3 scripts/golden/make_golden_few_shot_fusion.py
Outputs (tests/fixtures/vcp/): few_shot_fusion.json (levels, scales, settings, files),
few_shot_fusion_k<K>_{normalized_map,add_pixel,normalized_<threshold>[_center]_pixel}.npy
[3, S, S] and the fused scores in the json; few_shot_fusion_relative.json and
few_shot_fusion_k<K>_relative_pixel.npy: fusion "relative" (the default, issue 30), weight 0.5,
margin 1.0: pixel final_map + weight * max(0, D^ - margin), score + weight * (max final_map -
lower median final_map) * max(0, max D^ - normal_max).
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden_few_shot as base  # noqa: E402

LAYERS = [2, 3, 4]
WEIGHT, MARGIN = 0.5, 1.0
VARIANTS = [("fixed", False), ("references", False), ("fixed", True), ("references", True)]


def unit_rows(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def views(image, patch):
    """The 6 augmented views [6, 3, S, S] of one image [1, 3, S, S]."""
    t = patch / image.shape[3]
    a = np.deg2rad(5.0)
    c, s = np.cos(a), np.sin(a)
    theta = torch.tensor([[[1, 0, t], [0, 1, 0]], [[1, 0, -t], [0, 1, 0]], [[1, 0, 0], [0, 1, t]],
                          [[1, 0, 0], [0, 1, -t]], [[c, -s, 0], [s, c, 0]], [[c, s, 0], [-s, c, 0]]],
                         dtype=torch.float32)
    grid = F.affine_grid(theta, [6] + list(image.shape[1:]), align_corners=False)
    return F.grid_sample(image.expand(6, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def nearest(queries, memory):
    """1 - max cos of each query row against the memory rows (float64)."""
    return 1 - (unit_rows(queries) @ unit_rows(memory).T).max(1)


def relative_entry(tag, refs, norm, normal_max, final_map, score):
    """Fusion "relative": T = weight * max(0, D^ - margin) on the map; the score gets
    weight * (max Z - median Z) * max(0, max D^ - normal_max), Z the image's zero-shot pixel map
    (final_map; median as torch.median: the lower middle value)."""
    e = norm.astype(np.float32).astype(np.float64)
    term = WEIGHT * np.maximum(e - MARGIN, 0)
    z = final_map.reshape(3, -1)
    zs = np.sort(z, 1)
    zrange = z.max(1) - zs[:, (zs.shape[1] - 1) // 2]
    excess = np.maximum(e.reshape(3, -1).max(1) - normal_max, 0)
    # no fixture image goes beyond the references' normal_max; with normal_max set to 0 in the
    # memory every image does (the score's part is then weight * range * max D^)
    excess0 = np.maximum(e.reshape(3, -1).max(1), 0)
    name = tag + "_relative_pixel.npy"
    np.save(os.path.join(base.FIX, name), (final_map + term).astype(np.float32))
    return {"references": refs, "pixel": name, "score": list(score + WEIGHT * zrange * excess),
            "score_normal_max_0": list(score + WEIGHT * zrange * excess0), "excess": list(excess),
            "zero_shot_range": list(zrange)}


def main():
    golden = json.load(open(os.path.join(base.FIX, "golden.json")))
    cfg = json.load(open(os.path.join(base.FIX, golden["config"])))
    sd = base.state_dict()
    images = torch.from_numpy(np.load(os.path.join(base.FIX, "images.npy")))
    s = images.shape[2]
    final_map = np.load(os.path.join(base.FIX, "final_map.npy")).astype(np.float64)
    score = np.load(os.path.join(base.FIX, "score.npy")).astype(np.float64)
    with torch.no_grad():
        outs, _ = base.vision_blocks(sd, cfg, images)
    g = int(np.sqrt(outs[0].shape[1] - 1))
    patch = s // g
    manifest = {"layers": LAYERS, "weight": WEIGHT, "margin": MARGIN, "image_size": s, "sets": []}
    relative = {"layers": LAYERS, "weight": WEIGHT, "margin": MARGIN, "image_size": s, "sets": []}
    for refs in ([0, 1], [0]):
        k = len(refs)
        if k == 1:
            with torch.no_grad():
                vouts, _ = base.vision_blocks(sd, cfg, views(images[refs[0]:refs[0] + 1], patch // 2))
        levels, scales, raw, norm, z = [], [], 0, 0, 0
        for l in LAYERS:
            tokens = outs[l - 1][:, 1:, :].double().numpy()  # [B, G², W]
            per_ref = [tokens[r] for r in refs]
            memory = np.concatenate(per_ref, 0)
            if k >= 2:
                d = np.concatenate([nearest(per_ref[i], np.concatenate(per_ref[:i] + per_ref[i + 1:], 0))
                                    for i in range(k)])
            else:
                vt = vouts[l - 1][:, 1:, :].double().numpy()
                d = nearest(vt.reshape(-1, vt.shape[2]), memory)
            level, scale = d.mean(), max(d.std(), 1e-6)
            z = z + (d - level) / scale
            levels.append(level)
            scales.append(scale)
            m = np.stack([nearest(t, memory) for t in tokens]).reshape(-1, 1, g, g)
            up = F.interpolate(torch.tensor(m), size=s, mode="bilinear", align_corners=True)[:, 0].numpy()
            raw = raw + up
            norm = norm + (up - level) / scale
        norm = norm / len(LAYERS)
        normal_max = (z / len(LAYERS)).max()
        add_term = WEIGHT * raw
        tag = "few_shot_fusion_k%d" % k
        entry = {"references": refs, "normal_level": levels, "normal_scale": scales, "normal_max": normal_max,
                 "normalized_map": tag + "_normalized_map.npy", "add_pixel": tag + "_add_pixel.npy",
                 "add_score": list(score + add_term.reshape(3, -1).max(1)), "normalized": []}
        np.save(os.path.join(base.FIX, entry["normalized_map"]), norm.astype(np.float32))
        np.save(os.path.join(base.FIX, entry["add_pixel"]), (final_map + add_term).astype(np.float32))
        for threshold, center in VARIANTS:
            e = norm.astype(np.float32).astype(np.float64)
            if center:
                flat = np.sort(e.reshape(3, -1), 1)
                e = e - flat[:, (flat.shape[1] - 1) // 2].reshape(3, 1, 1)
            e = e - MARGIN
            if threshold == "references":
                e = e - normal_max
            term = WEIGHT * np.maximum(e, 0)
            name = tag + "_normalized_%s%s_pixel.npy" % (threshold, "_center" if center else "")
            np.save(os.path.join(base.FIX, name), (final_map + term).astype(np.float32))
            entry["normalized"].append({"threshold": threshold, "center": center, "pixel": name,
                                        "score": list(score + term.reshape(3, -1).max(1))})
        manifest["sets"].append(entry)
        relative["sets"].append(relative_entry(tag, refs, norm, normal_max, final_map, score))
    with open(os.path.join(base.FIX, "few_shot_fusion.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(base.FIX, "few_shot_fusion_relative.json"), "w") as f:
        json.dump(relative, f, indent=2)
        f.write("\n")
    print("wrote %d reference sets to %s" % (len(manifest["sets"]), base.FIX))


if __name__ == "__main__":
    main()
