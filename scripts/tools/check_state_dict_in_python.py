#!/usr/bin/env python3
"""Checks in Python that a checkpoint vcpclip wrote equals one written by torch.save of state_dicts
(used by tests/model/test_anomaly_clip_checkpoint.cpp for the official AnomalyCLIP layout
{'prompt_learner': prompt_learner.state_dict()}).

  check_state_dict_in_python.py CKPT.pth LIKE.pth

torch.load(CKPT) must be a dict with LIKE's keys in LIKE's order; each entry an OrderedDict with the
same _metadata, the same names in the same order, plain tensors (no nn.Parameter, no
requires_grad) of the same dtypes and shapes, and equal values (torch.equal).
Exit status 0 when everything matches; otherwise a message on stderr and status 1.
"""
import collections
import sys


def fail(msg):
    sys.stderr.write("check failed: " + msg + "\n")
    sys.exit(1)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    import torch
    obj = torch.load(argv[0], map_location="cpu")
    like = torch.load(argv[1], map_location="cpu")
    if type(obj) is not dict:
        fail("top level is %s, expected dict" % type(obj).__name__)
    if list(obj.keys()) != list(like.keys()):
        fail("top-level keys %r, expected %r" % (list(obj.keys()), list(like.keys())))
    count = 0
    for key, value in obj.items():
        ref = like[key]
        if type(value) is not collections.OrderedDict:
            fail("%s is %s, expected OrderedDict" % (key, type(value).__name__))
        if getattr(value, "_metadata", None) != ref._metadata:
            fail("%s._metadata %r, expected %r" % (key, getattr(value, "_metadata", None), ref._metadata))
        if list(value.keys()) != list(ref.keys()):
            fail("%s: names %r, expected %r" % (key, list(value.keys()), list(ref.keys())))
        for name, t in value.items():
            r = ref[name]
            if type(t) is not torch.Tensor or t.requires_grad:
                fail("%s.%s is %s (requires_grad %s), expected a plain Tensor" % (key, name, type(t), t.requires_grad))
            if t.dtype != r.dtype or t.shape != r.shape:
                fail("%s.%s: %s %s, expected %s %s" % (key, name, t.dtype, tuple(t.shape), r.dtype, tuple(r.shape)))
            if not torch.equal(t, r):
                fail("%s.%s: values differ" % (key, name))
            count += 1
    print("ok: %d tensors" % count)


if __name__ == "__main__":
    main(sys.argv[1:])
