#!/usr/bin/env python3
"""Loads an APRIL-GAN checkpoint that vcpclip wrote the way the official test.py does (used by
tests/train/test_april_gan_step.cpp):

  check_april_gan_checkpoint.py CKPT.pth EXPECTED.pth VISION_WIDTH EMBED_DIM LAYERS

torch.load(CKPT) must be a dict with exactly the key 'trainable_linearlayer'; test.py's
LinearLayer (restated: fc = ModuleList of Linear(VISION_WIDTH, EMBED_DIM), LAYERS of them) must load
it with load_state_dict (strict), and its tensors must equal those of EXPECTED (torch.load, same
layout). Exit status 0 when everything matches; otherwise a message on stderr and status 1.
"""
import sys

import torch
from torch import nn


class LinearLayer(nn.Module):
    def __init__(self, dim_in, dim_out, k):
        super().__init__()
        self.fc = nn.ModuleList([nn.Linear(dim_in, dim_out) for _ in range(k)])


def main():
    ckpt_path, expected_path = sys.argv[1], sys.argv[2]
    width, embed, layers = (int(x) for x in sys.argv[3:6])
    ckpt = torch.load(ckpt_path)
    if set(ckpt.keys()) != {"trainable_linearlayer"}:
        sys.stderr.write("check failed: keys %s, expected {'trainable_linearlayer'}\n" % sorted(ckpt.keys()))
        return 1
    head = LinearLayer(width, embed, layers)
    head.load_state_dict(ckpt["trainable_linearlayer"])  # strict, as test.py
    expected = torch.load(expected_path)["trainable_linearlayer"]
    for name, t in head.state_dict().items():
        if not torch.equal(t, expected[name]):
            sys.stderr.write("check failed: %s differs from %s\n" % (name, expected_path))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
