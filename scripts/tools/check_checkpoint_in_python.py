#!/usr/bin/env python3
"""Checks in Python a file that vcpclip wrote (used by tests/io/test_checkpoint_python.cpp).

  check_checkpoint_in_python.py CKPT.pth EXPECTED.txt [--like PYTHON_WRITTEN.pth]
      torch.load(CKPT) must be the reference layout: a dict whose dict entries are OrderedDicts with
      a _metadata OrderedDict ({"": {"version": 1}, ...}; equal to the --like file's when given) and
      whose other entries are nn.Parameter with requires_grad=True; names, order, dtypes, shapes and
      values must equal EXPECTED.txt (the format of make_golden_checkpoint.py's write_expected).
  check_checkpoint_in_python.py --npy FILE.npy EXPECTED.txt
      numpy.load(FILE) must equal the single tensor in EXPECTED.txt.
Exit status 0 when everything matches; otherwise a message on stderr and status 1.
"""
import collections
import sys


def read_expected(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            name, dtype, ndim = parts[0], parts[1], int(parts[2])
            shape = tuple(int(x) for x in parts[3:3 + ndim])
            values = [float.fromhex(x) for x in parts[3 + ndim:]]
            out.append((name, dtype, shape, values))
    return out


def fail(msg):
    sys.stderr.write("check failed: " + msg + "\n")
    sys.exit(1)


def compare(name, dtype, shape, values, exp):
    e_name, e_dtype, e_shape, e_values = exp
    if name != e_name:
        fail("name %r, expected %r" % (name, e_name))
    if dtype != e_dtype or shape != e_shape:
        fail("%s: %s %s, expected %s %s" % (name, dtype, shape, e_dtype, e_shape))
    if values != e_values:
        fail("%s: values differ" % name)


def check_checkpoint(path, expected_path, like):
    import torch
    obj = torch.load(path, map_location="cpu")
    ref = torch.load(like, map_location="cpu") if like else None
    if type(obj) is not dict:
        fail("top level is %s, expected dict" % type(obj).__name__)
    flat = []
    for key, value in obj.items():
        if isinstance(value, dict):
            if type(value) is not collections.OrderedDict:
                fail("%s is %s, expected OrderedDict" % (key, type(value).__name__))
            meta = getattr(value, "_metadata", None)
            if type(meta) is not collections.OrderedDict:
                fail("%s has no _metadata OrderedDict" % key)
            if list(meta.items())[0] != ("", {"version": 1}):
                fail("%s._metadata does not start with '': {'version': 1}: %r" % (key, meta))
            if ref is not None and meta != ref[key]._metadata:
                fail("%s._metadata %r, expected %r" % (key, meta, ref[key]._metadata))
            for k, t in value.items():
                if type(t) is not torch.Tensor or t.requires_grad:
                    fail("%s.%s is %s (requires_grad %s), expected a plain Tensor" % (key, k, type(t), t.requires_grad))
                flat.append((key + "." + k, t))
        else:
            if type(value) is not torch.nn.Parameter or not value.requires_grad:
                fail("%s is %s, expected an nn.Parameter with requires_grad" % (key, type(value).__name__))
            flat.append((key, value))
    expected = read_expected(expected_path)
    if len(flat) != len(expected):
        fail("%d tensors, expected %d" % (len(flat), len(expected)))
    for (name, t), exp in zip(flat, expected):
        t = t.detach()
        compare(name, str(t.dtype).replace("torch.", ""), tuple(t.shape), t.reshape(-1).double().tolist(), exp)
    print("ok: %d tensors" % len(flat))


def check_npy(path, expected_path):
    import numpy as np
    a = np.load(path)
    (exp,) = read_expected(expected_path)
    dtype = {"float32": "float32", "uint8": "uint8", "int64": "int64", "float64": "float64", "bool": "bool"}[str(a.dtype)]
    compare(exp[0], dtype, tuple(a.shape), [float(v) for v in a.reshape(-1).tolist()], exp)
    if not a.flags["C_CONTIGUOUS"]:
        fail("array is not C-contiguous")
    print("ok: %s %s" % (a.dtype, a.shape))


def main(argv):
    if len(argv) == 3 and argv[0] == "--npy":
        return check_npy(argv[1], argv[2])
    if len(argv) == 2:
        return check_checkpoint(argv[0], argv[1], None)
    if len(argv) == 4 and argv[2] == "--like":
        return check_checkpoint(argv[0], argv[1], argv[3])
    sys.stderr.write(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
