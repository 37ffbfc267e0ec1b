#!/usr/bin/env python3
"""Times the reference evaluation of one class (bench/bench_metrics.cpp runs it for comparison).

Computes, as the reference test.py does: sklearn roc_auc_score, average_precision_score,
precision_recall_curve F1-max (+ IoU at the best threshold) on the raveled pixels, and the
reference's 200-step cal_pro_score (imported from --ref; a scipy shim stands in for
skimage.measure when scikit-image is missing, see make_golden_metrics.py).

Usage: bench_metrics_reference.py --maps maps.f32 --masks masks.u8 --shape N,H,W [--ref /tmp/ref]
Prints one "<name>_seconds <t>" line per step, "total_seconds <t>" and the metric values.
"""
import argparse
import os
import sys
import time

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "golden"))
from make_golden_metrics import install_skimage_shim  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", required=True)
    ap.add_argument("--masks", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--ref", default="/tmp/ref")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    pr = np.fromfile(args.maps, dtype="<f4").reshape(shape)
    gt = np.fromfile(args.masks, dtype=np.uint8).reshape(shape).astype(np.float32)
    install_skimage_shim()
    sys.path.insert(0, args.ref)
    from utils.tools import cal_iou, cal_pro_score

    times = {}
    t = time.perf_counter()
    auroc = roc_auc_score(gt.ravel(), pr.ravel())
    times["auroc"] = time.perf_counter() - t
    t = time.perf_counter()
    apv = average_precision_score(gt.ravel(), pr.ravel())
    times["ap"] = time.perf_counter() - t
    t = time.perf_counter()
    p, r, th = precision_recall_curve(gt.ravel(), pr.ravel())
    f1 = (2 * p * r) / (p + r + 1e-8)
    best = th[np.argmax(f1)]
    iou = cal_iou(gt.ravel(), pr.ravel() > best)
    times["f1_iou"] = time.perf_counter() - t
    t = time.perf_counter()
    aupro = cal_pro_score(gt, pr)
    times["aupro_reference"] = time.perf_counter() - t
    for k, v in times.items():
        print(f"{k}_seconds {v:.3f}")
    print(f"total_seconds {sum(times.values()):.3f}")
    print(f"values auroc {auroc:.6f} ap {apv:.6f} f1 {np.max(f1):.6f} iou {iou:.6f} aupro_reference {aupro:.6f}")


if __name__ == "__main__":
    main()
