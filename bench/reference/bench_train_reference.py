#!/usr/bin/python3
"""Times one training step of the reference VCP-CLIP on a GPU (scripts/gpu/device_check.sh, issue 21
Part A), restated from its train.py: the vision tower under no_grad, Pre-VCP class tokens, the
prompt-ensemble text features, per feature layer the Post-VCP and the raw (linear) anomaly maps,
focal + dice loss on both branches summed over layers, backward, Adam (betas (0.5, 0.999), lr 4e-5 and
0.01 for the two temperatures). --autocast wraps the forward in torch.cuda.amp.autocast() as train.py
does (the losses outside it, no gradient scaler); without it the step is fp32.

  python3 bench/reference/bench_train_reference.py --ref REF --config ViT-L-14-336 --weights-dir W \
      --batch 32 --steps 3 [--autocast] --json out.json [--autocast-json out2.json]

--autocast-json PATH (without --autocast): after the fp32 steps, the same number of autocast steps in
this process (one model load; fresh optimizer, peak memory reset), written to PATH. --device cpu (no
autocast there) only checks the script on a machine without a GPU.

The weights are those of bench/reference/bench_predict_reference.py (random, OpenAI format; made there).
Random images and masks (10 % defect pixels). Reported: each step's seconds (the first includes the
cuBLAS/cuDNN set-up), the best, and torch.cuda.max_memory_allocated over the steps.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "golden"))
import bench_predict_reference as bp  # noqa: E402
import make_golden_vcp as g  # noqa: E402


def maps(mods, ens, images, feats, size, device):
    """Post-VCP and raw anomaly probabilities [B, 2, S, S] per feature layer."""
    model, lin, lan, zero = mods
    with torch.no_grad():
        gl, tokens = g.vision_forward(model.visual, images, feats)
    cls = lan.before_extract_feat(tokens, gl, use_global=True)
    text = ens.forward_ensemble(model, cls, device).permute(0, 2, 1)
    out_post, out_raw = [], []
    for layer in range(len(tokens)):
        dense = tokens[layer][:, 1:, :].clone()
        dense = dense / dense.norm(dim=-1, keepdim=True)
        _, ft = zero(text.permute(0, 2, 1), dense)
        out_post.append(probs(zero.prompt_temp_l1.exp() * dense @ ft.permute(0, 2, 1), size))
        x = lin.fc[layer](tokens[layer][:, 1:, :]).clone()
        x = x / x.norm(dim=-1, keepdim=True)
        out_raw.append(probs(lan.prompt_temp.exp() * x @ text, size))
    return out_post, out_raw


def probs(logits, size):
    b, n, _ = logits.shape
    h = int(np.sqrt(n))
    up = F.interpolate(logits.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
    return torch.softmax(up, dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default="/work/shared/assets/bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--config", default="ViT-L-14-336", choices=sorted(bp.CONFIGS))
    ap.add_argument("--weights-dir", default="/tmp/vcp_bench")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--autocast", action="store_true")
    ap.add_argument("--json", default="")
    ap.add_argument("--autocast-json", default="", help="also time autocast steps after the fp32 ones (one model load)")
    ap.add_argument("--device", default="cuda", help="cuda (cpu: a check of the script only)")
    args = ap.parse_args()
    device = args.device
    cuda = device.startswith("cuda")
    bp.stub_torchvision()
    mc, pre, post, pe = g.import_reference(args.ref, args.vocab)
    sys.path.insert(0, args.ref)
    from utils.loss import FocalLoss, BinaryDiceLoss  # noqa: E402

    name = args.config
    cfg, size, feats = bp.CONFIGS[name]
    orig = mc.CLIP
    heads = cfg["text_cfg"]["heads"]
    mc.CLIP = lambda *a, _h=heads: orig(*(list(a[:8]) + [_h] + list(a[9:])))
    bp.make_files(mc, pre, post, name, args.weights_dir)
    mods, _ = bp.load(mc, pre, post, name, args.weights_dir, device)
    model, lin, lan, zero = mods
    model.train()
    for m in (lin, lan, zero):
        m.train()
    prompts = [p for n, p in model.named_parameters() if "prompt" in n]
    for n, p in model.named_parameters():
        p.requires_grad = "prompt" in n
    main_group = [p for n, p in zero.named_parameters() if n != "prompt_temp_l1"] + list(lin.parameters()) + \
        [p for n, p in lan.named_parameters() if n != "prompt_temp"] + prompts
    temps = [zero.prompt_temp_l1, lan.prompt_temp]
    focal, dice = FocalLoss(), BinaryDiceLoss()
    ens = pe.Prompt_Ensemble(2, mc.tokenize)
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, size, size, generator=gen).to(device)
    gt = (torch.rand(args.batch, size, size, generator=gen) > 0.9).float().to(device)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def steps(autocast, path):
        opt = torch.optim.Adam([{"params": main_group, "lr": 4e-5}, {"params": temps, "lr": 0.01}], lr=4e-5,
                               betas=(0.5, 0.999))
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        times, losses = [], []
        for _ in range(args.steps):
            sync()
            t0 = time.perf_counter()
            if autocast:  # torch.autocast("cuda") is what train.py's torch.cuda.amp.autocast() calls
                with torch.autocast("cuda"):
                    m_post, m_raw = maps(mods, ens, images, feats, size, device)
            else:
                m_post, m_raw = maps(mods, ens, images, feats, size, device)
            loss = 0
            for m in m_post + m_raw:
                loss = loss + focal(m, gt) + dice(m[:, 1, :, :], gt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.item()))
            del m_post, m_raw, loss
            if cuda:
                torch.cuda.empty_cache()  # as train.py, every step
            sync()
            times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        res = {"config": name, "image_size": size, "batch": args.batch, "autocast": autocast, "step_seconds": times,
               "best_step_seconds": min(times[1:] or times), "losses": losses, "cuda_peak_allocated_gib": peak,
               "torch": torch.__version__, "device": device}
        print(f"reference train step {name} @ {size}, batch {args.batch}, {'autocast' if autocast else 'fp32'}: "
              f"best {res['best_step_seconds']:.3f} s ({args.batch / res['best_step_seconds']:.1f} img/s), "
              f"peak allocated {peak:.2f} GiB, steps {[round(t, 3) for t in times]}", flush=True)
        if path:
            with open(path, "w") as f:
                json.dump(res, f, indent=2)
        del opt

    steps(args.autocast, args.json)
    if args.autocast_json and not args.autocast:
        steps(True, args.autocast_json)

if __name__ == "__main__":
    main()
