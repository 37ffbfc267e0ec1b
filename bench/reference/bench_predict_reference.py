#!/usr/bin/python3
"""Times the reference VCP-CLIP inference pipeline (test.py: encode_image, Pre-VCP, per-image
encode_text loop, Post-VCP + linear maps per layer, bilinear upsample, softmax, mean over layers)
on random weights saved the way OpenAI ships CLIP (TorchScript archive, fp16), and leaves those
weights (and a reference-layout checkpoint) for `vcpclip bench` to time the C++ port on.

  /usr/bin/python3 bench/reference/bench_predict_reference.py --config ViT-B-16 --weights-dir runs/bench/weights \
      --threads 2 --images 9 --batch 8 --json /tmp/ref_vitb.json [--make-only]

Configs: "tiny" (the golden fixture's backbone, S = 64), "mid" (ViT-B-16-sized vision tower at
width 384 / 6 layers, text 256 / 4 layers, S = 224), and the real sizes "ViT-B-16" (S = 224) and
"ViT-L-14-336" (S = 518, the paper's setting), full widths and depths. Files (made once, reused):
<weights-dir>/<name>_clip.pt (OpenAI form), <name>_clip.json, <name>.pth (reference layout).
Timing: one warm-up image, then t(1) and t(N) (images in batches of --batch); the per-image time
is (t(N) - t(1)) / (N - 1). The JSON also has the load time (torch.jit.load + .float(), as the
reference's Load_CLIP), this process's peak RSS and the BLAS kernels it ran on.

On a GPU (scripts/gpu/device_check.sh): --device cuda runs the pipeline there (synchronised timing, peak
CUDA memory in the JSON); --autocast wraps it in torch.cuda.amp.autocast() as the reference's test.py
does, and then also records the largest |map difference| against its own fp32 run of the same images;
--fp32-json PATH (with --autocast) times fp32 too in the same process, after one model load.
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "golden"))
import make_golden_vcp as g  # noqa: E402


def stub_torchvision():
    """The reference imports torchvision.transforms for its image preprocessing only, which this
    timing does not use (inputs are tensors); without torchvision installed, a stub stands in.
    Likewise pkg_resources (its tokenizer only reads packaging.version from it), which setuptools
    no longer ships in recent releases: a stub that hands out the packaging package."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import types
        import packaging.version
        pr = types.ModuleType("pkg_resources")
        pr.packaging = packaging
        sys.modules["pkg_resources"] = pr
    try:
        import torchvision.transforms  # noqa: F401
    except ImportError:
        import types
        tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        ops, misc = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.misc")
        for name in ("Compose", "Resize", "CenterCrop", "ToTensor", "Normalize", "RandomResizedCrop"):
            setattr(tr, name, lambda *a, **k: None)
        tr.InterpolationMode = types.SimpleNamespace(BICUBIC="bicubic")
        misc.FrozenBatchNorm2d = torch.nn.BatchNorm2d  # only named in an isinstance check
        tv.__path__, ops.__path__ = [], []
        tv.transforms, tv.ops, ops.misc = tr, ops, misc
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tr, "torchvision.ops": ops,
                            "torchvision.ops.misc": misc})

TEXT_L = {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12}
CONFIGS = {
    "tiny": (dict(g.CFG), 64, [2, 3, 4]),
    "mid": ({"embed_dim": 256, "vision_cfg": {"image_size": 224, "layers": 6, "width": 384, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4}},
            224, [2, 4, 5, 6]),
    "ViT-B-16": ({"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
                 224, [3, 6, 9, 12]),
    "ViT-L-14-336": ({"embed_dim": 768,
                      "vision_cfg": {"image_size": 336, "layers": 24, "width": 1024, "patch_size": 14},
                      "text_cfg": TEXT_L}, 518, [6, 12, 18, 24]),
}


def paths(out, name):
    return (os.path.join(out, name + "_clip.pt"), os.path.join(out, name + "_clip.json"),
            os.path.join(out, name + ".pth"))


def make_files(mc, pre, post, name, out):
    """Random OpenAI-format archive + model JSON + reference checkpoint, unless already there."""
    cfg, size, feats = CONFIGS[name]
    archive, cfg_json, ckpt = paths(out, name)
    if all(os.path.exists(p) for p in (archive, cfg_json, ckpt)):
        return
    g.CFG = cfg
    gen = torch.Generator().manual_seed(1)
    state = g.random_openai_state(mc, gen)
    tmp = archive + ".tmp"
    torch.jit.script(g.make_container(state).eval()).save(tmp)
    del state
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    torch.manual_seed(2)
    lin = g.LinearLayer(v["width"], cfg["embed_dim"], len(feats))
    lan = pre.Context_Prompting(cfg, cla_len=2)
    zero = post.Zero_Parameter(dim_v=v["width"], dim_t=t["width"], dim_out=v["width"])
    save = {"trainable_linearlayer": lin.state_dict(), "New_Lan_Embed": lan.state_dict(), "Zero_try": zero.state_dict()}
    # The prompt parameters of the reference CLIP (its named_parameters with "prompt" in the name).
    d = t["layers"] - 1
    heads = t["heads"]
    clip = mc.CLIP(cfg["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"], t["context_length"],
                   t["vocab_size"], t["width"], heads, t["layers"], 1, d)
    save.update({n: p for n, p in clip.named_parameters() if "prompt" in n})
    del clip
    torch.save(save, ckpt)
    with open(cfg_json, "w") as f:
        json.dump(cfg, f)
    os.replace(tmp, archive)


def load(mc, pre, post, name, out, device="cpu"):
    cfg, size, feats = CONFIGS[name]
    archive, _, ckpt = paths(out, name)
    d = cfg["text_cfg"]["layers"] - 1
    t0 = time.perf_counter()
    model, _, _ = mc.Load_CLIP(size, archive, device=device, deep_prompt_len=1, total_d_layer_len=d)
    load_s = time.perf_counter() - t0
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    lin = g.LinearLayer(v["width"], cfg["embed_dim"], len(feats))
    lan = pre.Context_Prompting(cfg, cla_len=2)
    zero = post.Zero_Parameter(dim_v=v["width"], dim_t=t["width"], dim_out=v["width"])
    sd = torch.load(ckpt, weights_only=False)  # nn.Parameter values (torch >= 2.6 defaults to weights_only)
    lin.load_state_dict(sd["trainable_linearlayer"])
    lan.load_state_dict(sd["New_Lan_Embed"])
    zero.load_state_dict(sd["Zero_try"])
    model.load_state_dict({k: v for k, v in sd.items() if "prompt" in k}, strict=False)
    for m in (model, lin, lan, zero):
        m.to(device).eval()
    return (model, lin, lan, zero), load_s


def run(mc, pe, mods, images, feats, size, autocast=False):
    model, lin, lan, zero = mods
    ens = pe.Prompt_Ensemble(2, mc.tokenize)
    device = str(images.device)
    # torch.autocast("cuda") is what torch.cuda.amp.autocast() (the reference's spelling, deprecated) calls
    amp = torch.autocast("cuda") if autocast else contextlib.nullcontext()
    with torch.no_grad(), amp:
        gl, tokens = g.vision_forward(model.visual, images, feats)
        cls = lan.before_extract_feat(tokens, gl.clone(), use_global=True)
        text = ens.forward_ensemble(model, cls, device).permute(0, 2, 1)
        raws, posts = [], []
        for layer in range(len(tokens)):
            dense = tokens[layer][:, 1:, :]
            dense = dense / dense.norm(dim=-1, keepdim=True)
            _, ft = zero(text.permute(0, 2, 1), dense)
            lg = zero.prompt_temp_l1.exp() * dense @ ft.permute(0, 2, 1)
            b, l, _ = lg.shape
            h = int(np.sqrt(l))
            up = F.interpolate(lg.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
            posts.append(torch.softmax(up, dim=1)[:, 1].float().cpu().numpy())
            x = lin.fc[layer](tokens[layer][:, 1:, :])
            x = x / x.norm(dim=-1, keepdim=True)
            lg = lan.prompt_temp.exp() * x @ text
            up = F.interpolate(lg.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
            raws.append(torch.softmax(up, dim=1)[:, 1].float().cpu().numpy())
    return np.mean(raws, 0), np.mean(posts, 0)


def blas_kernels():
    """The kernel set of the OpenBLAS this process loaded (found in /proc/self/maps, asked through
    its openblas_get_corename), or a note saying it is not OpenBLAS."""
    import ctypes
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    for path in libs:
        try:
            fn = ctypes.CDLL(path).openblas_get_corename
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        return fn().decode()
    return "not OpenBLAS"


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(mc, pe, mods, images, feats, size, batch, autocast=False):
    sync(images.device)
    t0 = time.perf_counter()
    for s in range(0, images.shape[0], batch):
        run(mc, pe, mods, images[s:s + batch], feats, size, autocast)
    sync(images.device)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default="/work/shared/assets/bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--config", default="tiny", choices=sorted(CONFIGS))
    ap.add_argument("--weights-dir", default="/tmp/vcp_bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", default="")
    ap.add_argument("--make-only", action="store_true", help="only make the weight files")
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--autocast", action="store_true", help="torch.cuda.amp.autocast(), as the reference's test.py")
    ap.add_argument("--fp32-json", default="", help="with --autocast: also time fp32 in this process (same model load) "
                    "and write its result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.weights_dir, exist_ok=True)
    stub_torchvision()
    mc, pre, post, pe = g.import_reference(args.ref, args.vocab)
    name = args.config
    cfg, size, feats = CONFIGS[name]
    orig = mc.CLIP
    heads = cfg["text_cfg"]["heads"]  # the reference derives heads as width // 64; tiny widths need the config's
    mc.CLIP = lambda *a, _h=heads: orig(*(list(a[:8]) + [_h] + list(a[9:])))
    make_files(mc, pre, post, name, args.weights_dir)
    if args.make_only:
        return
    mods, load_s = load(mc, pre, post, name, args.weights_dir, args.device)
    n = max(2, args.images)
    images = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)).to(args.device)

    def measure(autocast):
        run(mc, pe, mods, images[:1], feats, size, autocast)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t1 = timed(mc, pe, mods, images[:1], feats, size, args.batch, autocast)
        tn = timed(mc, pe, mods, images, feats, size, args.batch, autocast)
        r = {"config": name, "image_size": size, "features_list": feats, "threads": args.threads, "batch": args.batch,
             "images": n, "t1": t1, "tN": tn, "seconds_per_image": (tn - t1) / (n - 1), "load_seconds": load_s,
             "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
             "blas_kernels": blas_kernels(), "openblas_coretype_env": os.environ.get("OPENBLAS_CORETYPE", ""),
             "device": args.device, "autocast": autocast, "torch": torch.__version__}
        if args.device.startswith("cuda"):
            r["cuda_peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
            r["images_per_second"] = 1.0 / r["seconds_per_image"]
        return r

    res = measure(args.autocast)
    if args.autocast:  # the reference's own GPU numerics: autocast against fp32, same images
        k = min(n, args.batch)
        a = run(mc, pe, mods, images[:k], feats, size, True)
        b = run(mc, pe, mods, images[:k], feats, size, False)
        res["max_map_diff_autocast_vs_fp32"] = {"raw": float(np.abs(a[0] - b[0]).max()),
                                                "post": float(np.abs(a[1] - b[1]).max())}
    def report(r, path):  # printed and written at once (a later step may be cut off by a time-box)
        print(f"reference {name}: {r['seconds_per_image']:.3f} s/img (S={size}, {args.device}"
              f"{' autocast' if r['autocast'] else ''}, {args.threads} threads, batch {args.batch}, load {load_s:.1f} s)"
              + (f", {r['images_per_second']:.2f} images/s, peak allocated {r['cuda_peak_allocated_gib']:.2f} GiB"
                 if "images_per_second" in r else ""), flush=True)
        if path:
            with open(path, "w") as f:
                json.dump(r, f, indent=2)

    report(res, args.json)
    if args.autocast and args.fp32_json:
        report(measure(False), args.fp32_json)

if __name__ == "__main__":
    main()
