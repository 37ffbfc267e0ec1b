#!/usr/bin/python3
"""Golden fixtures for APRIL-GAN (tests/model/test_april_gan_parity.cpp, tests/train/test_april_gan_step.cpp).

Runs the official APRIL-GAN computation (github.com/ByChelsea/VAND-APRIL-GAN, MIT: model.py,
prompt_ensemble.py, loss.py, open_clip/) on a tiny random CLIP:
  open_clip CLIP(**config) at S (exact GELU: the config has no quick_gelu; position embedding
  resized by open_clip's resize_pos_embed, bicubic + antialias, from the native grid) →
  encode_text_with_prompt_ensemble (class-specific handcrafted prompts) → the vision tower's raw
  block outputs of features_list → LinearLayer → per layer normalise, 100·f·T, bilinear
  (align_corners=True) upsampling of the logits to S, softmax, abnormal channel, summed over the
  layers (test.py) → image score softmax(100·normalise(pooled)·T)[1] (test.py).
  One training step (train.py): FocalLoss + BinaryDiceLoss per layer, Adam(lr 1e-3, betas
  (0.5, 0.999)). train.py normalises the patch tokens in place, which autograd refuses in float32
  outside CUDA autocast; the step here normalises out of place (the same values and gradient).

The official VisionTransformer.forward builds an attention map on 'cuda' from block 12's attention
(it needs CUDA and ≥ 12 blocks); vision_forward below runs the same modules (conv1, class and
position embeddings, ln_pre, the official Transformer with out_layers, ln_post, proj) without that
bookkeeping, which does not change any output used here.

Run with Debian's python3 (torch 1.13):
  git -C <mirror of VAND-APRIL-GAN> archive HEAD model.py prompt_ensemble.py loss.py open_clip | tar -x -C /tmp/april
  /usr/bin/python3 scripts/golden/make_golden_april_gan.py [--ref /tmp/april]
The official code is imported at generation time only; nothing of it is written to the fixtures.
torchvision, ftfy (identity on these ASCII prompts) and pkg_resources are stubbed when absent.

Outputs (tests/fixtures/april_gan/):
  tiny_clip.pt / tiny_clip.json   backbone archive (OpenAI TorchScript form, fp16) and its config
  tiny_april_gan.pth              head checkpoint, torch.save({'trainable_linearlayer': state_dict})
  golden.json                     settings, class names, losses, {name: {file, shape, dtype}}
  images.npy masks.npy            inputs [B,3,S,S] (CLIP-normalised) and masks [B,S,S] 0/1
  text_<class>.npy                the ensemble's text features [E, 2] per class
  logits.npy                      per-layer logits at grid resolution [L, B, G², 2]
  probs.npy                       per-layer probabilities [L, B, 2, S, S] (train.py's anomaly_maps)
  map.npy score.npy               Σ_l p_abnormal [B, S, S] and the image scores [B]
  after_step.pth grads.pth        the head after one step, and the step's gradients (same layout)
  grads_f64.npy                   the step's gradients in float64 (tensors in golden.json order)
"""
import argparse
import importlib
import json
import os
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "reference"))
from bench_predict_reference import stub_torchvision  # noqa: E402

CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 64, "patch_size": 8},
    # The full vocabulary (the tokenizer's ids); a tiny text width keeps the token embedding small.
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2},
}
IMAGE_SIZE = 64  # S: grid 8 (the native grid 4 is resized)
FEATURES = [2, 3, 4]
CLASSES = ["metal_nut", "bottle", "metal_nut"]  # one per image; "_" kept as the class folder writes it
LR, BETAS = 1e-3, (0.5, 0.999)


def import_official(ref):
    """The official modules: open_clip as a package without its __init__ (which imports the whole
    training stack), model.py, prompt_ensemble.py, loss.py."""
    stub_torchvision()
    if "ftfy" not in sys.modules:
        try:
            import ftfy  # noqa: F401
        except ImportError:
            ftfy = types.ModuleType("ftfy")
            ftfy.fix_text = lambda s: s
            sys.modules["ftfy"] = ftfy
    pkg = types.ModuleType("open_clip")
    pkg.__path__ = [os.path.join(ref, "open_clip")]
    sys.modules["open_clip"] = pkg
    sys.path.insert(0, ref)
    oc_model = importlib.import_module("open_clip.model")
    oc_tok = importlib.import_module("open_clip.tokenizer")
    ag_model = importlib.import_module("model")
    ag_prompt = importlib.import_module("prompt_ensemble")
    ag_loss = importlib.import_module("loss")
    return oc_model, oc_tok, ag_model, ag_prompt, ag_loss


def perturb(p, gen, name):
    """Makes every tensor non-trivial (LayerNorm gains ≠ 1, biases ≠ 0)."""
    p = p.float().clone()
    last = name.split(".")[-1]
    if any(s in name for s in ("ln_", "ln_final", "ln_post", "ln_pre")) and last == "weight":
        return 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
    if last == "bias":
        return 0.05 * torch.randn(p.shape, generator=gen)
    if p.dim() == 0:
        return p
    return p + 0.1 * (p.std() if p.numel() > 1 else 1.0) * torch.randn(p.shape, generator=gen)


class Holder(torch.nn.Module):
    """A parameter container whose state_dict has exactly the given (dotted) names."""


def make_container(state):
    root = Holder()
    for name, t in state.items():
        parts, mod = name.split("."), root
        for p in parts[:-1]:
            if not hasattr(mod, p):
                mod.add_module(p, Holder())
            mod = getattr(mod, p)
        if name in ("input_resolution", "context_length", "vocab_size"):
            mod.register_buffer(parts[-1], t)
        else:
            mod.register_parameter(parts[-1], torch.nn.Parameter(t, requires_grad=False))
    return root


def vision_forward(visual, x, out_layers):
    """The official VisionTransformer.forward without its CUDA-only attention-map bookkeeping."""
    x = visual.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
    x = torch.cat([cls, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.patch_dropout(x)
    x = visual.ln_pre(x)
    x = x.permute(1, 0, 2)
    x, _, tokens = visual.transformer(x, out_layers)
    x = x.permute(1, 0, 2)
    tokens = [t.permute(1, 0, 2) for t in tokens]
    pooled = visual.ln_post(x[:, 0]) @ visual.proj
    return pooled, tokens


def build_clip(oc_model, gen, out_dir):
    """Random CLIP in OpenAI's archive form (fp16), and the official model at S from it (fp32)."""
    torch.manual_seed(4321)
    native = oc_model.CLIP(**json.loads(json.dumps(CFG)))
    state = OrderedDict()
    for k, p in native.state_dict().items():
        state[k] = (p.float() if k == "logit_scale" else perturb(p, gen, k)).half()
    archive_state = dict(state)
    archive_state["input_resolution"] = torch.tensor(CFG["vision_cfg"]["image_size"])
    archive_state["context_length"] = torch.tensor(CFG["text_cfg"]["context_length"])
    archive_state["vocab_size"] = torch.tensor(CFG["text_cfg"]["vocab_size"])
    torch.jit.script(make_container(archive_state).eval()).save(os.path.join(out_dir, "tiny_clip.pt"))
    with open(os.path.join(out_dir, "tiny_clip.json"), "w") as f:
        json.dump(CFG, f, indent=4)
    # factory.create_model at img_size ≠ native: CLIP(**cfg) at S, resize_pos_embed, strict load (fp32)
    cfg = json.loads(json.dumps(CFG))
    cfg["vision_cfg"]["image_size"] = IMAGE_SIZE
    model = oc_model.CLIP(**cfg)
    sd = {k: v.float() for k, v in state.items()}
    oc_model.resize_pos_embed(sd, model)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def anomaly_maps(linear, tokens, text, in_place):
    """test.py / train.py's per-layer maps; text [B, E, 2]. Returns (logits, probs) per layer."""
    tokens = linear([t.clone() for t in tokens])  # LinearLayer drops the class token itself
    logits, probs = [], []
    for layer in range(len(tokens)):
        if in_place:
            tokens[layer] /= tokens[layer].norm(dim=-1, keepdim=True)
            t = tokens[layer]
        else:
            t = tokens[layer] / tokens[layer].norm(dim=-1, keepdim=True)
        m = 100.0 * t @ text
        logits.append(m)
        b, l, c = m.shape
        h = int(np.sqrt(l))
        m = F.interpolate(m.permute(0, 2, 1).view(b, 2, h, h), size=IMAGE_SIZE, mode="bilinear", align_corners=True)
        probs.append(torch.softmax(m, dim=1))
    return logits, probs


def train_step(ag_model, ag_loss, init_state, tokens, text, gt, dtype):
    """One train.py step from init_state in `dtype`: loss, gradients, state after the step."""
    v = CFG["vision_cfg"]
    linear = ag_model.LinearLayer(v["width"], CFG["embed_dim"], len(FEATURES), "ViT-L-14-336").to(dtype)
    linear.load_state_dict({k: t.to(dtype) for k, t in init_state.items()})
    opt = torch.optim.Adam(list(linear.parameters()), lr=LR, betas=BETAS)
    _, probs = anomaly_maps(linear, [t.to(dtype) for t in tokens], text.to(dtype), in_place=False)
    focal, dice = ag_loss.FocalLoss(), ag_loss.BinaryDiceLoss()
    loss = 0
    for p in probs:
        loss += focal(p, gt.to(dtype))
        loss += dice(p[:, 1, :, :], gt.to(dtype))
    opt.zero_grad()
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in linear.named_parameters())
    opt.step()
    return float(loss), grads, linear.state_dict()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/april")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "fixtures", "april_gan"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    oc_model, oc_tok, ag_model, ag_prompt, ag_loss = import_official(args.ref)
    gen = torch.Generator().manual_seed(29)
    model = build_clip(oc_model, gen, args.out)
    manifest = {"config": "tiny_clip.json", "weights": "tiny_clip.pt", "checkpoint": "tiny_april_gan.pth",
                "image_size": IMAGE_SIZE, "features_list": FEATURES, "classes": CLASSES, "lr": LR,
                "betas": list(BETAS), "tensors": {}}

    def save(name, x, dtype="<f4"):
        a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
        a = np.ascontiguousarray(a.astype(dtype))
        np.save(os.path.join(args.out, name + ".npy"), a)
        manifest["tensors"][name] = {"file": name + ".npy", "shape": list(a.shape), "dtype": str(a.dtype)}

    # Head: LinearLayer with perturbed random weights, saved as train.py saves it.
    torch.manual_seed(5)
    v = CFG["vision_cfg"]
    linear = ag_model.LinearLayer(v["width"], CFG["embed_dim"], len(FEATURES), "ViT-L-14-336")
    with torch.no_grad():
        for n, p in linear.named_parameters():
            p.copy_(perturb(p, gen, n) * 3.0)  # larger weights: maps with contrast on random towers
    linear.eval()
    torch.save({"trainable_linearlayer": linear.state_dict()}, os.path.join(args.out, manifest["checkpoint"]))

    # Inputs: CLIP-normalised random images with a bright blob; masks of the blob (+ image 1 clean).
    b = len(CLASSES)
    images = torch.randn(b, 3, IMAGE_SIZE, IMAGE_SIZE, generator=gen) * 0.5
    masks = torch.zeros(b, IMAGE_SIZE, IMAGE_SIZE)
    images[0, :, 10:30, 20:44] += 1.5
    masks[0, 10:30, 20:44] = 1
    images[2, 0, 40:60, 5:25] -= 1.5
    masks[2, 40:60, 5:25] = 1
    save("images", images)
    save("masks", masks)

    tokenizer = oc_tok.tokenize
    with torch.no_grad():
        prompts = ag_prompt.encode_text_with_prompt_ensemble(model, sorted(set(CLASSES)), tokenizer, "cpu")
        for name, t in prompts.items():
            save("text_" + name, t)  # [E, 2]
        text = torch.stack([prompts[c] for c in CLASSES])  # [B, E, 2]
        pooled, tokens = vision_forward(model.visual, images, FEATURES)
        image_features = pooled / pooled.norm(dim=-1, keepdim=True)
        scores = torch.stack([(100.0 * image_features[i:i + 1] @ text[i]).softmax(dim=-1)[0, 1] for i in range(b)])
        logits, probs = anomaly_maps(linear, tokens, text, in_place=True)
    save("score", scores)
    save("logits", torch.stack(logits))
    save("probs", torch.stack(probs))
    save("map", np.sum([p[:, 1].numpy() for p in probs], axis=0))

    # One training step from the checkpoint's head, float32 and float64.
    init = {k: t.clone() for k, t in linear.state_dict().items()}
    loss, grads, after = train_step(ag_model, ag_loss, init, tokens, text, masks, torch.float32)
    loss64, grads64, _ = train_step(ag_model, ag_loss, init, [t.double() for t in tokens], text.double(), masks,
                                    torch.float64)
    torch.save({"trainable_linearlayer": after}, os.path.join(args.out, "after_step.pth"))
    torch.save({"trainable_linearlayer": grads}, os.path.join(args.out, "grads.pth"))
    flat, entries, off = [], {}, 0
    for n, g in grads64.items():
        name = "trainable_linearlayer." + n
        entries[name] = {"offset": off, "shape": list(g.shape), "max_abs": float(g.abs().max()),
                         "f32_noise": float((grads[n].double() - g).abs().max())}
        flat.append(g.reshape(-1).numpy())
        off += g.numel()
    np.save(os.path.join(args.out, "grads_f64.npy"), np.concatenate(flat).astype("<f8"))
    manifest.update({"loss": loss, "after_step": "after_step.pth", "grads": "grads.pth",
                     "float64": {"loss": loss64, "grads": "grads_f64.npy", "tensors": entries}})
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    total = sum(os.path.getsize(os.path.join(args.out, x)) for x in os.listdir(args.out))
    print(f"wrote {len(manifest['tensors'])} arrays + archive + checkpoints to {args.out} ({total / 1e6:.2f} MB); "
          f"loss {loss:.6f}, scores {scores.tolist()}")


if __name__ == "__main__":
    main()
