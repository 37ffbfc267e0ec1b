#!/usr/bin/python3
"""Golden fixture of the few-shot map (docs/design.md §13; tests/model/test_few_shot_parity.cpp).

A Python restatement of APRIL-GAN's few-shot branch (ByChelsea/VAND-APRIL-GAN, test.py and
few_shot.py) on the tiny VCP fixture of scripts/golden/make_golden_vcp.py (tests/fixtures/vcp/):
  memory of layer l   = raw block outputs (class token dropped) of the reference images, stacked
  per test patch      = min over the memory of (1 - cosine similarity)   (scikit-learn's
                        cosine_similarity: rows divided by their L2 norms)
  per layer map       = G x G → bilinear upsampling to S x S, align_corners=True
  few-shot map D      = sum over the layers
The vision tower is restated here from docs/design.md §2 (OpenAI names, exact GELU, position
embedding resized bicubically with antialias, ln_pre, pre-LN blocks); the script first checks its
global feature against the fixture's global.npy so that the restatement is the fixture's model.

References: images 0 and 1 of the fixture; test images: all three. Two layer sets: the fixture's
features_list [2, 3, 4] and [1, 4].

Run with Debian's python3 (torch, numpy):  /usr/bin/python3 scripts/golden/make_golden_few_shot.py
Outputs (tests/fixtures/vcp/): few_shot.json, few_shot_map_<layers>.npy [3, S, S],
few_shot_memory_<layers>_l<l>.npy [2·G², W] (L2-normalised rows).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures", "vcp")
LAYER_SETS = [[2, 3, 4], [1, 4]]
REFERENCES = [0, 1]


def state_dict():
    model = torch.jit.load(os.path.join(FIX, "tiny_vcp_clip.pt"), map_location="cpu")
    return {k: v.float() for k, v in model.state_dict().items()}


def vision_blocks(sd, cfg, images):
    """Block outputs [B, 1+G², W] of every vision block, and the global feature."""
    v = cfg["vision_cfg"]
    p, w = v["patch_size"], v["width"]
    heads = w // 64
    b, s = images.shape[0], images.shape[2]
    g, g0 = s // p, v["image_size"] // p
    x = F.conv2d(images, sd["visual.conv1.weight"], stride=p).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].view(1, 1, w).expand(b, 1, w)
    x = torch.cat([cls, x], 1)
    pos = sd["visual.positional_embedding"]
    grid = pos[1:].reshape(g0, g0, w).permute(2, 0, 1).unsqueeze(0)
    grid = F.interpolate(grid, size=(g, g), mode="bicubic", align_corners=False, antialias=True)
    pos = torch.cat([pos[:1], grid[0].permute(1, 2, 0).reshape(g * g, w)], 0)
    x = x + pos
    x = F.layer_norm(x, (w,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], 1e-5)
    outs = []
    for i in range(v["layers"]):
        pre = "visual.transformer.resblocks.%d." % i
        h = F.layer_norm(x, (w,), sd[pre + "ln_1.weight"], sd[pre + "ln_1.bias"], 1e-5)
        qkv = h @ sd[pre + "attn.in_proj_weight"].t() + sd[pre + "attn.in_proj_bias"]
        q, k, val = qkv.split(w, -1)
        d = w // heads

        def split(t):
            return t.view(b, -1, heads, d).transpose(1, 2)

        att = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (d ** 0.5), -1) @ split(val)
        att = att.transpose(1, 2).reshape(b, -1, w)
        x = x + att @ sd[pre + "attn.out_proj.weight"].t() + sd[pre + "attn.out_proj.bias"]
        h = F.layer_norm(x, (w,), sd[pre + "ln_2.weight"], sd[pre + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ sd[pre + "mlp.c_fc.weight"].t() + sd[pre + "mlp.c_fc.bias"])
        x = x + h @ sd[pre + "mlp.c_proj.weight"].t() + sd[pre + "mlp.c_proj.bias"]
        outs.append(x)
    glob = F.layer_norm(x[:, 0], (w,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], 1e-5)
    return outs, glob @ sd["visual.proj"]


def cosine_similarity(a, b):
    """scikit-learn's pairwise.cosine_similarity in float64: rows divided by their norms."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def main():
    golden = json.load(open(os.path.join(FIX, "golden.json")))
    cfg = json.load(open(os.path.join(FIX, golden["config"])))
    sd = state_dict()
    images = torch.from_numpy(np.load(os.path.join(FIX, "images.npy")))
    s = images.shape[2]
    with torch.no_grad():
        outs, glob = vision_blocks(sd, cfg, images)
    want = np.load(os.path.join(FIX, "global.npy"))
    err = np.abs(glob.numpy() - want).max()
    assert err < 1e-4, "the restated vision tower does not reproduce global.npy (max error %g)" % err
    manifest = {"references": REFERENCES, "images": golden["images"], "image_size": s, "sets": []}
    for layers in LAYER_SETS:
        tag = "_".join(str(l) for l in layers)
        maps = []
        entry = {"layers": layers, "map": "few_shot_map_%s.npy" % tag, "memory": {}}
        for l in layers:
            tokens = outs[l - 1][:, 1:, :].double().numpy()  # [B, G², W]
            memory = np.concatenate([tokens[r] for r in REFERENCES], 0)
            name = "few_shot_memory_%s_l%d.npy" % (tag, l)
            np.save(os.path.join(FIX, name),
                    (memory / np.linalg.norm(memory, axis=1, keepdims=True)).astype(np.float32))
            entry["memory"][str(l)] = name
            per_image = []
            for t in tokens:
                cos = cosine_similarity(memory, t)  # [M, G²], as APRIL-GAN's call
                g = int(np.sqrt(cos.shape[1]))
                m = np.min(1 - cos, 0).reshape(1, 1, g, g)
                up = F.interpolate(torch.tensor(m), size=s, mode="bilinear", align_corners=True)
                per_image.append(up[0, 0].numpy())
            maps.append(np.stack(per_image))
        np.save(os.path.join(FIX, entry["map"]), np.sum(maps, axis=0).astype(np.float32))
        manifest["sets"].append(entry)
    with open(os.path.join(FIX, "few_shot.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("global feature check: max error %.3g; wrote %d layer sets to %s" % (err, len(LAYER_SETS), FIX))


if __name__ == "__main__":
    main()
