#!/usr/bin/env python3
"""Writes the checkpoint fixtures of tests/fixtures/checkpoint/ with Python's torch.save.

  python3 scripts/golden/make_golden_checkpoint.py [--ref /tmp/ref] [--out tests/fixtures/checkpoint]

reference_tiny.pth is the reference training checkpoint layout (docs/design.md §7) with tiny shapes: the
reference's own Context_Prompting / Zero_Parameter classes (imported from --ref at generation time),
an nn.Linear ModuleList for trainable_linearlayer, and the prompt parameters of the CLIP model as
nn.Parameter objects in the order named_parameters() yields them, saved as train.py does.
Every tensor's values go to <name>.expected.txt (see write_expected) so that tests compare exactly.
The other files are inputs for the readers' error paths and for generic pickle/tensor coverage.
"""
import argparse
import collections
import datetime
import io
import os
import sys

import torch
import torch.nn as nn


def write_expected(path, named):
    """One line per tensor: name dtype ndim dims... values... (values as float.hex, exact)."""
    with open(path, "w") as f:
        for name, t in named:
            t = t.detach()
            vals = t.reshape(-1).double().tolist()
            f.write(" ".join([name, str(t.dtype).replace("torch.", ""), str(t.dim())] +
                             [str(d) for d in t.shape] + [float(v).hex() for v in vals]) + "\n")


def flat_items(obj):
    out = []
    for key, value in obj.items():
        if isinstance(value, dict):
            out += [(key + "." + k, v) for k, v in value.items()]
        else:
            out.append((key, value))
    return out


class LinearLayer(nn.Module):
    """train.py's patch-feature mapping: one nn.Linear per feature layer in fc (a ModuleList)."""

    def __init__(self, dim_in, dim_out, k):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(dim_in, dim_out) for _ in range(k)])


class PromptParams(nn.Module):
    """The 'prompt' parameters of the reference CLIP, registered in the same order as there
    (direct parameters first: prompt_text_projection, prompt_embeddings, deep_prompt_embeddings;
    then submodules prompt_proj, prompt_norm), so named_parameters() gives the file order."""

    def __init__(self, width, embed_dim, num_tokens, deep_layers):
        super().__init__()
        self.prompt_text_projection = nn.Parameter(torch.randn(width, embed_dim) * width ** -0.5)
        self.prompt_embeddings = nn.Parameter(torch.empty(1, num_tokens, width).uniform_(-1, 1))
        self.deep_prompt_embeddings = nn.Parameter(torch.empty(deep_layers, num_tokens, width).uniform_(-1, 1))
        self.prompt_proj = nn.Linear(width, width)
        self.prompt_norm = nn.LayerNorm(width, eps=1e-6)


def reference_checkpoint(ref):
    sys.path.insert(0, ref)
    from models.pre_vcp import Context_Prompting  # noqa: E402  (reference, generation time only)
    from models.post_vcp import Zero_Parameter  # noqa: E402

    cfg = {"embed_dim": 8, "text_cfg": {"width": 8}, "vision_cfg": {"width": 16}}
    trainable = LinearLayer(cfg["vision_cfg"]["width"], cfg["embed_dim"], 2)
    pre = Context_Prompting(cfg, cla_len=3)
    post = Zero_Parameter(dim_v=16, dim_t=8, dim_out=16)
    prompts = PromptParams(8, 8, num_tokens=1, deep_layers=2)
    with torch.no_grad():  # make every value non-trivial (zero biases, ones, ...)
        for p in list(trainable.parameters()) + list(pre.parameters()) + list(post.parameters()) + \
                list(prompts.parameters()):
            p.add_(torch.randn_like(p) * 0.1)
    model_optim = {n: p for n, p in prompts.named_parameters() if "prompt" in n}  # _freeze_stages
    save_dict = {"trainable_linearlayer": trainable.state_dict(), "New_Lan_Embed": pre.state_dict(),
                 "Zero_try": post.state_dict()}
    save_dict.update(model_optim)
    return save_dict


def write_npy_fixtures(out):
    """numpy-written .npy files for the reader (values listed in npy.expected.txt)."""
    import numpy as np
    rng = np.random.default_rng(333)
    arrays = collections.OrderedDict([
        ("npy_f4", rng.standard_normal((2, 3, 4)).astype(np.float32)),
        ("npy_f8", rng.standard_normal((5,))),
        ("npy_u1", rng.integers(0, 256, (3, 2), dtype=np.uint8)),
        ("npy_i8", np.array([[-(2 ** 40), 0], [1, 2 ** 40]], dtype=np.int64)),
        ("npy_b1", np.array([True, False, True, True])),
        ("npy_scalar", np.array(1.25, dtype=np.float32)),
        ("npy_empty", np.zeros((0, 4), dtype=np.float32)),
    ])
    for name, a in arrays.items():
        np.save(out(name + ".npy"), a)
    write_expected(out("npy.expected.txt"), [(n, torch.from_numpy(np.array(a))) for n, a in arrays.items()])
    a = arrays["npy_f4"]
    with open(out("npy_v2.npy"), "wb") as f:  # format version 2.0 header, same values as npy_f4
        np.lib.format.write_array(f, a, version=(2, 0))
    np.save(out("npy_fortran.npy"), np.asfortranarray(rng.standard_normal((3, 2)).astype(np.float32)))
    np.save(out("npy_int32.npy"), np.arange(4, dtype=np.int32))
    np.save(out("npy_bigendian.npy"), np.arange(4, dtype=">f4"))
    data = open(out("npy_f4.npy"), "rb").read()
    with open(out("npy_truncated.npy"), "wb") as f:
        f.write(data[:-10])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref", default="/tmp/ref", help="reference code (VCP-CLIP) root")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "checkpoint"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    out = lambda name: os.path.join(args.out, name)  # noqa: E731
    torch.manual_seed(333)

    # The reference layout, as train.py writes it (top folder "reference_tiny" from the file name),
    # and the same object written to a buffer (top folder "archive", as the C++ writer names it).
    ckpt = reference_checkpoint(args.ref)
    torch.save(ckpt, out("reference_tiny.pth"))
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    with open(out("reference_tiny_archive.pth"), "wb") as f:
        f.write(buf.getvalue())
    write_expected(out("reference_tiny.expected.txt"), flat_items(ckpt))

    # Storage dtypes, offsets, strides and shared storages.
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7.0
    views = collections.OrderedDict([
        ("transposed", base.t()),                     # stride (1, 6), shares base's storage
        ("row_slice", base[1:3]),                     # storage offset 6
        ("strided", base[:, 1::2]),                   # offset 1, stride (6, 2)
        ("base", base),
        ("half", (torch.randn(3, 2) * 3).half()),
        ("bfloat16", (torch.randn(5) * 3).bfloat16()),
        ("double", torch.randn(2, 2, dtype=torch.float64)),
        ("long", torch.tensor([-(2 ** 40), -1, 0, 7, 2 ** 40])),
        ("int", torch.tensor([[-3, 4]], dtype=torch.int32)),
        ("uint8", torch.tensor([0, 1, 255], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
    ])
    torch.save(views, out("tensors.pth"))
    write_expected(out("tensors.expected.txt"), list(views.items()))

    # Generic pickle values (checked by hand in tests/io/test_pickle.cpp).
    shared = ["shared"]
    many = ["s%d" % i for i in range(300)]            # > 256 memo entries: LONG_BINPUT/LONG_BINGET
    generic = {
        "ints": [0, 255, 256, 65535, 65536, -1, -2 ** 31, 2 ** 31 - 1, 2 ** 31, 2 ** 40, -2 ** 40, 2 ** 63 - 1,
                 -2 ** 63],
        "floats": [1.5, -0.0, 1e300, float("inf")],
        "flags": (True, False, None),
        "text": "h\u00e9llo \u2713",
        "tuples": ((), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)),
        "shared": [shared, shared],
        "many": many + [many[0], many[299]],
        "od": collections.OrderedDict([("z", 1), ("a", 2)]),
        "single": {"k": "v"},
        "tensor": torch.tensor([1.0, 2.0]),
        "param": nn.Parameter(torch.tensor([3.0])),
    }
    torch.save(generic, out("generic.pth"))

    # Error paths.
    torch.save({"a": {1, 2}}, out("unsupported_global_set.pth"))
    torch.save({"when": datetime.datetime(2024, 1, 2)}, out("unsupported_global_datetime.pth"))
    torch.save({"a": torch.ones(2)}, out("protocol4.pth"), pickle_protocol=4)
    wrong = reference_checkpoint(args.ref)
    wrong["Zero_try"]["prompt_temp_l1"] = torch.tensor(3)  # int64 where a float is expected
    torch.save(wrong, out("wrong_dtype.pth"))
    torch.save([torch.ones(2)], out("top_level_list.pth"))
    data = open(out("reference_tiny.pth"), "rb").read()
    with open(out("truncated.pth"), "wb") as f:
        f.write(data[: len(data) // 2])
    write_npy_fixtures(out)
    print("wrote fixtures to", os.path.abspath(args.out))


if __name__ == "__main__":
    main()
