#!/usr/bin/python3
"""Times the official test.py forward of APRIL-GAN and of AnomalyCLIP on random weights, and leaves
those weights for `vcpclip bench --only methods` to time the C++ methods on (the same files).

  /usr/bin/python3 bench/reference/bench_methods_reference.py --size ViT-L-14-336 --weights-dir runs/bench/weights \
      --make-only
  /usr/bin/python3 bench/reference/bench_methods_reference.py --method april_gan --size ViT-L-14-336 \
      --weights-dir runs/bench/weights --threads 2 --images 3 --json /tmp/april.json [--ref /tmp/april]

The official code is imported from checkouts of the public repositories, as the golden scripts do
(scripts/golden/make_golden_april_gan.py, make_golden_anomaly_clip.py), e.g.
  git -C <mirror of ByChelsea/VAND-APRIL-GAN> archive HEAD model.py prompt_ensemble.py loss.py open_clip | tar -x -C /tmp/april
  git -C <mirror of zqhang/AnomalyCLIP> archive HEAD AnomalyCLIP_lib prompt_ensemble.py loss.py | tar -x -C /tmp/anomalyclip_ref
Nothing of it is written to the weight files except what its own classes save (the checkpoints).

Sizes: "tiny" (a 4-block tower of width 128, S = 64, fast) and "ViT-L-14-336" (the paper's tower,
S = 518). Files (made once in --weights-dir, reused):
  <size>_methods_clip.pt / .json   backbone, OpenAI TorchScript form (fp16), and its model config
  <size>_april_gan.pth             {'trainable_linearlayer': LinearLayer state_dict} (official class)
  <size>_anomaly_clip.pth          {'prompt_learner': AnomalyCLIP_PromptLearner state_dict} (official class)

What is timed, per image (batch 1, as both test.py loops), fp32, no autograd:
  april_gan     open_clip's vision tower at S (exact GELU, bicubic position embedding) over the
                features_list blocks -> image score softmax(100 * normalise(pooled) . T) ->
                LinearLayer -> per layer normalise, 100 * f . T, bilinear (align_corners) to S,
                softmax, abnormal channel -> numpy sum over the layers. T (the class's prompt
                ensemble) is computed before the loop, as test.py does for every class.
  anomaly_clip  encode_image with DPAM (DPAM_layer 20 of 24) -> image score softmax(cos / 0.07) ->
                per layer compute_similarity + get_similarity_map -> (p_abn + 1 - p_norm) / 2 summed.
                The text features are computed once before the loop (test.py). The per-image gaussian
                (scipy, sigma 4) is post-processing, outside predict_maps on the C++ side: it is
                timed apart ("gaussian_seconds_per_image") and not included in seconds_per_image.
Timing: one warm-up image, then t(1) and t(N); seconds_per_image = (t(N) - t(1)) / (N - 1). The
JSON also has the load time, this process's peak RSS and the BLAS kernels it ran on.
"""
import argparse
import json
import os
import resource
import sys
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts", "golden"))
from bench_predict_reference import blas_kernels  # noqa: E402

TINY = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 4}}
VIT_L = {"embed_dim": 768, "vision_cfg": {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14},
         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}}
# size: (config, S, APRIL-GAN features_list, AnomalyCLIP features_list, AnomalyCLIP depth)
SIZES = {"tiny": (TINY, 64, [2, 3, 4], [4], 3), "ViT-L-14-336": (VIT_L, 518, [6, 12, 18, 24], [24], 9)}
CLASS_NAME = "bottle"  # APRIL-GAN's prompts name the product


def files(out, size):
    p = lambda s: os.path.join(out, size + s)  # noqa: E731
    return {"archive": p("_methods_clip.pt"), "config": p("_methods_clip.json"), "april_gan": p("_april_gan.pth"),
            "anomaly_clip": p("_anomaly_clip.pth")}


def dpam_layer_for(layers):
    return layers + 1 - int(np.floor(5 * layers / 24 + 0.5))  # 20 for 24 blocks (the official value)


def import_april(ref):
    import make_golden_april_gan as ga
    oc_model, oc_tok, ag_model, ag_prompt, _ = ga.import_official(ref)
    return ga, oc_model, oc_tok, ag_model, ag_prompt


def import_anomaly(ref, vocab):
    import make_golden_anomaly_clip as gc
    AnomalyCLIP, ml, pe = gc.import_official(ref, vocab)
    return gc, AnomalyCLIP, ml, pe


def make_files(args):
    """The backbone archive and both heads, unless already there (the archive is written last)."""
    cfg, size, feats_ag, _, depth = SIZES[args.size]
    f = files(args.weights_dir, args.size)
    if all(os.path.exists(p) for p in f.values()):
        return
    ga, oc_model, _, ag_model, _ = import_april(args.april_ref)
    torch.manual_seed(11)
    native = oc_model.CLIP(**json.loads(json.dumps(cfg)))  # open_clip at the native size: OpenAI's names
    state = OrderedDict((k, p.float() if k == "logit_scale" else p.half()) for k, p in native.state_dict().items())
    del native
    state["input_resolution"] = torch.tensor(cfg["vision_cfg"]["image_size"])
    state["context_length"] = torch.tensor(cfg["text_cfg"]["context_length"])
    state["vocab_size"] = torch.tensor(cfg["text_cfg"]["vocab_size"])
    v = cfg["vision_cfg"]
    torch.manual_seed(12)
    linear = ag_model.LinearLayer(v["width"], cfg["embed_dim"], len(feats_ag), "ViT-L-14-336")
    torch.save({"trainable_linearlayer": linear.state_dict()}, f["april_gan"])
    gc, AnomalyCLIP, _, pe = import_anomaly(args.anomaly_ref, args.vocab)
    gc.CFG, gc.DEPTH = cfg, depth
    model, design = gc.official_model(AnomalyCLIP, {k: t.float() for k, t in state.items()}, torch.float32)
    torch.manual_seed(13)
    learner = pe.AnomalyCLIP_PromptLearner(model, design)
    torch.save({"prompt_learner": learner.state_dict()}, f["anomaly_clip"])
    del model, learner
    with open(f["config"], "w") as fh:
        json.dump(cfg, fh, indent=4)
    tmp = f["archive"] + ".tmp"
    torch.jit.script(ga.make_container(state).eval()).save(tmp)
    os.replace(tmp, f["archive"])


def archive_state(path):
    sd = torch.jit.load(path, map_location="cpu").state_dict()
    return {k: t.float() for k, t in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}


def april_gan(args):
    """(per-image function, load seconds) of APRIL-GAN's test.py at the size."""
    cfg, size, feats, _, _ = SIZES[args.size]
    f = files(args.weights_dir, args.size)
    t0 = time.perf_counter()
    ga, oc_model, oc_tok, ag_model, ag_prompt = import_april(args.april_ref)
    c = json.loads(json.dumps(cfg))
    c["vision_cfg"]["image_size"] = size  # open_clip's create_model at img_size != native
    model = oc_model.CLIP(**c)
    sd = archive_state(f["archive"])
    oc_model.resize_pos_embed(sd, model)
    model.load_state_dict(sd, strict=True)
    del sd
    model.eval()
    v = cfg["vision_cfg"]
    linear = ag_model.LinearLayer(v["width"], cfg["embed_dim"], len(feats), "ViT-L-14-336")
    linear.load_state_dict(torch.load(f["april_gan"])["trainable_linearlayer"])
    linear.eval()
    with torch.no_grad():
        prompts = ag_prompt.encode_text_with_prompt_ensemble(model, [CLASS_NAME], oc_tok.tokenize, "cpu")
    load_s = time.perf_counter() - t0

    def one(image):
        with torch.no_grad():
            pooled, tokens = ga.vision_forward(model.visual, image, feats)
            image_features = pooled / pooled.norm(dim=-1, keepdim=True)
            text = torch.stack([prompts[CLASS_NAME]], dim=0)
            score = (100.0 * image_features @ text[0]).softmax(dim=-1)[0][1].cpu().item()
            tokens = linear(tokens)
            maps = []
            for layer in range(len(tokens)):
                tokens[layer] /= tokens[layer].norm(dim=-1, keepdim=True)
                m = 100.0 * tokens[layer] @ text
                b, n, _ = m.shape
                h = int(np.sqrt(n))
                m = F.interpolate(m.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
                maps.append(torch.softmax(m, dim=1)[:, 1, :, :].cpu().numpy())
            return np.sum(maps, axis=0), score

    return one, load_s, None


def anomaly_clip(args):
    """(per-image function, load seconds, gaussian) of AnomalyCLIP's test.py at the size."""
    cfg, size, _, feats, depth = SIZES[args.size]
    f = files(args.weights_dir, args.size)
    dpam = dpam_layer_for(cfg["vision_cfg"]["layers"])
    t0 = time.perf_counter()
    gc, AnomalyCLIP, ml, pe = import_anomaly(args.anomaly_ref, args.vocab)
    gc.CFG, gc.DEPTH = cfg, depth
    model, design = gc.official_model(AnomalyCLIP, archive_state(f["archive"]), torch.float32)
    learner = pe.AnomalyCLIP_PromptLearner(model, design)
    learner.load_state_dict(torch.load(f["anomaly_clip"])["prompt_learner"])
    learner.eval()
    model.visual.DAPM_replace(DPAM_layer=dpam)
    with torch.no_grad():  # test.py: once, before the loop
        prompts, tokenized, compound = learner(cls_id=None)
        text = model.encode_text_learn(prompts, tokenized, compound).float()
        text = torch.stack(torch.chunk(text, dim=0, chunks=2), dim=1)
        text = text / text.norm(dim=-1, keepdim=True)
    load_s = time.perf_counter() - t0

    def one(image):
        with torch.no_grad():
            image_features, patch_features = model.encode_image(image, feats, DPAM_layer=dpam)
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            probs = ((image_features @ text.permute(0, 2, 1)) / 0.07).softmax(-1)[:, 0, 1]
            maps = []
            for p in patch_features:
                p = p / p.norm(dim=-1, keepdim=True)
                sim, _ = ml.compute_similarity(p, text[0])
                sm = ml.get_similarity_map(sim[:, 1:, :], size)
                maps.append((sm[..., 1] + 1 - sm[..., 0]) / 2.0)
            return torch.stack(maps).sum(dim=0), probs.cpu()

    def gaussian(amap):
        from scipy.ndimage import gaussian_filter
        return torch.stack([torch.from_numpy(gaussian_filter(i, sigma=4)) for i in amap.detach().cpu()], dim=0)

    return one, load_s, gaussian


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", choices=["april_gan", "anomaly_clip"])
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--april-ref", default="/tmp/april", help="checkout of ByChelsea/VAND-APRIL-GAN")
    ap.add_argument("--anomaly-ref", default="/tmp/anomalyclip_ref", help="checkout of zqhang/AnomalyCLIP")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "assets", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--weights-dir", default="/tmp/vcp_methods_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--json", default="")
    ap.add_argument("--make-only", action="store_true", help="only make the weight files")
    args = ap.parse_args()
    if not os.path.exists(args.vocab):
        args.vocab = "/work/shared/assets/bpe_simple_vocab_16e6.txt.gz"
    torch.set_num_threads(args.threads)
    os.makedirs(args.weights_dir, exist_ok=True)
    make_files(args)
    if args.make_only:
        return
    if not args.method:
        ap.error("--method is needed unless --make-only")
    one, load_s, gaussian = (april_gan if args.method == "april_gan" else anomaly_clip)(args)
    _, size, _, _, _ = SIZES[args.size]
    n = max(2, args.images)
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))

    def timed(k):
        t0 = time.perf_counter()
        for i in range(k):
            one(images[i:i + 1])
        return time.perf_counter() - t0

    amap, _ = one(images[:1])  # warm-up
    t1, tn = timed(1), timed(n)
    res = {"method": args.method, "size": args.size, "image_size": size, "threads": args.threads, "images": n,
           "batch": 1, "t1": t1, "tN": tn, "seconds_per_image": (tn - t1) / (n - 1), "load_seconds": load_s,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
           "blas_kernels": blas_kernels(), "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", ""),
           "torch": torch.__version__}
    if gaussian is not None:
        t0 = time.perf_counter()
        for _ in range(n):
            gaussian(amap)
        res["gaussian_seconds_per_image"] = (time.perf_counter() - t0) / n
    print(f"official {args.method} {args.size}: {res['seconds_per_image']:.3f} s/img (S={size}, {args.threads} threads, "
          f"load {load_s:.1f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
