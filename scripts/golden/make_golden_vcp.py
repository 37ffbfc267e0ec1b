#!/usr/bin/python3
"""Golden fixtures for VCP-CLIP (tests/model/test_vcp_parity.cpp, tests/app/test_predict.cpp).

Builds a tiny random CLIP in OpenAI's form (TorchScript archive, fp16, OpenAI names, the full
49408-token vocabulary so that the reference's hard-coded <|class|> = 49408 / EOT = 49407 apply),
a random VCP checkpoint saved exactly like the reference's train.py (state_dicts of the three
modules + the CLIP parameters whose names contain "prompt", as nn.Parameter objects), three small
PNG images, and runs the reference pipeline on them:
  Load_CLIP (GELU blocks, pos-embed resize, <|class|> row) → encode_image →
  Context_Prompting.before_extract_feat → Prompt_Ensemble.forward_ensemble (CLIP.encode_text with
  deep prompts) → per layer Zero_Parameter + LinearLayer maps (test.py) → mean over layers →
  scipy gaussian_filter(0.2·M_raw + 0.8·M_post, sigma=8) and the top-k image score.

Run with Debian's python3 (torch 1.13, scipy, PIL):
  /usr/bin/python3 scripts/golden/make_golden_vcp.py [--ref /tmp/ref] [--vocab shared/assets/bpe_simple_vocab_16e6.txt.gz]
The reference code is imported at generation time only; nothing of it is written to the fixtures.

Outputs (tests/fixtures/vcp/):
  tiny_vcp_clip.pt / tiny_vcp_clip.json   backbone archive (fp16) and its model config
  tiny_vcp.pth                            VCP checkpoint in the reference layout
  image_{0,1,2}.png                       inputs (sizes differ from S: the resize is exercised)
  golden.json                             settings + {name: {file, shape, dtype}}
  *.npy                                   float32 / int64 arrays (numpy .npy v1)
"""
import argparse
import json
import os
import sys
import types

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from torch import nn
import torch.nn.functional as F

CFG = {
    "embed_dim": 8,
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 64, "patch_size": 8},
    # The full vocabulary (the reference hard-codes the <|class|> and EOT ids); the text width is
    # tiny so that the 49409-row token embedding stays small. Pre-VCP needs text width == embed_dim.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 3},
}
IMAGE_SIZE = 64        # S: grid 8 (the native grid 4 is interpolated)
FEATURES = [2, 3, 4]
PROMPT_LEN = 2         # r
DEEP_PROMPT_LEN = 1    # n
DEEP_LAYERS = 2        # D = text layers - 1
POST_HEADS = 8
ALPHA, SIGMA, TOPK = 0.2, 8.0, 2000
IMAGE_SHAPES = [(40, 52), (64, 64), (90, 70)]  # (height, width) of the PNG inputs


def import_reference(ref, vocab):
    """Imports the reference's models package. ftfy is not installed: a stub whose fix_text is
    the identity (for these plain ASCII prompts ftfy changes nothing); the tokenizer's default
    vocabulary path is pointed at `vocab`."""
    sys.path.insert(0, ref)
    ftfy = types.ModuleType("ftfy")
    ftfy.fix_text = lambda s: s
    sys.modules["ftfy"] = ftfy
    import models.simple_tokenizer as st  # noqa: E402
    st.SimpleTokenizer.__init__.__defaults__ = (vocab,)
    import models.model_CLIP as mc  # noqa: E402
    import models.pre_vcp as pre  # noqa: E402
    import models.post_vcp as post  # noqa: E402
    import models.prompt_ensemble as pe  # noqa: E402
    return mc, pre, post, pe


class Holder(nn.Module):
    """A parameter container whose state_dict has exactly the given (dotted) names."""


def make_container(state):
    root = Holder()
    for name, t in state.items():
        parts = name.split(".")
        mod = root
        for p in parts[:-1]:
            if not hasattr(mod, p):
                mod.add_module(p, Holder())
            mod = getattr(mod, p)
        if name in ("input_resolution", "context_length", "vocab_size"):
            mod.register_buffer(parts[-1], t)
        else:
            mod.register_parameter(parts[-1], nn.Parameter(t, requires_grad=False))
    return root


def perturb(p, gen, name):
    """Makes every tensor non-trivial (LayerNorm gains ≠ 1, biases ≠ 0)."""
    p = p.float().clone()
    last = name.split(".")[-1]
    is_norm = any(s in name for s in ("ln_", "ln_final", "ln_post", "ln_pre", "prompt_norm"))
    if is_norm and last == "weight":
        return 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
    if last == "bias":
        return 0.05 * torch.randn(p.shape, generator=gen)
    if p.dim() == 0:
        return p
    return p + 0.1 * (p.std() if p.numel() > 1 else 1.0) * torch.randn(p.shape, generator=gen)


def random_openai_state(mc, gen):
    v, t = CFG["vision_cfg"], CFG["text_cfg"]
    torch.manual_seed(4321)
    model = mc.CLIP(CFG["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"],
                    t["context_length"], t["vocab_size"], t["width"], t["heads"], t["layers"], 1, 0)
    state = {}
    for k, p in model.state_dict().items():
        if "prompt" in k:
            continue  # VCP's prompt parameters are not part of OpenAI's checkpoints
        state[k] = (p.float() if k == "logit_scale" else perturb(p, gen, k)).half()
    state["input_resolution"] = torch.tensor(v["image_size"])
    state["context_length"] = torch.tensor(t["context_length"])
    state["vocab_size"] = torch.tensor(t["vocab_size"])
    return state


class LinearLayer(nn.Module):
    """Same structure and names as the reference's LinearLayer (train.py / test.py): fc.N = Linear."""

    def __init__(self, dim_in, dim_out, k):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(dim_in, dim_out) for _ in range(k)])


def vision_forward(visual, x, out_layers):
    """The reference VisionTransformer.forward without its CUDA-only attention-map bookkeeping."""
    x = visual.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
    x = torch.cat([cls, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.ln_pre(x)
    x = x.permute(1, 0, 2)
    x, _, tokens = visual.transformer(x, out_layers)
    x = x.permute(1, 0, 2)
    tokens = [t.permute(1, 0, 2) for t in tokens]
    g = visual.ln_post(x[:, 0, :]) @ visual.proj
    return g, tokens


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default=os.path.join(here, "..", "..", "..", "shared", "assets", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "vcp"))
    args = ap.parse_args()
    if not os.path.exists(args.vocab):
        args.vocab = "/work/shared/assets/bpe_simple_vocab_16e6.txt.gz"
    os.makedirs(args.out, exist_ok=True)
    mc, pre, post, pe = import_reference(args.ref, args.vocab)

    # The reference derives text heads as width // 64 (0 for this tiny width): route its CLIP
    # constructor through one that uses the config's heads, leaving everything else untouched.
    orig_clip = mc.CLIP

    def clip_with_heads(*a):
        a = list(a)
        a[8] = CFG["text_cfg"]["heads"]
        return orig_clip(*a)

    mc.CLIP = clip_with_heads
    gen = torch.Generator().manual_seed(11)

    # 1. Backbone archive (OpenAI form).
    archive = os.path.join(args.out, "tiny_vcp_clip.pt")
    torch.jit.script(make_container(random_openai_state(mc, gen)).eval()).save(archive)
    with open(os.path.join(args.out, "tiny_vcp_clip.json"), "w") as f:
        json.dump(CFG, f, indent=4)

    # 2. The reference model at S with deep prompts; VCP modules; random checkpoint like train.py.
    model, _, preprocess_test = mc.Load_CLIP(IMAGE_SIZE, archive, device="cpu", deep_prompt_len=DEEP_PROMPT_LEN,
                                             total_d_layer_len=DEEP_LAYERS)
    model.eval()
    torch.manual_seed(5)
    v, t = CFG["vision_cfg"], CFG["text_cfg"]
    linearlayer = LinearLayer(v["width"], CFG["embed_dim"], len(FEATURES))
    lan = pre.Context_Prompting(CFG, cla_len=PROMPT_LEN)
    zero = post.Zero_Parameter(dim_v=v["width"], dim_t=t["width"], dim_out=v["width"], num_heads=POST_HEADS)
    with torch.no_grad():
        for mod in (linearlayer, lan, zero):
            for n, p in mod.named_parameters():
                if "temp" in n:
                    # large temperatures: with random tiny towers the two text rows are close, and
                    # the maps must have real contrast for the parity test to mean something
                    p.fill_(5.5 + 0.3 * float(torch.randn((), generator=gen)))
                else:
                    p.copy_(perturb(p, gen, n))
        # sharper Post-VCP attention (unscaled softmax): the two text rows then attend to different
        # patches, so the Post-VCP maps have contrast too
        zero.q_proj_pre.weight.mul_(30.0)
        zero.k_proj_pre_1.weight.mul_(3.0)
        model_optim = {}
        for n, p in model.named_parameters():
            if "prompt" in n:
                p.copy_(perturb(p, gen, n))
                model_optim[n] = p
    save_dict = {"trainable_linearlayer": linearlayer.state_dict(), "New_Lan_Embed": lan.state_dict(),
                 "Zero_try": zero.state_dict()}
    save_dict.update(model_optim)
    torch.save(save_dict, os.path.join(args.out, "tiny_vcp.pth"))
    for m in (model, linearlayer, lan, zero):
        m.eval()

    # 3. Inputs: PNGs of different sizes, preprocessed by the reference's test transform.
    rng = np.random.RandomState(3)
    images = []
    for i, (h, w) in enumerate(IMAGE_SHAPES):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 3) % 256], -1)
        noise = rng.randint(0, 60, size=(h, w, 3))
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        img[h // 3:h // 2, w // 4:w // 2] = [250, 30, 30]  # a "defect" blob
        fn = os.path.join(args.out, f"image_{i}.png")
        Image.fromarray(img).save(fn)
        images.append(preprocess_test(Image.open(fn)))
    images = torch.stack(images)

    manifest = {"config": "tiny_vcp_clip.json", "weights": "tiny_vcp_clip.pt", "checkpoint": "tiny_vcp.pth",
                "image_size": IMAGE_SIZE, "features_list": FEATURES, "prompt_len": PROMPT_LEN,
                "deep_prompt_len": DEEP_PROMPT_LEN, "deep_prompt_layers": DEEP_LAYERS, "post_heads": POST_HEADS,
                "alpha": ALPHA, "sigma": SIGMA, "topk": TOPK,
                "images": [f"image_{i}.png" for i in range(len(IMAGE_SHAPES))],
                "templates_normal": ["a photo of a good <|class|>"],
                "templates_abnormal": ["a photo of a damaged <|class|>"], "tensors": {}}

    def save(name, x):
        a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        a = np.ascontiguousarray(a.astype("<f4") if a.dtype.kind == "f" else a.astype("<i8"))
        np.save(os.path.join(args.out, name + ".npy"), a)
        manifest["tensors"][name] = {"file": name + ".npy", "shape": list(a.shape), "dtype": str(a.dtype)}

    save("images", images)

    # 4. The reference pipeline (test.py), batch of 3.
    ensemble = pe.Prompt_Ensemble(PROMPT_LEN, mc.tokenize)
    save("text_ids", torch.cat([mc.tokenize(ensemble.prompt_templates_normal),
                                mc.tokenize(ensemble.prompt_templates_abnormal)]).long())
    with torch.no_grad():
        global_feat, patch_tokens = vision_forward(model.visual, images, FEATURES)
        class_token = lan.before_extract_feat(patch_tokens, global_feat.clone(), use_global=True)
        text = ensemble.forward_ensemble(model, class_token, "cpu")  # [B, 2, E]
        save("global", global_feat)
        save("class_tokens", class_token)
        save("text", text)
        text_t = text.permute(0, 2, 1)
        raw_layers, post_layers, raw_logits, post_logits = [], [], [], []
        for layer in range(len(patch_tokens)):
            dense = patch_tokens[layer][:, 1:, :].clone()
            dense = dense / dense.norm(dim=-1, keepdim=True)
            _, f_t = zero(text_t.permute(0, 2, 1), dense)
            logits = zero.prompt_temp_l1.exp() * dense @ f_t.permute(0, 2, 1)
            post_logits.append(logits)
            b, l, _ = logits.shape
            g = int(np.sqrt(l))
            up = F.interpolate(logits.permute(0, 2, 1).view(b, 2, g, g), size=IMAGE_SIZE, mode="bilinear",
                               align_corners=True)
            post_layers.append(torch.softmax(up, dim=1)[:, 1])
            lin = linearlayer.fc[layer](patch_tokens[layer][:, 1:, :])
            lin = lin / lin.norm(dim=-1, keepdim=True)
            logits = lan.prompt_temp.exp() * lin @ text_t
            raw_logits.append(logits)
            up = F.interpolate(logits.permute(0, 2, 1).view(b, 2, g, g), size=IMAGE_SIZE, mode="bilinear",
                               align_corners=True)
            raw_layers.append(torch.softmax(up, dim=1)[:, 1])
        # per-layer logits at grid resolution [L, B, G², 2] (the full-size maps are checked via M_*)
        save("raw_logits", torch.stack(raw_logits))
        save("post_logits", torch.stack(post_logits))
    m_raw = np.mean([x.numpy() for x in raw_layers], axis=0)
    m_post = np.mean([x.numpy() for x in post_layers], axis=0)
    save("m_raw", m_raw)
    save("m_post", m_post)
    final = gaussian_filter(ALPHA * m_raw + (1 - ALPHA) * m_post, sigma=(0, SIGMA, SIGMA))  # = axes=(1, 2)
    save("final_map", final)
    k = -TOPK
    top_raw = np.partition(m_raw.reshape(m_raw.shape[0], -1), kth=k)[:, k:]
    top_post = np.partition(m_post.reshape(m_post.shape[0], -1), kth=k)[:, k:]
    save("score", np.mean(top_raw, axis=1) + np.mean(top_post, axis=1))

    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    total = sum(os.path.getsize(os.path.join(args.out, x)) for x in os.listdir(args.out))
    print(f"wrote {len(manifest['tensors'])} arrays + archive + checkpoint to {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
