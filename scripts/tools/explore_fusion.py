#!/usr/bin/python3
"""Offline exploration of few-shot fusion rules (issue 30; docs/few_shot.md, "Fusion rules explored offline").

Reads what `vcpclip eval --save-maps` with references writes (README, "Few-shot: reference images"):
per test image the zero-shot pixel map before the fusion Z (<key>.zero_shot.npy), the few-shot map
D (.few_shot_raw.npy), its normalised form D^ (.few_shot_normalized.npy) and, in maps/few_shot.json,
the zero-shot image score z and the memory's normal_max; the ground truth from the data set. Each
rule makes a pixel map and an image score per image from those; the per-class pixel AUROC (all
pixels of the class pooled) and image AUROC are compared with zero-shot (Z, z) against the targets
of issue 30. AUROC is invariant to eval's per-class min-max normalisation, so the numbers are
eval's (the `add` rule reproduces eval's metrics.json, checked on load).

  /usr/bin/python3 scripts/tools/explore_fusion.py DUMPS DATA_ROOTS [--pairs p0_1,p2_3] [--rules a,b]
    DUMPS       folder of <pair>/k<K>/ eval outputs (eval --save-maps, few_shot.k = K)
    DATA_ROOTS  folder of <pair>/data/target (the seed pair's synthetic target set)
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

KS = (1, 2, 4)


def load_cell(dump, data_root):
    """{class: dict(Z [N,S,S], D, Dn, z [N], nm [N], label [N], mask [N,S,S] bool, score_add [N])}."""
    cache = os.path.join(dump, "explore_cache.npz")
    parts = json.load(open(os.path.join(dump, "maps", "few_shot.json")))
    by_class = {}
    for key in sorted(parts["images"]):
        by_class.setdefault(key.split("/")[0], []).append(key)
    if os.path.exists(cache):
        c = np.load(cache, allow_pickle=True)
        return c["cells"].item()
    cells = {}
    for cls, keys in by_class.items():
        Z, D, Dn, z, nm, lab, masks = [], [], [], [], [], [], []
        for key in keys:
            base = os.path.join(dump, "maps", key)
            Z.append(np.load(base + ".zero_shot.npy"))
            D.append(np.load(base + ".few_shot_raw.npy"))
            Dn.append(np.load(base + ".few_shot_normalized.npy"))
            p = parts["images"][key]
            z.append(p["zero_shot_score"])
            nm.append(p["normal_max"])
            _, defect, stem = key.split("/")
            lab.append(0 if defect == "good" else 1)
            mpath = os.path.join(data_root, cls, "ground_truth", defect, stem + "_mask.png")
            if defect != "good" and os.path.exists(mpath):
                masks.append(np.array(Image.open(mpath).convert("L")) > 0)
            else:
                masks.append(np.zeros(Z[-1].shape, bool))
        cells[cls] = dict(Z=np.stack(Z), D=np.stack(D), Dn=np.stack(Dn), z=np.array(z), nm=np.array(nm),
                          label=np.array(lab), mask=np.stack(masks),
                          level=np.array(parts["classes"][cls]["normal_level"]),
                          scale=np.array(parts["classes"][cls]["normal_scale"]))
    np.savez(cache, cells=np.array(cells, dtype=object))
    return cells


def aurocs(c, pixel, score):
    return (100 * roc_auc_score(c["mask"].ravel(), pixel.ravel()), 100 * roc_auc_score(c["label"], score))


def topk_mean(x, k):
    flat = x.reshape(x.shape[0], -1)
    return np.sort(flat, axis=1)[:, -k:].mean(1)


def pos(x):
    return np.maximum(x, 0)


# ---- the candidate rules: a pixel-map rule and an image-score rule, "map|score" on the command line
# (printed "map/score", as docs/few_shot.md writes them) ------------------------------------------
def nmax(x):
    return x.reshape(x.shape[0], -1).max(1)


def zrange(c):
    """Each image's zero-shot map range: max Z - median Z (fusion "relative")."""
    f = np.sort(c["Z"].reshape(len(c["z"]), -1), axis=1)
    return f[:, -1] - f[:, (f.shape[1] - 1) // 2]  # the lower middle value, as torch.median


def excess(c, thr):
    """max(0, D^ - thr): thr a number (standard deviations) or 'nm' (the memory's normal_max)."""
    return pos(c["Dn"] - (c["nm"][:, None, None] if thr == "nm" else thr))


MAPS = {
    "add": lambda c: c["Z"] + c["D"],
    "m0": lambda c: c["Z"] + excess(c, 0.0),
    "m1": lambda c: c["Z"] + excess(c, 1.0),
    "m1.5": lambda c: c["Z"] + excess(c, 1.5),
    "m2": lambda c: c["Z"] + excess(c, 2.0),
    "m3": lambda c: c["Z"] + excess(c, 3.0),
    "r0": lambda c: c["Z"] + excess(c, "nm"),
    # D^ in units of the zero-shot map's own range (per image)
    "zr1": lambda c: c["Z"] + zrange(c)[:, None, None] * excess(c, 1.0),
    "zr3": lambda c: c["Z"] + zrange(c)[:, None, None] * excess(c, 3.0),
}

SCORES = {
    "zs": lambda c: c["z"],
    "add": lambda c: c["z"] + nmax(c["D"]),
    "m3": lambda c: c["z"] + nmax(excess(c, 3.0)),
    "r0": lambda c: c["z"] + nmax(excess(c, "nm")),
    "r0w.1": lambda c: c["z"] + 0.1 * nmax(excess(c, "nm")),
    "r0w.03": lambda c: c["z"] + 0.03 * nmax(excess(c, "nm")),
    "top64m3": lambda c: c["z"] + topk_mean(excess(c, 3.0), 64),
    # the references-thresholded excess in units of the zero-shot map's own range
    "zr_r0": lambda c: c["z"] + zrange(c) * nmax(excess(c, "nm")),
    "zr_m3": lambda c: c["z"] + zrange(c) * nmax(excess(c, 3.0)),
    # relative excess over the references' own largest normal D^: z * (1 + max(0, max D^ / nm - t))
    "ratio1": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) / c["nm"] - 1.0)),
    "ratio1.5": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) / c["nm"] - 1.5)),
    "ratio.5": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) / c["nm"] - 0.5)),
    "ratio.25": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) / c["nm"] - 0.25)),
    "ratio0": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) / c["nm"])),
    "ratio_m1": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) - 1.0) / c["nm"]),
    "ratio_m3": lambda c: c["z"] * (1 + pos(nmax(c["Dn"]) - 3.0) / c["nm"]),
}


def rule(name):
    m, sc = name.split("|")
    return lambda c: (MAPS[m](c), SCORES[sc](c))


# the fusions eval has (add, normalized m3 and r0), each map with the zero-shot score, m3's map with each score
RULES = ["add|add", "m3|m3", "r0|r0"] + [m + "|zs" for m in MAPS] + ["m3|" + sc for sc in SCORES if sc != "zs"]


def evaluate(dumps, roots, pairs, rules):
    rows = {}  # (rule, pair, k) -> {class: (dpx, dimg, px, img, zpx, zimg)}
    for pair in pairs:
        for k in KS:
            dump = os.path.join(dumps, pair, "k%d" % k)
            cells = load_cell(dump, os.path.join(roots, pair, "data", "target"))
            zero = {cls: aurocs(c, c["Z"], c["z"]) for cls, c in cells.items()}
            for name in rules:
                out = {}
                for cls, c in cells.items():
                    px, img = aurocs(c, *rule(name)(c))
                    out[cls] = (px - zero[cls][0], img - zero[cls][1], px, img) + zero[cls]
                rows[(name, pair, k)] = out
    return rows


def summarize(rows, rules, pairs):
    lines = []
    for name in rules:
        fails, cells_failed, k1_ok = set(), 0, 0
        gain = {k: ([], []) for k in KS}
        worst = {k: (0.0, 0.0) for k in KS}
        for pair in pairs:
            for k in KS:
                r = rows[(name, pair, k)]
                dpx = np.mean([v[2] for v in r.values()]) - np.mean([v[4] for v in r.values()])
                dimg = np.mean([v[3] for v in r.values()]) - np.mean([v[5] for v in r.values()])
                gain[k][0].append(dpx)
                gain[k][1].append(dimg)
                bad = [cls for cls, v in r.items() if v[0] < -1 or v[1] < -3]
                worst[k] = (min(worst[k][0], min(v[0] for v in r.values())),
                            min(worst[k][1], min(v[1] for v in r.values())))
                if bad:
                    fails.add(pair)
                    cells_failed += 1
                if k == 1 and dpx > 0:
                    k1_ok += 1
        g4px, g4img = np.mean(gain[4][0]), np.mean(gain[4][1])
        ok = (not fails) and g4px >= 3 and g4img >= 5 and k1_ok == len(pairs)
        lines.append(
            "| %s | %+.2f | %+.2f | %d of %d | %d of %d / %d of %d | %+.2f / %+.2f | %+.2f / %+.2f | %+.2f / %+.2f | %s |" %
            (name.replace("|", "/"), g4px, g4img, k1_ok, len(pairs), len(fails), len(pairs), cells_failed, len(pairs) * len(KS),
             np.mean(gain[1][0]), np.mean(gain[1][1]), worst[1][0], worst[1][1],
             min(worst[2][0], worst[4][0]), min(worst[2][1], worst[4][1]), "**all met**" if ok else "no"))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dumps")
    ap.add_argument("roots")
    ap.add_argument("--pairs", default="p0_1,p2_3,p4_5,p6_7,p8_9,p11_12,p21_22,p31_32")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--detail", action="store_true", help="per pair, k and class")
    args = ap.parse_args()
    pairs, rules = args.pairs.split(","), args.rules.split(",")
    rows = evaluate(args.dumps, args.roots, pairs, rules)
    # add reproduces eval's metrics.json
    for pair in pairs:
        for k in KS:
            m = json.load(open(os.path.join(args.dumps, pair, "k%d" % k, "metrics.json")))
            if "add|add" in rules:
                for row in m["classes"]:
                    mine = rows[("add|add", pair, k)][row["name"]]
                    assert abs(mine[2] - 100 * row["pixel_auroc"]) < 0.01 and abs(mine[3] - 100 * row["image_auroc"]) < 0.01, \
                        (pair, k, row["name"], mine, row["pixel_auroc"], row["image_auroc"])
    print("| rule | k=4 pixel gain (≥ +3) | k=4 image gain (≥ +5) | k=1 pixel above zero-shot | pairs / cells with a class worse |"
          " k=1 mean pixel / image gain | k=1 worst class pixel / image | k=2,4 worst class pixel / image | every target |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(summarize(rows, rules, pairs)))
    if args.detail:
        for name in rules:
            for pair in pairs:
                for k in KS:
                    r = rows[(name, pair, k)]
                    print(name, pair, k, " ".join("%s %+.2f/%+.2f" % (c, v[0], v[1]) for c, v in r.items()))


if __name__ == "__main__":
    sys.exit(main())
