#!/usr/bin/python3
"""Golden fixture for one VCP-CLIP training step (tests/train/test_train_step_parity.cpp).

Follows the reference train.py for a single optimizer step, on the tiny OpenAI-form CLIP and the
reference-layout VCP checkpoint of tests/fixtures/vcp/ (written by scripts/make_golden_vcp.py):
  Load_CLIP → LinearLayer / Context_Prompting / Zero_Parameter loaded from the checkpoint (as the
  reference's resume path does) → the reference's Adam param groups (lr 4e-5 for everything but the
  two temperatures, 0.01 for New_Lan_Embed.prompt_temp and Zero_try.prompt_temp_l1, betas (0.5,
  0.999)) → for a batch of 2 images with masks: vision tower under no_grad, Pre-VCP class tokens,
  Prompt_Ensemble text features (CLIP kept in train mode), per layer Post-VCP and raw maps,
  FocalLoss + BinaryDiceLoss of utils/loss.py summed over layers and branches → backward → step.
Deterministic mode: prompt dropout p = 0 (the rest of the step has no randomness).

Run with Debian's python3 (torch 1.13):
  /usr/bin/python3 scripts/make_golden_train_step.py [--ref /tmp/ref] [--vocab .../bpe_simple_vocab_16e6.txt.gz]
The reference code is imported at generation time only; nothing of it is written to the fixtures.

Outputs (tests/fixtures/train/):
  masks.npy        [2, S, S] float32 0/1 ground truth (the images are tests/fixtures/vcp/images.npy[:2])
  after_step.pth   every trainable tensor after the step, in the reference checkpoint layout
  grads.pth        the gradients of the step, same layout (zeros where the reference has none)
  golden.json      settings, loss / loss_raw / loss_post, and the names of the tensors the step changed
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden_vcp as gv  # noqa: E402  (CFG, import_reference, LinearLayer, vision_forward)

LR, LR_TEMP, BETAS = 4e-5, 0.01, (0.5, 0.999)
BATCH = 2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--vocab", default=os.path.join(HERE, "..", "..", "shared", "assets", "bpe_simple_vocab_16e6.txt.gz"))
    ap.add_argument("--vcp", default=os.path.join(HERE, "..", "tests", "fixtures", "vcp"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "train"))
    args = ap.parse_args()
    if not os.path.exists(args.vocab):
        args.vocab = "/work/shared/assets/bpe_simple_vocab_16e6.txt.gz"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.vcp, "golden.json")) as f:
        vcp = json.load(f)
    mc, pre, post, pe = gv.import_reference(args.ref, args.vocab)
    sys.path.insert(0, args.ref)
    from utils.loss import FocalLoss, BinaryDiceLoss  # noqa: E402

    cfg = gv.CFG
    orig_clip = mc.CLIP

    def clip_with_heads(*a):  # the reference derives heads as width // 64 (0 here)
        a = list(a)
        a[8] = cfg["text_cfg"]["heads"]
        return orig_clip(*a)

    mc.CLIP = clip_with_heads
    size = vcp["image_size"]
    features = vcp["features_list"]

    # Model as train.py builds it (Load_CLIP returns a fresh CLIP: train mode).
    model, _, _ = mc.Load_CLIP(size, os.path.join(args.vcp, vcp["weights"]), device="cpu",
                               deep_prompt_len=vcp["deep_prompt_len"], total_d_layer_len=vcp["deep_prompt_layers"])
    model.train()
    model.prompt_dropout.p = 0.0  # deterministic mode
    model_optim = {}
    for n, m in model.named_parameters():  # _freeze_stages(model, "prompt")
        if "prompt" in n:
            model_optim[n] = m
        else:
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
    model_optim = {n: m for n, m in model.named_parameters() if "prompt" in n}
    before = {}
    for prefix, mod in (("trainable_linearlayer.", layer), ("New_Lan_Embed.", lan), ("Zero_try.", zero)):
        for n, p in mod.named_parameters():
            before[prefix + n] = p.detach().clone()
    for n, p in model_optim.items():
        before[n] = p.detach().clone()
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if "prompt" not in n}

    # Optimizer param groups exactly as train.py.
    group1 = [m for n, m in zero.named_parameters() if n != "prompt_temp_l1"]
    group2 = [m for n, m in zero.named_parameters() if n == "prompt_temp_l1"]
    lan_main = [m for n, m in lan.named_parameters() if n != "prompt_temp"]
    lr_group1 = list(layer.parameters()) + lan_main + list(model_optim.values())
    lr_group2 = [lan.prompt_temp]
    optimizer = torch.optim.Adam([{"params": group1 + lr_group1, "lr": LR}, {"params": group2 + lr_group2, "lr": LR_TEMP}],
                                 lr=LR, betas=BETAS)
    loss_focal, loss_dice = FocalLoss(), BinaryDiceLoss()

    # Batch: the first two fixture images; masks: a defect rectangle on image 0, image 1 normal.
    images = torch.from_numpy(np.load(os.path.join(args.vcp, vcp["tensors"]["images"]["file"])))[:BATCH]
    masks = np.zeros((BATCH, size, size), np.float32)
    masks[0, size // 3:size // 2 + 3, size // 4:size // 2 + 5] = 1.0
    masks[0, 5:9, 40:58] = 1.0
    np.save(os.path.join(args.out, "masks.npy"), masks)

    ensemble = pe.Prompt_Ensemble(vcp["prompt_len"], mc.tokenize)
    with torch.no_grad():
        image_features, patch_tokens = gv.vision_forward(model.visual, images, features)
    class_token = lan.before_extract_feat(patch_tokens, image_features, use_global=True)
    text_embeddings = ensemble.forward_ensemble(model, class_token, "cpu").permute(0, 2, 1)
    maps_new, maps_raw = [], []
    for i in range(len(patch_tokens)):
        dense = patch_tokens[i][:, 1:, :].clone()
        dense = dense / dense.norm(dim=-1, keepdim=True)
        _, f_t = zero(text_embeddings.permute(0, 2, 1), dense)
        m = zero.prompt_temp_l1.exp() * dense @ f_t.permute(0, 2, 1)
        b, l, _ = m.shape
        h = int(np.sqrt(l))
        m = F.interpolate(m.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
        maps_new.append(torch.softmax(m, dim=1))
    for i in range(len(patch_tokens)):
        dense = layer.fc[i](patch_tokens[i][:, 1:, :]).clone()
        dense = dense / dense.norm(dim=-1, keepdim=True)
        m = lan.prompt_temp.exp() * dense @ text_embeddings
        b, l, _ = m.shape
        h = int(np.sqrt(l))
        m = F.interpolate(m.permute(0, 2, 1).view(b, 2, h, h), size=size, mode="bilinear", align_corners=True)
        maps_raw.append(torch.softmax(m, dim=1))
    gt = torch.from_numpy(masks).squeeze()
    gt[gt > 0.5], gt[gt < 0.5] = 1, 0
    loss_new = 0
    for m in maps_new:
        loss_new += loss_focal(m, gt)
        loss_new += loss_dice(m[:, 1, :, :], gt)
    loss_base = 0
    for m in maps_raw:
        loss_base += loss_focal(m, gt)
        loss_base += loss_dice(m[:, 1, :, :], gt)
    loss = loss_new + loss_base
    optimizer.zero_grad()
    loss.backward()
    grad_min = min(float(p.grad.abs().min()) for g in optimizer.param_groups for p in g["params"] if p.grad is not None)
    grads = {"trainable_linearlayer": {n: p.grad.clone() for n, p in layer.named_parameters()},
             "New_Lan_Embed": {n: p.grad.clone() for n, p in lan.named_parameters()},
             "Zero_try": {n: p.grad.clone() for n, p in zero.named_parameters()}}
    for n, p in model_optim.items():  # prompt_text_projection gets no gradient (unused): zeros
        grads[n] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    optimizer.step()
    from collections import OrderedDict
    torch.save({k: (OrderedDict(v) if isinstance(v, dict) else torch.nn.Parameter(v, requires_grad=False))
                for k, v in grads.items()}, os.path.join(args.out, "grads.pth"))

    save_dict = {"trainable_linearlayer": layer.state_dict(), "New_Lan_Embed": lan.state_dict(), "Zero_try": zero.state_dict()}
    save_dict.update(model_optim)
    torch.save(save_dict, os.path.join(args.out, "after_step.pth"))
    after = {}
    for prefix, key in (("trainable_linearlayer.", "trainable_linearlayer"), ("New_Lan_Embed.", "New_Lan_Embed"),
                        ("Zero_try.", "Zero_try")):
        for n, p in save_dict[key].items():
            after[prefix + n] = p
    for n, p in model_optim.items():
        after[n] = p.detach()
    changed = sorted(n for n in before if not torch.equal(before[n], after[n]))
    unchanged = sorted(n for n in before if n not in changed)
    frozen_ok = all(torch.equal(frozen_before[n], p.detach()) for n, p in model.named_parameters() if "prompt" not in n)
    assert frozen_ok, "reference step changed a frozen CLIP weight"

    manifest = {"vcp_fixture": "../vcp/golden.json", "batch": BATCH, "image_size": size, "lr": LR, "lr_temp": LR_TEMP,
                "betas": list(BETAS), "prompt_dropout": 0.0, "masks": "masks.npy", "after_step": "after_step.pth", "grads": "grads.pth",
                "loss": float(loss), "loss_raw": float(loss_base), "loss_post": float(loss_new),
                "changed": changed, "unchanged": unchanged, "min_abs_grad": grad_min}
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    print(f"loss {float(loss):.7f} (raw {float(loss_base):.7f}, post {float(loss_new):.7f}); "
          f"{len(changed)} tensors changed, unchanged: {unchanged}; min |grad| {grad_min:.3g}")


if __name__ == "__main__":
    main()
