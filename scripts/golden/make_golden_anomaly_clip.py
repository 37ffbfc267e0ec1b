#!/usr/bin/python3
"""Golden fixtures for AnomalyCLIP (tests/model/test_anomaly_clip_parity.cpp and the training-step
test): a Python restatement of the official computation (zqhang/AnomalyCLIP, MIT:
AnomalyCLIP_lib/AnomalyCLIP.py, prompt_ensemble.py, train.py, test.py), run on a tiny random tower,
and checked against the official code itself when a checkout is given.

The restatement (functions vision_dpam, encode_text, anomaly_maps, image_scores, step_loss below):
  * vision: OpenAI ViT, QuickGELU blocks; positional embedding resized BILINEARLY (align_corners
    False, no antialias) when S differs from the native size. DPAM: with DPAM_layer = D, the last
    D - 1 blocks are dual-path; the surgery stream starts as the output of block L - D + 1 and at
    each DPAM block adds out_proj(v-v attention) computed on ln_1 of the ORIGINAL stream (q = k = v,
    same heads and 1/sqrt(head_dim) scale); it has no FFN. The original stream runs the plain
    block. Feature layers at or after the first DPAM block take the surgery stream, earlier ones
    the original stream. Patch tokens = ln_post(tokens) @ proj; image embedding = the original
    stream's class token @ proj WITHOUT ln_post.
  * DPAM_layer for a tower of L blocks: L + 1 - round(5L/24) (20 for 24 blocks, the official value;
    4 for the 4-block tower here: blocks 2..4 dual-path).
  * text: object-agnostic prompts "X x12 object." / "X x12 damaged object." whose token rows 1..12
    are the learned ctx_pos / ctx_neg; prefix/suffix rows come from the checkpoint's buffers. Before
    text block i (i = 1 .. depth-1, 0-based) rows 1..t_n_ctx are replaced by
    compound_prompts_text[i-1] rounded through fp16 (.half(), as the official forward does, so its
    gradient is rounded to fp16 too). EOT row (argmax of the token ids) -> ln_final -> text_projection,
    stacked as [1, 2, E] (normal, abnormal), L2-normalised.
  * maps: per feature layer, softmax(cos / 0.07) over {normal, abnormal} at patch resolution,
    class token dropped, bilinear upsampling (align_corners False) to S, then
    (p_abnormal + 1 - p_normal) / 2; summed over the layers; per image scipy gaussian_filter
    (sigma 4, float32, mode reflect, truncate 4).
  * image score: softmax(normalised image embedding . text / 0.07), abnormal column.
  * loss: CE(image logits / 0.07, label) + lambda * sum over layers [focal(probs, gt) +
    dice(p_abnormal, gt) + dice(p_normal, 1 - gt)]; lambda = 4 (train.py today; 1 before April 2025).
  * one Adam step (lr 1e-3, betas (0.5, 0.999)) over the prompt learner's parameters:
    compound_prompt_projections get no gradient (they are never used) and do not move.

Run with Debian's python3 (torch 1.13, scipy, numpy, PIL):
  git -C <mirror of zqhang/AnomalyCLIP> archive HEAD AnomalyCLIP_lib prompt_ensemble.py | tar -x -C /tmp/anomalyclip_ref
  /usr/bin/python3 scripts/golden/make_golden_anomaly_clip.py [--ref /tmp/anomalyclip_ref]
The official code is imported at generation time only (its prompt learner makes the checkpoint in
the official layout, its tokenizer tokenizes the prompts, its model is the cross-check); nothing of
it is written to the fixtures. Stubs stand in for modules it imports but this does not use
(torchvision, thop, tqdm, ftfy) and `regex` is mapped onto `re` (ASCII prompts only).

Outputs (tests/fixtures/anomaly_clip/); the input images are tests/fixtures/vcp/images.npy:
  tiny_anomaly_clip.pt / .json   backbone archive (OpenAI form, fp16) and its model config
  tiny_anomaly_clip.pth          {'prompt_learner': state_dict} as the official train.py saves it
  after_step.pth                 the same after one training step
  golden.json                    settings, cross-check diffs, {name: {file, shape, dtype}}
  *.npy                          float32 / float64 / int64 arrays
"""
import argparse
import importlib.util
import json
import os
import re
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")

CFG = {
    "embed_dim": 16,
    # width 128: two vision heads (heads = width / 64), so the v-v attention's head split is exercised
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 128, "patch_size": 8},
    # the full vocabulary (the prompts use real token ids); a tiny text width keeps the file small
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 4},
}
IMAGE_SIZE = 64          # S: grid 8, the native grid 4 is interpolated
N_CTX, T_N_CTX = 12, 4   # official defaults
DEPTH = 3                # learnabel_text_embedding_depth: compound prompts in text layers 1..2 (official: 9 of 12)
FEATURES = [4]           # the last block only, as the official train.sh / test.sh (--features_list 24)
FEATURES_MULTI = [1, 3, 4]  # a pre-DPAM layer and two DPAM layers: the sum over layers
SIGMA = 4.0
LAMBDA = 4.0
LR, BETAS = 1e-3, (0.5, 0.999)
LABELS = [0, 1, 1]
OFFICIAL = {}  # the official modules once imported (model_load as 'ml', the checkout as 'ref')


def dpam_layer_for(layers):
    """DPAM_layer for a tower of `layers` blocks (20 for 24): see the file comment."""
    return layers + 1 - int(np.floor(5 * layers / 24 + 0.5))


# ----------------------------------------------------------------------------------------------
# The restatement
def ln(x, state, name):
    return F.layer_norm(x, (x.shape[-1],), state[name + ".weight"], state[name + ".bias"], 1e-5)


def mlp(x, state, p):
    h = F.linear(x, state[p + "mlp.c_fc.weight"], state[p + "mlp.c_fc.bias"])
    h = h * torch.sigmoid(1.702 * h)  # QuickGELU: the official model classes use it in both towers
    return F.linear(h, state[p + "mlp.c_proj.weight"], state[p + "mlp.c_proj.bias"])


def qkv_heads(h, state, p, heads):
    """h [B, N, W] -> q, k, v [B, heads, N, hd] of the packed in-projection."""
    b, n, w = h.shape
    qkv = F.linear(h, state[p + "attn.in_proj_weight"], state[p + "attn.in_proj_bias"])
    qkv = qkv.reshape(b, n, 3, heads, w // heads).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def attend(q, k, v, state, p, mask=None):
    b, heads, n, hd = q.shape
    s = (q @ k.transpose(-2, -1)) * hd ** -0.5
    if mask is not None:
        s = s + mask
    o = (s.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, heads * hd)
    return F.linear(o, state[p + "attn.out_proj.weight"], state[p + "attn.out_proj.bias"])


def plain_block(x, state, p, heads, mask=None):
    q, k, v = qkv_heads(ln(x, state, p + "ln_1"), state, p, heads)
    x = x + attend(q, k, v, state, p, mask)
    return x + mlp(ln(x, state, p + "ln_2"), state, p)


def vision_dpam(state, images, features, dpam_layer):
    """(image embedding [B, E], patch tokens per feature layer [B, 1+G², E])."""
    v = CFG["vision_cfg"]
    w, patch, layers, heads = v["width"], v["patch_size"], v["layers"], v["width"] // 64
    x = F.conv2d(images, state["visual.conv1.weight"], stride=patch)
    b = x.shape[0]
    x = x.reshape(b, w, -1).permute(0, 2, 1)
    cls = state["visual.class_embedding"] + torch.zeros(b, 1, w, dtype=x.dtype)
    x = torch.cat([cls, x], dim=1)
    pos = state["visual.positional_embedding"]
    side, new_side = int(round((pos.shape[0] - 1) ** 0.5)), int(round((x.shape[1] - 1) ** 0.5))
    if side != new_side:
        grid = pos[1:].reshape(1, side, side, w).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, (new_side, new_side), mode="bilinear", align_corners=False)
        pos = torch.cat([pos[:1], grid.reshape(w, new_side * new_side).t()], 0)
    x = ln(x + pos, state, "visual.ln_pre")
    first_dpam = layers - (dpam_layer - 1) + 1  # 1-based
    ori, srg, tokens = x, None, []
    for i in range(1, layers + 1):
        p = f"visual.transformer.resblocks.{i - 1}."
        if i < first_dpam:
            ori = plain_block(ori, state, p, heads)
        else:
            if srg is None:
                srg = ori
            q, k, vv = qkv_heads(ln(ori, state, p + "ln_1"), state, p, heads)
            srg = srg + attend(vv, vv, vv, state, p)  # v-v attention, no FFN
            ori = ori + attend(q, k, vv, state, p)
            ori = ori + mlp(ln(ori, state, p + "ln_2"), state, p)
        if i in features:
            tokens.append(srg if srg is not None else ori)
    patches = [ln(t, state, "visual.ln_post") @ state["visual.proj"] for t in tokens]
    return ori[:, 0, :] @ state["visual.proj"], patches


def encode_text(state, pl, depth, t_n_ctx):
    """Text features [2, E] (normal, abnormal), L2-normalised, from prompt learner tensors `pl`."""
    t = CFG["text_cfg"]
    heads = t["heads"]
    d = pl["ctx_pos"].shape[-1]
    pos = torch.cat([pl["token_prefix_pos"], pl["ctx_pos"], pl["token_suffix_pos"]], dim=2).reshape(-1, 77, d)
    neg = torch.cat([pl["token_prefix_neg"], pl["ctx_neg"], pl["token_suffix_neg"]], dim=2).reshape(-1, 77, d)
    ids = torch.cat([pl["tokenized_prompts_pos"].reshape(-1, 77), pl["tokenized_prompts_neg"].reshape(-1, 77)])
    x = torch.cat([pos, neg]) + state["positional_embedding"]
    mask = torch.full((77, 77), float("-inf"), dtype=x.dtype).triu(1)
    compound = [pl[f"compound_prompts_text.{i}"] for i in range(depth - 1)]
    for i in range(t["layers"]):
        if 1 <= i <= len(compound):
            ctx = compound[i - 1].expand(x.shape[0], -1, -1).half().to(x.dtype)  # the official .half()
            x = torch.cat([x[:, :1], ctx, x[:, 1 + t_n_ctx:]], dim=1)
        x = plain_block(x, state, f"transformer.resblocks.{i}.", heads, mask)
    x = ln(x, state, "ln_final")
    feats = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ state["text_projection"]
    feats = torch.stack(torch.chunk(feats, 2, dim=0), dim=1)[0]  # [2, E]
    return feats / feats.norm(dim=-1, keepdim=True)


def layer_probs(patch, text, size):
    """softmax(cos/0.07) at patch resolution, class token dropped, bilinear to S: [B, 2, S, S]."""
    patch = patch / patch.norm(dim=-1, keepdim=True)
    sim = ((patch @ text.t()) / 0.07).softmax(-1)[:, 1:, :]
    b, n, _ = sim.shape
    side = int(round(n ** 0.5))
    sim = sim.reshape(b, side, side, 2).permute(0, 3, 1, 2)
    return F.interpolate(sim, (size, size), mode="bilinear", align_corners=False)


def anomaly_maps(patches, text, size):
    """Sum over layers of (p_abnormal + 1 - p_normal) / 2, [B, S, S]."""
    maps = [(p[:, 1] + 1 - p[:, 0]) / 2.0 for p in (layer_probs(t, text, size) for t in patches)]
    return torch.stack(maps).sum(dim=0)


def image_logits(image_embedding, text):
    img = image_embedding / image_embedding.norm(dim=-1, keepdim=True)
    return (img @ text.t()) / 0.07


def focal(probs, gt):
    """The official FocalLoss (gamma 2, alpha 1, smooth 1e-5) on probabilities [B, 2, S, S]."""
    c = probs.shape[1]
    p = probs.reshape(probs.shape[0], c, -1).permute(0, 2, 1).reshape(-1, c)
    idx = gt.reshape(-1, 1).long()
    onehot = torch.zeros(idx.shape[0], c, dtype=probs.dtype).scatter_(1, idx, 1)
    onehot = onehot.clamp(1e-5 / (c - 1), 1.0 - 1e-5)
    pt = (onehot * p).sum(1) + 1e-5
    return (-1 * torch.pow(1 - pt, 2) * pt.log()).mean()


def dice(p, g):
    n = g.shape[0]
    p, g = p.reshape(n, -1), g.reshape(n, -1)
    return 1 - ((2 * (p * g).sum(1) + 1) / (p.sum(1) + g.sum(1) + 1)).sum() / n


def step_loss(state, pl, images, masks, labels, features, dpam, lam):
    """(total, image CE, map sum before lambda) of train.py for one batch."""
    with torch.no_grad():
        emb, patches = vision_dpam(state, images, features, dpam)
    text = encode_text(state, pl, DEPTH, T_N_CTX)
    image_loss = F.cross_entropy(image_logits(emb, text), labels)
    gt = masks.clone()
    gt[gt > 0.5], gt[gt <= 0.5] = 1, 0
    maps = 0
    for t in patches:
        probs = layer_probs(t, text, IMAGE_SIZE)
        maps = maps + focal(probs, gt) + dice(probs[:, 1], gt) + dice(probs[:, 0], 1 - gt)
    return image_loss + lam * maps, image_loss, maps


# ----------------------------------------------------------------------------------------------
# Tiny tower, official code, fixtures
def perturb(p, gen, name):
    """Makes every tensor non-trivial (LayerNorm gains != 1, biases != 0)."""
    p = p.float().clone()
    last = name.split(".")[-1]
    if any(s in name for s in ("ln_", "ln_final")) and last == "weight":
        return 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
    if last == "bias":
        return 0.05 * torch.randn(p.shape, generator=gen)
    if p.dim() == 0:
        return p
    return p + 0.1 * (p.std() if p.numel() > 1 else 1.0) * torch.randn(p.shape, generator=gen)


def import_official(ref, vocab):
    """The official package with stubs for what it imports but this does not use."""
    for name in ("thop", "tqdm"):
        m = types.ModuleType(name)
        m.profile = m.tqdm = lambda *a, **k: None
        sys.modules[name] = m
    ftfy = types.ModuleType("ftfy")
    ftfy.fix_text = lambda s: s
    sys.modules["ftfy"] = ftfy
    rx = types.ModuleType("regex")  # the tokenizer's pattern on `re`: enough for ASCII prompts

    def compile_(pattern, flags=0):
        pattern = pattern.replace(r"[\p{L}]+", r"[^\W\d_]+").replace(r"[\p{N}]", r"\d")
        pattern = pattern.replace(r"[^\s\p{L}\p{N}]+", r"(?:[^\s\w]|_)+")
        return re.compile(pattern, flags)

    rx.compile, rx.IGNORECASE, rx.sub, rx.findall = compile_, re.IGNORECASE, re.sub, re.findall
    sys.modules["regex"] = rx
    sys.path.insert(0, os.path.join(ROOT, "bench", "reference"))
    from bench_predict_reference import stub_torchvision  # noqa: E402
    stub_torchvision()
    sys.path.insert(0, ref)
    import AnomalyCLIP_lib.simple_tokenizer as st  # noqa: E402
    st.SimpleTokenizer.__init__.__defaults__ = (vocab,)
    from AnomalyCLIP_lib.AnomalyCLIP import AnomalyCLIP  # noqa: E402
    import AnomalyCLIP_lib.model_load as ml  # noqa: E402
    spec = importlib.util.spec_from_file_location("official_prompt_ensemble", os.path.join(ref, "prompt_ensemble.py"))
    pe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pe)
    return AnomalyCLIP, ml, pe


def official_model(AnomalyCLIP, state, dtype):
    v, t = CFG["vision_cfg"], CFG["text_cfg"]
    design = {"Prompt_length": N_CTX, "learnabel_text_embedding_depth": DEPTH, "learnabel_text_embedding_length": T_N_CTX}
    model = AnomalyCLIP(CFG["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"],
                        t["context_length"], t["vocab_size"], t["width"], t["heads"], t["layers"], design_details=design)
    model.load_state_dict({k: x for k, x in state.items() if k not in ("input_resolution", "context_length",
                                                                        "vocab_size")})
    model.to(dtype).eval()
    return model, design


class Holder(torch.nn.Module):
    """A parameter container whose state_dict has exactly the given (dotted) names."""


def make_archive(state, path):
    root = Holder()
    for name, x in state.items():
        parts = name.split(".")
        mod = root
        for p in parts[:-1]:
            if not hasattr(mod, p):
                mod.add_module(p, Holder())
            mod = getattr(mod, p)
        if name in ("input_resolution", "context_length", "vocab_size"):
            mod.register_buffer(parts[-1], x)
        else:
            mod.register_parameter(parts[-1], torch.nn.Parameter(x, requires_grad=False))
    torch.jit.script(root.eval()).save(path)


def random_state(AnomalyCLIP, gen):
    torch.manual_seed(4321)
    v, t = CFG["vision_cfg"], CFG["text_cfg"]
    model = AnomalyCLIP(CFG["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"],
                        t["context_length"], t["vocab_size"], t["width"], t["heads"], t["layers"],
                        design_details={"Prompt_length": N_CTX, "learnabel_text_embedding_depth": DEPTH,
                                        "learnabel_text_embedding_length": T_N_CTX})
    state = {}
    for k, p in model.state_dict().items():
        state[k] = (p.float() if k == "logit_scale" else perturb(p, gen, k)).half()
    state["input_resolution"] = torch.tensor(v["image_size"])
    state["context_length"] = torch.tensor(t["context_length"])
    state["vocab_size"] = torch.tensor(t["vocab_size"])
    return state


def official_outputs(model, learner, images, features, dpam):
    """The official test.py computation (maps before the gaussian, scores, text features)."""
    prompts, tokenized, compound = learner(cls_id=None)
    text = model.encode_text_learn(prompts, tokenized, compound).float()
    text = torch.stack(torch.chunk(text, dim=0, chunks=2), dim=1)
    text = text / text.norm(dim=-1, keepdim=True)
    emb, patches = model.encode_image(images, features, DPAM_layer=dpam)
    emb = emb / emb.norm(dim=-1, keepdim=True)
    # test.py runs batch 1: [1, E] @ [1, E, 2] -> [1, 1, 2]; image by image here
    score = torch.cat([((e[None] @ text.permute(0, 2, 1)) / 0.07).softmax(-1)[:, 0, 1] for e in emb])
    maps = []
    for p in patches:
        p = p / p.norm(dim=-1, keepdim=True)
        sim, _ = OFFICIAL['ml'].compute_similarity(p, text[0])
        sm = OFFICIAL['ml'].get_similarity_map(sim[:, 1:, :], IMAGE_SIZE)
        maps.append((sm[..., 1] + 1 - sm[..., 0]) / 2.0)
    return text[0], torch.stack(maps).sum(dim=0), score, [p.clone() for p in patches]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/anomalyclip_ref")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "..", "shared", "assets", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "anomaly_clip"))
    args = ap.parse_args()
    if not os.path.exists(args.vocab):
        args.vocab = "/work/shared/assets/bpe_simple_vocab_16e6.txt.gz"
    os.makedirs(args.out, exist_ok=True)
    AnomalyCLIP, ml, pe = import_official(args.ref, args.vocab)
    OFFICIAL['ml'], OFFICIAL['ref'] = ml, args.ref
    gen = torch.Generator().manual_seed(28)
    dpam = dpam_layer_for(CFG["vision_cfg"]["layers"])

    # 1. Backbone archive (OpenAI form, fp16) and config.
    raw = random_state(AnomalyCLIP, gen)
    make_archive(raw, os.path.join(args.out, "tiny_anomaly_clip.pt"))
    with open(os.path.join(args.out, "tiny_anomaly_clip.json"), "w") as f:
        json.dump(CFG, f, indent=4)
    state = {k: x.float() for k, x in raw.items() if x.is_floating_point()}

    # 2. The official prompt learner (seeded), its parameters scaled up so that the two text rows
    #    differ enough for maps with contrast on a random tower; saved like train.py.
    model, design = official_model(AnomalyCLIP, raw, torch.float32)
    torch.manual_seed(7)
    learner = pe.AnomalyCLIP_PromptLearner(model, design)
    with torch.no_grad():
        learner.ctx_pos.mul_(40.0)
        learner.ctx_neg.mul_(40.0)
        for p in learner.compound_prompts_text:
            p.mul_(40.0)
    ckpt_path = os.path.join(args.out, "tiny_anomaly_clip.pth")
    torch.save({"prompt_learner": learner.state_dict()}, ckpt_path)
    pl = {k: x.clone() for k, x in torch.load(ckpt_path)["prompt_learner"].items()}

    images = torch.from_numpy(np.load(os.path.join(ROOT, "tests", "fixtures", "vcp", "images.npy")))
    manifest = {"config": "tiny_anomaly_clip.json", "weights": "tiny_anomaly_clip.pt",
                "checkpoint": "tiny_anomaly_clip.pth", "images": "../vcp/images.npy", "image_size": IMAGE_SIZE,
                "n_ctx": N_CTX, "t_n_ctx": T_N_CTX, "depth": DEPTH, "dpam_layer": dpam, "features_list": FEATURES,
                "features_multi": FEATURES_MULTI, "sigma": SIGMA, "lambda": LAMBDA, "lr": LR, "betas": list(BETAS),
                "labels": LABELS, "checkpoint_keys": list(pl.keys()), "tensors": {}, "official_max_abs_diff": {}}

    def save(name, x, dtype="<f4"):
        a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        a = np.ascontiguousarray(a.astype(dtype if a.dtype.kind == "f" else "<i8"))
        np.save(os.path.join(args.out, name + ".npy"), a)
        manifest["tensors"][name] = {"file": name + ".npy", "shape": list(a.shape), "dtype": str(a.dtype)}

    # 3. Inference (test.py), restated; the official code on the same inputs as the cross-check.
    with torch.no_grad():
        text = encode_text(state, pl, DEPTH, T_N_CTX)
        save("text", text)
        for tag, feats in (("", FEATURES), ("_multi", FEATURES_MULTI)):
            emb, patches = vision_dpam(state, images, feats, dpam)
            maps = anomaly_maps(patches, text, IMAGE_SIZE)
            logits = image_logits(emb, text)
            score = logits.softmax(-1)[:, 1]
            if not tag:  # the image side does not depend on the feature layers
                save("image_embedding", emb)
                save("image_logits", logits)
                save("score", score)
            for f, p in zip(feats, patches):
                save(f"patch_tokens{tag}_l{f}", p)
            save("map_sum" + tag, maps)
            save("final_map" + tag, np.stack([gaussian_filter(m, sigma=SIGMA) for m in maps.numpy()]))
            # cross-check with the official forward
            omodel, _ = official_model(AnomalyCLIP, raw, torch.float32)
            omodel.visual.DAPM_replace(DPAM_layer=dpam)
            olearner = pe.AnomalyCLIP_PromptLearner(omodel, design)
            olearner.load_state_dict(torch.load(ckpt_path)["prompt_learner"])
            otext, omaps, oscore, opatches = official_outputs(omodel, olearner, images, feats, dpam)
            d = {"text": (otext - text).abs().max().item(), "map_sum": (omaps - maps).abs().max().item(),
                 "score": (oscore - score).abs().max().item(),
                 "patch_tokens": max((a - b).abs().max().item() for a, b in zip(opatches, patches))}
            manifest["official_max_abs_diff"]["inference" + tag] = d
            print("official vs restatement" + tag, d)
            assert max(d.values()) < 1e-5, d
        manifest["map_range"] = [float(maps.min()), float(maps.max())]

    # 4. One training step (train.py), float32 and float64.
    masks = torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)
    masks[1, 10:30, 20:44] = 1
    masks[2, 40:60, 5:25] = 1
    masks[2, 2:8, 50:60] = 1
    save("masks", masks)
    labels = torch.tensor(LABELS)
    trainable = ["ctx_pos", "ctx_neg"] + [f"compound_prompts_text.{i}" for i in range(DEPTH - 1)]
    for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
        st = {k: x.to(dtype) for k, x in state.items()}
        p = {k: (x.to(dtype) if x.is_floating_point() else x).clone() for k, x in pl.items()}
        for k in trainable:
            p[k].requires_grad_(True)
        total, image_loss, map_loss = step_loss(st, p, images.to(dtype), masks.to(dtype), labels, FEATURES, dpam,
                                                LAMBDA)
        total.backward()
        manifest["loss_" + tag] = {"total": total.item(), "image": image_loss.item(), "maps": map_loss.item()}
        grads = torch.cat([p[k].grad.reshape(-1) for k in trainable])
        save("grads_" + tag, grads, dtype="<f8" if dtype == torch.float64 else "<f4")
        if dtype == torch.float32:
            opt = torch.optim.Adam([p[k] for k in trainable], lr=LR, betas=BETAS)
            opt.step()
    manifest["grad_tensors"] = [{"name": k, "shape": list(pl[k].shape)} for k in trainable]
    # the official step on the same batch: gradients and the tensors after the step
    omodel, _ = official_model(AnomalyCLIP, raw, torch.float32)
    omodel.visual.DAPM_replace(DPAM_layer=dpam)
    olearner = pe.AnomalyCLIP_PromptLearner(omodel, design)
    olearner.load_state_dict(torch.load(ckpt_path)["prompt_learner"])
    olearner.train()
    oopt = torch.optim.Adam(list(olearner.parameters()), lr=LR, betas=BETAS)
    ototal = official_step(omodel, olearner, images, masks, labels, dpam)
    oopt.zero_grad()
    ototal.backward()
    ograds = torch.cat([dict(olearner.named_parameters())[k].grad.reshape(-1) for k in trainable])
    oopt.step()
    torch.save({"prompt_learner": olearner.state_dict()}, os.path.join(args.out, "after_step.pth"))
    ours_after = {k: p[k].detach() for k in trainable}
    g32 = torch.from_numpy(np.load(os.path.join(args.out, "grads_f32.npy")))
    manifest["official_max_abs_diff"]["train_step"] = {
        "loss": abs(ototal.item() - manifest["loss_f32"]["total"]),
        "grads": (ograds - g32).abs().max().item(),
        "after_step": max((dict(olearner.named_parameters())[k] - ours_after[k]).abs().max().item() for k in trainable)}
    print("official vs restatement, train step", manifest["official_max_abs_diff"]["train_step"])
    unchanged = [k for k, x in olearner.state_dict().items() if torch.equal(x, pl[k])]
    manifest["unchanged_after_step"] = unchanged
    manifest["after_step"] = "after_step.pth"

    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    total = sum(os.path.getsize(os.path.join(args.out, x)) for x in os.listdir(args.out))
    print(f"wrote {len(manifest['tensors'])} arrays + archive + checkpoints to {args.out} ({total / 1e6:.2f} MB)")


def official_step(model, learner, images, masks, labels, dpam):
    """The loss of the official train.py loop body for one batch (lambda 4)."""
    spec = importlib.util.spec_from_file_location("official_loss", os.path.join(OFFICIAL["ref"], "loss.py"))
    loss_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loss_mod)
    ml = OFFICIAL['ml']
    gt = masks.clone()
    gt[gt > 0.5] = 1
    gt[gt <= 0.5] = 0
    with torch.no_grad():
        image_features, patch_features = model.encode_image(images, FEATURES, DPAM_layer=dpam)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    prompts, tokenized, compound = learner(cls_id=None)
    text = model.encode_text_learn(prompts, tokenized, compound).float()
    text = torch.stack(torch.chunk(text, dim=0, chunks=2), dim=1)
    text = text / text.norm(dim=-1, keepdim=True)
    probs = image_features.unsqueeze(1) @ text.permute(0, 2, 1)
    image_loss = F.cross_entropy(probs[:, 0, ...].squeeze() / 0.07, labels.long())
    focal, dice_ = loss_mod.FocalLoss(), loss_mod.BinaryDiceLoss()
    loss = 0
    for p in patch_features:
        p = p / p.norm(dim=-1, keepdim=True)
        sim, _ = ml.compute_similarity(p, text[0])
        sm = ml.get_similarity_map(sim[:, 1:, :], IMAGE_SIZE).permute(0, 3, 1, 2)
        loss = loss + focal(sm, gt) + dice_(sm[:, 1, :, :], gt) + dice_(sm[:, 0, :, :], 1 - gt)
    return LAMBDA * loss + image_loss


if __name__ == "__main__":
    main()
