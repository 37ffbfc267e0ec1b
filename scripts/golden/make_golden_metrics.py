#!/usr/bin/env python3
"""Golden fixtures for the evaluation metrics (tests/eval/test_metrics.cpp, test_postprocess.cpp).

Writes tests/fixtures/metrics/:
  <case>.maps.f32   float32 little-endian [N,H,W] anomaly maps (before per-class min-max)
  <case>.masks.u8   uint8 [N,H,W] ground truth 0/1
  <case>.scores.f64 float64 [N] image scores (before per-class min-max)
  <case>.labels.u8  uint8 [N] image labels
  gauss_<k>.in.f32 / gauss_<k>.out.f32   gaussian_filter input / output [N,H,W]
  expected.json     shapes and expected metric values (null = undefined)

Expected values come from:
  * scikit-learn roc_auc_score / average_precision_score / precision_recall_curve, computed as the
    reference test.py does (per-class min-max `normalize` of the maps in float32 first; pixel F1
    with +1e-8 in the denominator, threshold = thresholds[argmax], IoU at score > threshold;
    image F1 = max finite 2PR/(P+R));
  * the reference cal_pro_score (imported from the reference code given by --ref; if
    scikit-image is missing, skimage.measure.label/regionprops are provided by a small shim on
    scipy.ndimage.label with 8-connectivity);
  * an independent, slow exact AUPRO below (regions by scipy.ndimage.label, per-region coverage
    by searchsorted at every distinct threshold, trapezoid to FPR 0.3 with interpolation, / 0.3);
  * scipy.ndimage.gaussian_filter (mode 'reflect', truncate 4).

Usage: python3 scripts/golden/make_golden_metrics.py [--ref /tmp/ref] [--out tests/fixtures/metrics]
"""
import argparse
import json
import os
import sys
import types

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def install_skimage_shim():
    try:
        import skimage.measure  # noqa: F401
        return
    except ImportError:
        pass

    class Region:
        def __init__(self, coords):
            self.coords = coords
            self.area = len(coords)

    def label(img):
        lab, _ = ndimage.label(np.asarray(img) != 0, structure=np.ones((3, 3)))
        return lab

    def regionprops(lab):
        out = []
        for r in range(1, int(lab.max()) + 1):
            rr, cc = np.nonzero(lab == r)
            out.append(Region(np.stack([rr, cc], axis=1)))
        return out

    skimage = types.ModuleType("skimage")
    measure = types.ModuleType("skimage.measure")
    measure.label = label
    measure.regionprops = regionprops
    skimage.measure = measure
    sys.modules["skimage"] = skimage
    sys.modules["skimage.measure"] = measure


def exact_aupro(masks, maps, limit=0.3):
    """Slow, independent exact AUPRO: per-region coverage at every distinct threshold."""
    scores = maps.ravel().astype(np.float64)
    gt = masks.ravel() != 0
    ths = np.unique(scores)[::-1]  # descending
    neg = np.sort(scores[~gt])
    fpr = (len(neg) - np.searchsorted(neg, ths, side="left")) / len(neg)
    cover = np.zeros(len(ths))
    nreg = 0
    for m, a in zip(masks, maps):
        lab, n = ndimage.label(m != 0, structure=np.ones((3, 3)))
        for r in range(1, n + 1):
            s = np.sort(a[lab == r].astype(np.float64))
            cover += (len(s) - np.searchsorted(s, ths, side="left")) / len(s)
            nreg += 1
    pro = cover / nreg
    x = np.concatenate([[0.0], fpr])
    y = np.concatenate([[0.0], pro])
    area = 0.0
    for i in range(1, len(x)):
        if x[i] <= limit:
            area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2
        else:
            yl = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
            area += (limit - x[i - 1]) * (yl + y[i - 1]) / 2
            break
    return area / limit


def class_metrics(maps, masks, scores, labels, tools):
    pr = tools.normalize(maps.astype(np.float32))
    gt = masks.astype(np.float32)
    sp = (scores - scores.min()) / (scores.max() - scores.min()) if scores.max() > scores.min() else np.zeros_like(scores)
    out = {}
    y, s = gt.ravel(), pr.ravel()
    if y.min() != y.max():
        out["pixel_auroc"] = float(roc_auc_score(y, s))
        out["aupro_exact"] = exact_aupro(masks, pr)
        out["aupro_reference"] = float(tools.cal_pro_score(gt, pr))
    else:
        out["pixel_auroc"] = out["aupro_exact"] = out["aupro_reference"] = None
    if y.max() > 0:
        out["pixel_ap"] = float(average_precision_score(y, s))
        p, r, t = precision_recall_curve(y, s)
        f1 = (2 * p * r) / (p + r + 1e-8)
        thr = t[np.argmax(f1)]
        out["pixel_f1_max"] = float(np.max(f1[np.isfinite(f1)]))
        out["pixel_f1_threshold"] = float(thr)
        out["pixel_iou"] = float(tools.cal_iou(y, s > thr))
    else:
        for k in ["pixel_ap", "pixel_f1_max", "pixel_f1_threshold", "pixel_iou"]:
            out[k] = None
    if labels.min() != labels.max():
        out["image_auroc"] = float(roc_auc_score(labels, sp))
    else:
        out["image_auroc"] = None
    if labels.max() > 0:
        out["image_ap"] = float(average_precision_score(labels, sp))
        p, r, _ = precision_recall_curve(labels, sp)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = (2 * p * r) / (p + r)
        out["image_f1_max"] = float(np.max(f1[np.isfinite(f1)]))
    else:
        out["image_ap"] = out["image_f1_max"] = None
    return out


def blob_masks(rng, n, h, w, normal):
    masks = np.zeros((n, h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        if i in normal:
            continue
        for _ in range(rng.integers(1, 4)):
            cy, cx, rad = rng.integers(4, h - 4), rng.integers(4, w - 4), rng.integers(1, 7)
            masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad] = 1
        # single-pixel regions, one diagonal pair (one region under 8-connectivity)
        masks[i][rng.integers(0, h), rng.integers(0, w)] = 1
        masks[i][1, w - 3] = 1
        masks[i][2, w - 2] = 1
        masks[i][h - 1, 0] = 1
    return masks


def smooth_maps(rng, masks, strength):
    n, h, w = masks.shape
    maps = np.stack([ndimage.gaussian_filter(rng.random((h, w)), 2.0) for _ in range(n)])
    maps = maps + strength * ndimage.gaussian_filter(masks.astype(np.float64), (0, 1.5, 1.5))
    maps += 0.05 * rng.random(maps.shape)
    return maps.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "metrics"))
    args = ap.parse_args()
    install_skimage_shim()
    sys.path.insert(0, args.ref)
    from utils import tools  # the reference's cal_pro_score, normalize, cal_iou

    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240531)
    cases = {}

    def save_case(name, maps, masks, scores, labels):
        maps.astype("<f4").tofile(os.path.join(args.out, name + ".maps.f32"))
        masks.astype(np.uint8).tofile(os.path.join(args.out, name + ".masks.u8"))
        scores.astype("<f8").tofile(os.path.join(args.out, name + ".scores.f64"))
        labels.astype(np.uint8).tofile(os.path.join(args.out, name + ".labels.u8"))
        cases[name] = {"shape": list(maps.shape), "expected": class_metrics(maps, masks, scores, labels, tools)}

    # blobs: smooth maps, several blobs, single-pixel regions, two normal images
    masks = blob_masks(rng, 6, 48, 40, normal={0, 3})
    maps = smooth_maps(rng, masks, 0.6)
    labels = (masks.reshape(6, -1).max(1) > 0).astype(np.uint8)
    scores = np.sort(maps.reshape(6, -1), axis=1)[:, -50:].mean(1).astype(np.float64) + 0.1 * rng.random(6)
    save_case("blobs", maps, masks, scores, labels)

    # ties: maps quantised to 1/8, image scores with ties
    masks = blob_masks(rng, 5, 32, 32, normal={1})
    maps = (np.round(smooth_maps(rng, masks, 0.5) * 8) / 8).astype(np.float32)
    labels = np.array([1, 0, 1, 0, 1], np.uint8)  # image 3 anomalous by mask, labelled normal: allowed
    scores = np.array([0.5, 0.25, 0.5, 0.75, 0.25])
    save_case("ties", maps, masks, scores, labels)

    # wide: many distinct values over a wide range (several sort groups), 3 images
    masks = blob_masks(rng, 3, 64, 64, normal=set())
    maps = (np.exp(8 * smooth_maps(rng, masks, 1.0)) - 1).astype(np.float32)
    labels = np.array([1, 1, 0], np.uint8)
    scores = rng.random(3)
    save_case("wide", maps, masks, scores, labels)

    # allnormal: no defect pixel, no anomalous image -> everything undefined
    masks = np.zeros((3, 16, 16), np.uint8)
    maps = rng.random((3, 16, 16)).astype(np.float32)
    save_case("allnormal", maps, masks, rng.random(3), np.zeros(3, np.uint8))

    # gaussian filter (scipy semantics) on float32 maps
    gauss = {}
    for k, (shape, sigma) in enumerate([((2, 70, 60), 8.0), ((1, 20, 23), 8.0), ((2, 33, 31), 1.5)]):
        x = rng.random(shape).astype(np.float32)
        y = np.stack([ndimage.gaussian_filter(m, sigma=sigma) for m in x]).astype(np.float32)
        x.astype("<f4").tofile(os.path.join(args.out, f"gauss_{k}.in.f32"))
        y.astype("<f4").tofile(os.path.join(args.out, f"gauss_{k}.out.f32"))
        gauss[f"gauss_{k}"] = {"shape": list(shape), "sigma": sigma}

    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"cases": cases, "gaussian": gauss}, f, indent=1, sort_keys=True)
    print(json.dumps(cases, indent=1))


if __name__ == "__main__":
    main()
