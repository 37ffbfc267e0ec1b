#!/usr/bin/env python3
"""Seed corpora of the fuzz targets (fuzz/corpus/<reader>/) from the committed fixtures.

  /usr/bin/python3 scripts/tools/make_fuzz_seeds.py     # rewrites fuzz/corpus/ (python3-torch, numpy, PIL)

Small inputs only (a fuzzer mutates a seed byte by byte: the smaller, the deeper it goes):
  pth          tests/fixtures/checkpoint/*.pth (torch.save zips in the reference layout and broken ones)
  pickle       their data.pkl records
  npy          tests/fixtures/checkpoint/npy_*.npy (every dtype, v1/v2 headers, truncated, Fortran)
  torchscript  OpenAI-format TorchScript archives (fp16 as OpenAI's, and fp32) of a miniature CLIP
               with every tensor name, and a torch.save zip (not TorchScript)
  safetensors  the same tensors as .safetensors (F16, F32, BF16), with and without __metadata__
  config       configs/*.yaml, configs/ablations/base/*.yaml, configs/models/*.json
  image        tests/fixtures/vcp/image_*.png and 8x6 images in every format and mode OpenCV reads
"""
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
from make_golden_clip import make_container  # noqa: E402  (OpenAI's tensor names as a TorchScript module)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def out_dir(reader):
    d = os.path.join(OUT, reader)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def copy_matching(src_dir, dst, keep, max_bytes=70000):
    for name in sorted(os.listdir(src_dir)):
        p = os.path.join(src_dir, name)
        if keep(name) and os.path.getsize(p) <= max_bytes:
            shutil.copy(p, os.path.join(dst, name))


def mini_clip_state():
    """Every tensor name of an OpenAI ViT CLIP (one block per tower) at the smallest shapes that
    io::infer_clip_config accepts: a few KB instead of the fixture's 1.2 MB."""
    g = torch.Generator().manual_seed(3)
    shapes = {"positional_embedding": (4, 64), "text_projection": (64, 2), "logit_scale": (),
              "token_embedding.weight": (8, 64), "ln_final.weight": (64,), "ln_final.bias": (64,),
              "visual.class_embedding": (2,), "visual.positional_embedding": (2, 2), "visual.proj": (2, 2),
              "visual.conv1.weight": (2, 3, 1, 1), "visual.ln_pre.weight": (2,), "visual.ln_pre.bias": (2,),
              "visual.ln_post.weight": (2,), "visual.ln_post.bias": (2,)}
    for tower, w in (("visual.transformer", 2), ("transformer", 64)):
        for part, shape in (("attn.in_proj_weight", (3 * w, w)), ("attn.in_proj_bias", (3 * w,)),
                            ("attn.out_proj.weight", (w, w)), ("attn.out_proj.bias", (w,)),
                            ("ln_1.weight", (w,)), ("ln_1.bias", (w,)), ("mlp.c_fc.weight", (4 * w, w)),
                            ("mlp.c_fc.bias", (4 * w,)), ("mlp.c_proj.weight", (w, 4 * w)),
                            ("mlp.c_proj.bias", (w,)), ("ln_2.weight", (w,)), ("ln_2.bias", (w,))):
            shapes["%s.resblocks.0.%s" % (tower, part)] = shape if tower == "visual.transformer" else (w,)
    state = {k: torch.randn(v, generator=g) * 0.02 for k, v in shapes.items()}
    state.update(input_resolution=torch.tensor(2), context_length=torch.tensor(4), vocab_size=torch.tensor(8))
    return state


def safetensors_bytes(tensors, dtype, metadata):
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {"format": "pt"}
    for name, t in tensors.items():
        raw = t.to(dtype).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": names[dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def weights_seeds(state):
    d = out_dir("torchscript")
    for dtype, tag in ((torch.float16, "fp16"), (torch.float32, "fp32")):
        typed = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
        torch.jit.script(make_container(typed).eval()).save(os.path.join(d, "mini_clip_%s.pt" % tag))
    torch.save({"visual.proj": torch.zeros(2, 2)}, os.path.join(d, "state_dict_not_torchscript.pt"))
    d = out_dir("safetensors")
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    for dtype, tag in ((torch.float16, "f16"), (torch.float32, "f32"), (torch.bfloat16, "bf16")):
        with open(os.path.join(d, "mini_clip_%s.safetensors" % tag), "wb") as f:
            f.write(safetensors_bytes(floats, dtype, dtype == torch.float16))
    with open(os.path.join(d, "empty_tensor.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"a": torch.zeros(0, 3), "b": torch.ones(2)}, torch.float32, False))


def pth_seeds():
    d = out_dir("pth")
    copy_matching(os.path.join(FIX, "checkpoint"), d, lambda n: n.endswith(".pth"))
    pk = out_dir("pickle")
    for name in sorted(os.listdir(d)):
        try:
            with zipfile.ZipFile(os.path.join(d, name)) as z:
                for rec in z.namelist():
                    if rec.endswith("/data.pkl"):
                        with open(os.path.join(pk, name[:-4] + ".pkl"), "wb") as f:
                            f.write(z.read(rec))
        except (zipfile.BadZipFile, EOFError, OSError):
            pass  # the deliberately truncated fixture


def image_seeds():
    d = out_dir("image")
    copy_matching(os.path.join(FIX, "vcp"), d, lambda n: n.endswith(".png"), 16000)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("TIFF", "tif"), ("PPM", "ppm"),
                     ("WEBP", "webp")):
        try:
            img.save(os.path.join(d, "rgb." + ext), fmt)
        except (OSError, KeyError):
            print("make_fuzz_seeds: PIL cannot write %s, skipped" % fmt, file=sys.stderr)
    img.convert("L").save(os.path.join(d, "grey.png"))
    img.convert("RGBA").save(os.path.join(d, "rgba.png"))
    img.convert("P").save(os.path.join(d, "palette.png"))
    img.convert("1").save(os.path.join(d, "mask_1bit.png"))
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(os.path.join(d, "grey16.png"))
    img.convert("L").save(os.path.join(d, "grey.pgm"))


def main():
    pth_seeds()
    d = out_dir("npy")
    copy_matching(os.path.join(FIX, "checkpoint"), d, lambda n: n.endswith(".npy"))
    weights_seeds(mini_clip_state())
    d = out_dir("config")
    for sub in ("configs", os.path.join("configs", "ablations", "base"), os.path.join("configs", "models")):
        copy_matching(os.path.join(ROOT, sub), d, lambda n: n.endswith((".yaml", ".json")))
    image_seeds()
    for reader in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, reader))
        size = sum(os.path.getsize(os.path.join(OUT, reader, f)) for f in files)
        print("%-12s %3d seeds, %7d bytes" % (reader, len(files), size))


if __name__ == "__main__":
    main()
