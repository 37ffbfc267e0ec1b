#!/usr/bin/python3
"""Golden fixtures for the CLIP backbone (tests/model/test_clip_parity.cpp).

Builds a tiny random-weight CLIP with OpenAI's parameter names, stores it the way OpenAI ships its
checkpoints (a TorchScript archive, fp16 weights, plus the input_resolution / context_length /
vocab_size entries), then runs the reference implementation's loading path (Load_CLIP: build_model,
fp16 conversion, .float(), resize_pos_embed for the requested image size, add_word_embedding) and
its modules (VisionTransformer / Transformer / ResidualAttentionBlock / MultiheadAttention) to
produce the outputs the C++ port must reproduce.

Run with Debian's python3 (torch 1.13):  /usr/bin/python3 scripts/golden/make_golden_clip.py [--ref /tmp/ref]
The reference code is imported at generation time only; nothing of it is written to the fixtures.

Outputs (tests/fixtures/clip/):
  tiny_clip.pt         TorchScript archive (fp16), OpenAI names
  tiny_clip.json       model config (reference JSON format)
  golden.json          manifest: inputs / outputs -> {file, shape, dtype}, plus settings
  *.bin                raw little-endian float32 / int64 arrays
"""
import argparse
import json
import os
import sys
import types

import numpy as np
import torch
from torch import nn

CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 64, "patch_size": 8},
    # vocab is small so that the archive stays far below the fixture budget; EOT = vocab-1.
    "text_cfg": {"context_length": 77, "vocab_size": 1000, "width": 32, "heads": 2, "layers": 3},
}
FEATURES = [1, 3, 4]
SIZES = [32, 48, 24]  # native, up-sampled grid (6), down-sampled grid (3: exercises antialias)


def import_reference(ref):
    """Imports the reference's models package without its tokenizer (needs ftfy and a vocab file)."""
    sys.path.insert(0, ref)
    stub = types.ModuleType("models.simple_tokenizer")

    class SimpleTokenizer:  # placeholder: the CLIP parity path uses token ids only
        encoder = {}

    stub.SimpleTokenizer = SimpleTokenizer
    sys.modules["models.simple_tokenizer"] = stub
    import models.model_CLIP as mc  # noqa: E402
    import models.transformer as tr  # noqa: E402
    return mc, tr


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


def random_state(mc, heads, gen):
    """OpenAI-named random weights: the reference CLIP's own init, then every tensor perturbed so
    that LayerNorm affine parameters, biases and the class embedding are all non-trivial."""
    v, t = CFG["vision_cfg"], CFG["text_cfg"]
    torch.manual_seed(1234)
    model = mc.CLIP(CFG["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"],
                    t["context_length"], t["vocab_size"], t["width"], heads, t["layers"], 1, 0)
    state = {}
    for k, p in model.state_dict().items():
        if k.startswith("prompt") or k.startswith("deep_prompt"):
            continue  # VCP's prompt parameters are not part of OpenAI's checkpoints
        p = p.float().clone()
        if k.endswith("ln_1.weight") or k.endswith("ln_2.weight") or k.split(".")[-2:-1] in (["ln_pre"], ["ln_post"], ["ln_final"]) and k.endswith("weight"):
            p = 1.0 + 0.2 * torch.randn(p.shape, generator=gen)
        elif k.endswith("bias"):
            p = 0.05 * torch.randn(p.shape, generator=gen)
        elif k == "logit_scale":
            pass
        else:
            p = p + 0.1 * p.std() * torch.randn(p.shape, generator=gen)
        state[k] = p.half()  # OpenAI ships fp16
    state["input_resolution"] = torch.tensor(v["image_size"])
    state["context_length"] = torch.tensor(t["context_length"])
    state["vocab_size"] = torch.tensor(t["vocab_size"])
    return state


def vision_forward(visual, x, out_layers):
    """The reference VisionTransformer.forward without its CUDA-only attention-map bookkeeping."""
    x = visual.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
    x = torch.cat([cls, x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.ln_pre(x)
    x = x.permute(1, 0, 2)
    x, _, tokens = visual.transformer(x, out_layers)
    x = x.permute(1, 0, 2)
    tokens = [t.permute(1, 0, 2) for t in tokens]
    g = visual.ln_post(x[:, 0, :]) @ visual.proj
    return tokens, g


def text_forward(model, ids):
    """Plain CLIP text features with the reference's modules: EOT row (argmax id) of ln_final."""
    x = model.token_embedding(ids) + model.positional_embedding
    x = x.permute(1, 0, 2)
    x, _, _ = model.transformer(x)
    x = model.ln_final(x.permute(1, 0, 2))
    return x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ model.text_projection


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "clip"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    mc, tr = import_reference(args.ref)
    heads = CFG["text_cfg"]["heads"]

    # The reference derives text heads as width // 64 (0 for this tiny width); route its CLIP
    # constructor through one that uses the config's heads, leaving everything else untouched.
    orig_clip = mc.CLIP

    def clip_with_heads(*a):
        a = list(a)
        a[8] = heads
        return orig_clip(*a)

    mc.CLIP = clip_with_heads

    gen = torch.Generator().manual_seed(7)
    state = random_state(mc, heads, gen)
    archive = os.path.join(args.out, "tiny_clip.pt")
    scripted = torch.jit.script(make_container(state).eval())
    scripted.save(archive)
    with open(os.path.join(args.out, "tiny_clip.json"), "w") as f:
        json.dump(CFG, f, indent=4)

    manifest = {"config": "tiny_clip.json", "weights": "tiny_clip.pt", "features_list": FEATURES,
                "tensors": {}}

    def save(name, t):
        a = t.detach().cpu().contiguous().numpy()
        a = a.astype("<f4") if a.dtype.kind == "f" else a.astype("<i8")
        fn = name + ".bin"
        a.tofile(os.path.join(args.out, fn))
        manifest["tensors"][name] = {"file": fn, "shape": list(a.shape),
                                     "dtype": "float32" if a.dtype.kind == "f" else "int64"}

    torch.manual_seed(99)
    vocab = CFG["text_cfg"]["vocab_size"]
    ids = torch.zeros(3, 77, dtype=torch.long)
    for i, n in enumerate([5, 12, 1]):
        ids[i, 0] = vocab - 2  # SOT
        ids[i, 1:1 + n] = torch.randint(1, vocab - 2, (n,))
        ids[i, 1 + n] = vocab - 1  # EOT (the largest id, as in OpenAI's vocabulary)
    save("text_ids", ids)

    with torch.no_grad():
        for s in SIZES:
            model, _, _ = mc.Load_CLIP(s, archive, device="cpu", deep_prompt_len=1, total_d_layer_len=0)
            model.eval()
            img = torch.randn(2, 3, s, s, generator=gen)
            save(f"image_{s}", img)
            save(f"pos_embed_{s}", model.visual.positional_embedding)
            tokens, g = vision_forward(model.visual, img, FEATURES)
            for l, t in zip(FEATURES, tokens):
                save(f"patch_{s}_layer{l}", t)
            save(f"global_{s}", g)
            if s == SIZES[0]:
                save("token_embedding_class_row", model.token_embedding.weight[vocab])
                save("text_features", text_forward(model, ids))
    manifest["sizes"] = SIZES
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    total = sum(os.path.getsize(os.path.join(args.out, x)) for x in os.listdir(args.out))
    print(f"wrote {len(manifest['tensors'])} tensors + archive to {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
