#!/usr/bin/python3
"""The per-pair table of docs/few_shot.md from real `vcpclip eval` runs with references.

  python3 scripts/tools/fusion_table.py RUNS [--pairs p0_1,...]
    RUNS  folder of <pair>/k<K>/metrics.json (eval with few_shot.k = K; its references_vs_zero_shot rows)

Per pair and k: class means of pixel and image AUROC with references (change vs the same run's
zero-shot scoring), the class whose AUROC changed least, and whether a class loses more than 1
point of pixel AUROC or more than 3 of image AUROC (issue 30); then the means over the pairs.
"""
import argparse
import json
import os

import numpy as np

NAMES = {"p0_1": "(0, 1), shipped"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("--pairs", default="p0_1,p2_3,p4_5,p6_7,p8_9,p11_12,p21_22,p31_32")
    args = ap.parse_args()
    pairs = args.pairs.split(",")
    print("| seeds (aux, target) | zero-shot pixel / image | k | pixel AUROC (change) | image AUROC (change) |"
          " largest class loss, pixel | largest class loss, image | no class worse (px > 1, img > 3 points) |")
    print("|---|---|---|---|---|---|---|---|")
    gains = {k: [] for k in (1, 2, 4)}
    failing, cells, k1_above = set(), 0, 0
    for pair in pairs:
        a, t = pair[1:].split("_")
        for k in (1, 2, 4):
            rows = json.load(open(os.path.join(args.runs, pair, "k%d" % k, "metrics.json")))["references_vs_zero_shot"]
            zpx = 100 * np.mean([r["pixel_auroc_zero_shot"] for r in rows])
            zimg = 100 * np.mean([r["image_auroc_zero_shot"] for r in rows])
            px = 100 * np.mean([r["pixel_auroc"] for r in rows])
            img = 100 * np.mean([r["image_auroc"] for r in rows])
            wp = min(rows, key=lambda r: r["pixel_change"])
            wi = min(rows, key=lambda r: r["image_change"])
            bad = [r["name"] for r in rows if r["pixel_change"] < -0.01 or r["image_change"] < -0.03]
            gains[k].append((px - zpx, img - zimg))
            if bad:
                failing.add(pair)
                cells += 1
            if k == 1 and px > zpx:
                k1_above += 1
            print("| %s | %s | %d | %.2f (%+.2f) | %.2f (%+.2f) | %s %+.2f | %s %+.2f | %s |" % (
                NAMES.get(pair, "(%s, %s)" % (a, t)) if k == 1 else "", "%.2f / %.2f" % (zpx, zimg) if k == 1 else "",
                k, px, px - zpx, img, img - zimg, wp["name"], 100 * wp["pixel_change"], wi["name"],
                100 * wi["image_change"], "no: " + ", ".join(bad) if bad else "yes"))
    print()
    for k in (1, 2, 4):
        g = np.array(gains[k])
        print("- k = %d: mean change over the %d pairs: pixel AUROC %+.2f, image AUROC %+.2f points" %
              (k, len(pairs), g[:, 0].mean(), g[:, 1].mean()))
    print("- pairs with a class worse than the target allows (any k): %d of %d (%d of %d pair × k cells); k = 1 mean "
          "pixel AUROC above zero-shot on %d of %d pairs" % (len(failing), len(pairs), cells, 3 * len(pairs), k1_above,
                                                             len(pairs)))


if __name__ == "__main__":
    main()
