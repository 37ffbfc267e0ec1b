#!/usr/bin/python3
"""Golden fixtures for one VCP-CLIP training step (tests/train/test_train_step_parity.cpp).

Follows the reference train.py for a single optimizer step, on the tiny OpenAI-form CLIP and the
reference-layout VCP checkpoint of tests/fixtures/vcp/ (written by scripts/golden/make_golden_vcp.py):
  Load_CLIP → LinearLayer / Context_Prompting / Zero_Parameter loaded from the checkpoint (as the
  reference's resume path does) → the reference's Adam param groups (lr 4e-5 for everything but the
  two temperatures, 0.01 for New_Lan_Embed.prompt_temp and Zero_try.prompt_temp_l1, betas (0.5,
  0.999)) → for a batch of 2 images with masks: vision tower under no_grad, Pre-VCP class tokens,
  Prompt_Ensemble text features (CLIP kept in train mode), per layer Post-VCP and raw maps,
  FocalLoss + BinaryDiceLoss of utils/loss.py summed over layers and branches → backward → step.
Deterministic mode: prompt dropout p = 0 (the rest of the step has no randomness).

The same step runs a second time in float64 (every module, the images and the loss): its
gradients are the reference the magnitude check compares against (Adam with lr = lr_temp = eps =
1000 moves each element by 1000·g/(|g| + 1000) ≈ g, so the updated tensors show the gradients'
magnitudes, not just their signs). For each tensor, the float32 step's distance from the float64
gradients (its own float32 noise) is recorded next to them.

Run with Debian's python3 (torch 1.13):
  /usr/bin/python3 scripts/golden/make_golden_train_step.py [--ref /tmp/ref] [--vocab .../bpe_simple_vocab_16e6.txt.gz]
The reference code is imported at generation time only; nothing of it is written to the fixtures.
torchvision (imported by the reference for its image pipeline, unused here) is stubbed when absent.

Outputs (tests/fixtures/train/):
  masks.npy        [2, S, S] float32 0/1 ground truth (the images are tests/fixtures/vcp/images.npy[:2])
  after_step.pth   every trainable tensor after the step, in the reference checkpoint layout
  grads.pth        the gradients of the step, same layout (zeros where the reference has none)
  grads_f64.npy    the gradients of the float64 step, float64, flattened and concatenated in the
                   order of golden.json's "float64" "tensors" (each with its offset and shape)
  golden.json      settings, loss / loss_raw / loss_post, the names of the tensors the step changed,
                   and "float64": the float64 loss and, per tensor, max |g64| and max |g32 - g64|
"""
import argparse
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "reference"))  # bench_predict_reference
import make_golden_vcp as gv  # noqa: E402  (CFG, import_reference, LinearLayer, vision_forward)
from bench_predict_reference import stub_torchvision  # noqa: E402

LR, LR_TEMP, BETAS = 4e-5, 0.01, (0.5, 0.999)
BATCH = 2
PREFIXES = (("trainable_linearlayer.", "trainable_linearlayer"), ("New_Lan_Embed.", "New_Lan_Embed"),
            ("Zero_try.", "Zero_try"))


def build(args, vcp, mc, pre, post, dtype):
    """CLIP (train mode, prompt dropout 0) and the three trainable modules from the checkpoint, in
    `dtype`; the frozen/trainable split of train.py."""
    cfg, features = gv.CFG, vcp["features_list"]
    model, _, _ = mc.Load_CLIP(vcp["image_size"], os.path.join(args.vcp, vcp["weights"]), device="cpu",
                               deep_prompt_len=vcp["deep_prompt_len"], total_d_layer_len=vcp["deep_prompt_layers"])
    model.train()
    model.prompt_dropout.p = 0.0  # deterministic mode
    for n, m in model.named_parameters():  # _freeze_stages(model, "prompt")
        if "prompt" not in n:
            m.requires_grad = False
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    layer = gv.LinearLayer(v["width"], cfg["embed_dim"], len(features)).train()
    lan = pre.Context_Prompting(cfg, cla_len=vcp["prompt_len"]).train()
    zero = post.Zero_Parameter(dim_v=v["width"], dim_t=t["width"], dim_out=v["width"], num_heads=vcp["post_heads"]).train()
    ckpt = torch.load(os.path.join(args.vcp, vcp["checkpoint"]), map_location="cpu")
    layer.load_state_dict(ckpt["trainable_linearlayer"])
    zero.load_state_dict(ckpt["Zero_try"])
    lan.load_state_dict(ckpt["New_Lan_Embed"])
    for n, m in model.named_parameters():  # _load_stages(model, checkpoint, "prompt")
        if "prompt" in n:
            m.data = ckpt[n].data
    for mod in (model, layer, lan, zero):
        mod.to(dtype)
    return model, layer, lan, zero


def named_trainables(model, layer, lan, zero):
    out = {}
    for prefix, mod in zip((p for p, _ in PREFIXES), (layer, lan, zero)):
        for n, p in mod.named_parameters():
            out[prefix + n] = p
    out.update({n: m for n, m in model.named_parameters() if "prompt" in n})
    return out


def make_optimizer(model, layer, lan, zero):
    """Adam param groups exactly as train.py."""
    group1 = [m for n, m in zero.named_parameters() if n != "prompt_temp_l1"]
    group2 = [m for n, m in zero.named_parameters() if n == "prompt_temp_l1"]
    lan_main = [m for n, m in lan.named_parameters() if n != "prompt_temp"]
    model_optim = [m for n, m in model.named_parameters() if "prompt" in n]
    lr_group1 = list(layer.parameters()) + lan_main + model_optim
    lr_group2 = [lan.prompt_temp]
    return torch.optim.Adam([{"params": group1 + lr_group1, "lr": LR}, {"params": group2 + lr_group2, "lr": LR_TEMP}],
                            lr=LR, betas=BETAS)


def step_loss(mods, images, masks, vcp, mc, pe, losses):
    """The forward of train.py for one batch: (loss, loss_raw, loss_post)."""
    model, layer, lan, zero = mods
    size, features = vcp["image_size"], vcp["features_list"]
    ensemble = pe.Prompt_Ensemble(vcp["prompt_len"], mc.tokenize)
    with torch.no_grad():
        image_features, patch_tokens = gv.vision_forward(model.visual, images, features)
    class_token = lan.before_extract_feat(patch_tokens, image_features, use_global=True)
    text_embeddings = ensemble.forward_ensemble(model, class_token, "cpu").permute(0, 2, 1)

    def to_map(m):
        b, l, _ = m.shape
        h = int(np.sqrt(l))
        m = F.interpolate(m.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
        return torch.softmax(m, dim=1)

    maps_new, maps_raw = [], []
    for i in range(len(patch_tokens)):
        dense = patch_tokens[i][:, 1:, :].clone()
        dense = dense / dense.norm(dim=-1, keepdim=True)
        _, f_t = zero(text_embeddings.permute(0, 2, 1), dense)
        maps_new.append(to_map(zero.prompt_temp_l1.exp() * dense @ f_t.permute(0, 2, 1)))
    for i in range(len(patch_tokens)):
        dense = layer.fc[i](patch_tokens[i][:, 1:, :]).clone()
        dense = dense / dense.norm(dim=-1, keepdim=True)
        maps_raw.append(to_map(lan.prompt_temp.exp() * dense @ text_embeddings))
    gt = torch.from_numpy(masks).squeeze().to(images.dtype)
    gt[gt > 0.5], gt[gt < 0.5] = 1, 0
    loss_focal, loss_dice = losses
    loss_new, loss_base = 0, 0
    for m in maps_new:
        loss_new += loss_focal(m, gt)
        loss_new += loss_dice(m[:, 1, :, :], gt)
    for m in maps_raw:
        loss_base += loss_focal(m, gt)
        loss_base += loss_dice(m[:, 1, :, :], gt)
    return loss_new + loss_base, loss_base, loss_new


def run_step(args, vcp, refmods, images, masks, dtype):
    """One step in `dtype`: losses, gradients (zeros where there are none), tensors before/after."""
    mc, pre, post, pe, losses = refmods
    mods = build(args, vcp, mc, pre, post, dtype)
    model = mods[0]
    params = named_trainables(*mods)
    before = {n: p.detach().clone() for n, p in params.items()}
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if "prompt" not in n}
    optimizer = make_optimizer(*mods)
    loss, loss_raw, loss_post = step_loss(mods, images.to(dtype), masks, vcp, mc, pe, losses)
    optimizer.zero_grad()
    loss.backward()
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in params.items()}
    grad_min = min(float(p.grad.abs().min()) for g in optimizer.param_groups for p in g["params"] if p.grad is not None)
    optimizer.step()
    assert all(torch.equal(frozen_before[n], p.detach()) for n, p in model.named_parameters() if "prompt" not in n), \
        "reference step changed a frozen CLIP weight"
    return {"mods": mods, "loss": (float(loss), float(loss_raw), float(loss_post)), "grads": grads,
            "before": before, "after": {n: p.detach() for n, p in params.items()}, "grad_min": grad_min}


def save_layout(flat, path, as_parameter):
    """Writes name -> tensor in the reference checkpoint layout (module state dicts + prompt tensors)."""
    out = {}
    for prefix, key in PREFIXES:
        out[key] = OrderedDict((n[len(prefix):], t) for n, t in flat.items() if n.startswith(prefix))
    for n, t in flat.items():
        if not any(n.startswith(p) for p, _ in PREFIXES):
            out[n] = torch.nn.Parameter(t, requires_grad=False) if as_parameter else t
    torch.save(out, path)


def flatten_layout(ck):
    """name -> tensor of a reference-layout dict (module state dicts + prompt tensors)."""
    out = {}
    for k, v in ck.items():
        if isinstance(v, dict):
            out.update({k + "." + n: t for n, t in v.items()})
        else:
            out[k] = v.detach() if isinstance(v, torch.Tensor) else v
    return out


def write_float32(args, s32, masks):
    """The float32 fixtures: masks, grads.pth, after_step.pth and golden.json (without "float64")."""
    np.save(os.path.join(args.out, "masks.npy"), masks)
    save_layout(s32["grads"], os.path.join(args.out, "grads.pth"), True)
    model, layer, lan, zero = s32["mods"]
    save_dict = {"trainable_linearlayer": layer.state_dict(), "New_Lan_Embed": lan.state_dict(), "Zero_try": zero.state_dict()}
    save_dict.update({n: m for n, m in model.named_parameters() if "prompt" in n})
    torch.save(save_dict, os.path.join(args.out, "after_step.pth"))
    changed = sorted(n for n in s32["before"] if not torch.equal(s32["before"][n], s32["after"][n]))
    unchanged = sorted(n for n in s32["before"] if n not in changed)
    loss = s32["loss"]
    print(f"loss {loss[0]:.7f} (raw {loss[1]:.7f}, post {loss[2]:.7f}); {len(changed)} tensors changed, "
          f"unchanged: {unchanged}; min |grad| {s32['grad_min']:.3g}")
    return {"vcp_fixture": "../vcp/golden.json", "batch": BATCH, "image_size": masks.shape[-1], "lr": LR,
            "lr_temp": LR_TEMP, "betas": list(BETAS), "prompt_dropout": 0.0, "masks": "masks.npy",
            "after_step": "after_step.pth", "grads": "grads.pth", "loss": loss[0], "loss_raw": loss[1],
            "loss_post": loss[2], "changed": changed, "unchanged": unchanged, "min_abs_grad": s32["grad_min"]}


def float64_section(args, s64, grads32):
    """grads_f64.npy and golden.json's "float64": the float64 loss and, per tensor, its offset and
    shape in grads_f64.npy, max |g64| and the float32 gradients' (grads.pth) largest distance."""
    tensors, flat, offset = {}, [], 0
    for n, g in sorted(s64["grads"].items()):
        flat.append(g.detach().reshape(-1).numpy().astype(np.float64))
        tensors[n] = {"offset": offset, "shape": list(g.shape), "max_abs_grad": float(g.abs().max()),
                      "max_abs_f32_error": float((grads32[n].double() - g).abs().max())}
        offset += g.numel()
        print(f"  {n}: max |g64| {tensors[n]['max_abs_grad']:.3g}, max |g32 - g64| {tensors[n]['max_abs_f32_error']:.3g}")
    np.save(os.path.join(args.out, "grads_f64.npy"), np.concatenate(flat))
    print(f"float64 loss {s64['loss'][0]:.7f}")
    return {"grads": "grads_f64.npy", "loss": s64["loss"][0], "loss_raw": s64["loss"][1], "loss_post": s64["loss"][2],
            "tensors": tensors}


def import_reference(args):
    stub_torchvision()
    mc, pre, post, pe = gv.import_reference(args.ref, args.vocab)
    sys.path.insert(0, args.ref)
    from utils.loss import FocalLoss, BinaryDiceLoss  # noqa: E402
    orig_clip = mc.CLIP

    def clip_with_heads(*a):  # the reference derives heads as width // 64 (0 here)
        a = list(a)
        a[8] = gv.CFG["text_cfg"]["heads"]
        return orig_clip(*a)

    mc.CLIP = clip_with_heads
    # The reference's LayerNorm computes in float32 whatever the input (for fp16 weights); in the
    # float64 step it must keep float64. For float32 inputs both forwards are the same computation.
    sys.modules["models.transformer"].LayerNorm.forward = torch.nn.LayerNorm.forward
    return mc, pre, post, pe, (FocalLoss(), BinaryDiceLoss())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default=os.path.join(HERE, "..", "..", "..", "shared", "assets", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--vcp", default=os.path.join(HERE, "..", "..", "tests", "fixtures", "vcp"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "fixtures", "train"))
    ap.add_argument("--float64-only", action="store_true",
                    help="keep the float32 fixtures in --out (their last bits depend on the thread count and "
                         "BLAS kernels) and (re)write only grads_f64.npy and golden.json's float64 section")
    args = ap.parse_args()
    if not os.path.exists(args.vocab):
        args.vocab = "/work/shared/assets/bpe_simple_vocab_16e6.txt.gz"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.vcp, "golden.json")) as f:
        vcp = json.load(f)
    refmods = import_reference(args)
    size = vcp["image_size"]
    # Batch: the first two fixture images; masks: a defect rectangle on image 0, image 1 normal.
    images = torch.from_numpy(np.load(os.path.join(args.vcp, vcp["tensors"]["images"]["file"])))[:BATCH]
    masks = np.zeros((BATCH, size, size), np.float32)
    masks[0, size // 3:size // 2 + 3, size // 4:size // 2 + 5] = 1.0
    masks[0, 5:9, 40:58] = 1.0
    golden_path = os.path.join(args.out, "golden.json")
    if args.float64_only:
        with open(golden_path) as f:
            manifest = json.load(f)
        assert np.array_equal(np.load(os.path.join(args.out, "masks.npy")), masks), "masks.npy differs from this script's"
        grads32 = flatten_layout(torch.load(os.path.join(args.out, "grads.pth")))
    else:
        s32 = run_step(args, vcp, refmods, images, masks, torch.float32)
        manifest = write_float32(args, s32, masks)
        grads32 = s32["grads"]
    s64 = run_step(args, vcp, refmods, images, masks, torch.float64)
    manifest["float64"] = float64_section(args, s64, grads32)
    with open(golden_path, "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()
