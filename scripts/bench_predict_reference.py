#!/usr/bin/python3
"""Times the reference VCP-CLIP inference pipeline (test.py: encode_image, Pre-VCP, per-image
encode_text loop, Post-VCP + linear maps per layer, bilinear upsample, softmax, mean over layers)
and writes the weights it used, so that bench/bench_predict times the C++ port on the same ones.

  /usr/bin/python3 scripts/bench_predict_reference.py --out /tmp/vcp_bench [--threads 2] [--images 8]
  build/bench_predict --dir /tmp/vcp_bench --threads 2 --images 8

Configs: "tiny" (the golden fixture's backbone, S = 64) and "mid" (ViT-B-16-sized vision tower at
width 384 / 6 layers, text 256 / 4 layers, S = 224). Writes <out>/<name>_clip.pt (OpenAI form),
<name>_clip.json, <name>.pth (reference layout) and reference_times.json.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden_vcp as g  # noqa: E402

CONFIGS = {
    "tiny": (dict(g.CFG), 64, [2, 3, 4]),
    "mid": ({"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 6, "width": 384, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}},
            224, [2, 4, 5, 6]),
}


def build(mc, pre, post, cfg, size, feats, out, name):
    g.CFG = cfg
    gen = torch.Generator().manual_seed(1)
    archive = os.path.join(out, name + "_clip.pt")
    torch.jit.script(g.make_container(g.random_openai_state(mc, gen)).eval()).save(archive)
    with open(os.path.join(out, name + "_clip.json"), "w") as f:
        json.dump(cfg, f)
    d = cfg["text_cfg"]["layers"] - 1
    model, _, _ = mc.Load_CLIP(size, archive, device="cpu", deep_prompt_len=1, total_d_layer_len=d)
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    lin = g.LinearLayer(v["width"], cfg["embed_dim"], len(feats))
    lan = pre.Context_Prompting(cfg, cla_len=2)
    zero = post.Zero_Parameter(dim_v=v["width"], dim_t=t["width"], dim_out=v["width"])
    save = {"trainable_linearlayer": lin.state_dict(), "New_Lan_Embed": lan.state_dict(), "Zero_try": zero.state_dict()}
    save.update({n: p for n, p in model.named_parameters() if "prompt" in n})
    torch.save(save, os.path.join(out, name + ".pth"))
    for m in (model, lin, lan, zero):
        m.eval()
    return model, lin, lan, zero


def run(mc, pe, model, lin, lan, zero, images, feats, size):
    ens = pe.Prompt_Ensemble(2, mc.tokenize)
    with torch.no_grad():
        gl, tokens = g.vision_forward(model.visual, images, feats)
        cls = lan.before_extract_feat(tokens, gl.clone(), use_global=True)
        text = ens.forward_ensemble(model, cls, "cpu").permute(0, 2, 1)
        raws, posts = [], []
        for layer in range(len(tokens)):
            dense = tokens[layer][:, 1:, :]
            dense = dense / dense.norm(dim=-1, keepdim=True)
            _, ft = zero(text.permute(0, 2, 1), dense)
            lg = zero.prompt_temp_l1.exp() * dense @ ft.permute(0, 2, 1)
            b, l, _ = lg.shape
            h = int(np.sqrt(l))
            up = F.interpolate(lg.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
            posts.append(torch.softmax(up, dim=1)[:, 1].numpy())
            x = lin.fc[layer](tokens[layer][:, 1:, :])
            x = x / x.norm(dim=-1, keepdim=True)
            lg = lan.prompt_temp.exp() * x @ text
            up = F.interpolate(lg.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
            raws.append(torch.softmax(up, dim=1)[:, 1].numpy())
    return np.mean(raws, 0), np.mean(posts, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default="/work/shared/assets/bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--out", default="/tmp/vcp_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    mc, pre, post, pe = g.import_reference(args.ref, args.vocab)
    orig = mc.CLIP
    results = {}
    for name, (cfg, size, feats) in CONFIGS.items():
        heads = cfg["text_cfg"]["heads"]
        mc.CLIP = lambda *a, _h=heads: orig(*(list(a[:8]) + [_h] + list(a[9:])))
        model, lin, lan, zero = build(mc, pre, post, cfg, size, feats, args.out, name)
        images = torch.randn(args.images, 3, size, size, generator=torch.Generator().manual_seed(0))
        run(mc, pe, model, lin, lan, zero, images[:1], feats, size)  # warm-up
        t0 = time.perf_counter()
        for s in range(0, args.images, args.batch):
            run(mc, pe, model, lin, lan, zero, images[s:s + args.batch], feats, size)
        dt = time.perf_counter() - t0
        results[name] = {"images_per_s": args.images / dt, "image_size": size, "features_list": feats,
                         "threads": args.threads, "batch": args.batch}
        print(f"reference {name}: {args.images / dt:.2f} img/s (S={size}, {args.threads} threads, batch {args.batch})")
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open(os.path.join(args.out, "reference_times.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
