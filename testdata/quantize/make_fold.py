#!/usr/bin/python3
"""Batch norm folding as PyTorch does it: writes fold.safetensors for stages/quantize's
TestFoldMatchesTorch.

    /usr/bin/python3 testdata/quantize/make_fold.py

For each case, a conv2d and the batchnorm2d after it with random weights and running
statistics (<case>.conv.*, <case>.bn.*), and torch.nn.utils.fusion.fuse_conv_bn_weights'
result (<case>.fused.weight, <case>.fused.bias): what torch.ao.quantization.fuse_modules
puts in the fused Conv2d. The __metadata__ holds each case's layer keys.
"""
import json
import os
import sys

import torch
from torch.nn.utils.fusion import fuse_conv_bn_weights

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))
import stlite  # noqa: E402

CASES = [
    # name, in, out, kernel, groups, conv bias, bn eps, bn affine
    ("conv_bias", 3, 4, 3, 1, True, 1e-5, True),
    ("conv_nobias", 2, 5, 3, 1, False, 1e-5, True),
    ("depthwise", 3, 6, 3, 3, False, 1e-5, True),
    ("eps", 2, 3, 1, 1, False, 1e-3, True),
    ("noaffine", 2, 3, 3, 1, True, 1e-5, False),
]


def main():
    gen = torch.Generator().manual_seed(17)
    tensors, meta = {}, {}
    for name, cin, cout, k, groups, bias, eps, affine in CASES:
        conv = torch.nn.Conv2d(cin, cout, k, groups=groups, bias=bias)
        bn = torch.nn.BatchNorm2d(cout, eps=eps, affine=affine)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * 0.5)
            if bias:
                conv.bias.copy_(torch.randn(cout, generator=gen) * 0.5)
            bn.running_mean.copy_(torch.randn(cout, generator=gen) * 0.3)
            bn.running_var.copy_(torch.rand(cout, generator=gen) * 2 + 0.05)
            # a tiny variance, where eps matters
            bn.running_var[0] = 1e-4
            if affine:
                bn.weight.copy_(torch.randn(cout, generator=gen))
                bn.bias.copy_(torch.randn(cout, generator=gen) * 0.5)
        w, b = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                    bn.weight, bn.bias)
        for k2, v in conv.state_dict().items():
            tensors[name + ".conv." + k2] = v.numpy()
        for k2, v in bn.state_dict().items():
            tensors[name + ".bn." + k2] = v.numpy()
        tensors[name + ".fused.weight"] = w.detach().numpy()
        tensors[name + ".fused.bias"] = b.detach().numpy()
        meta[name] = json.dumps({"in": cin, "out": cout, "kernel": k, "groups": groups, "bias": bias,
                                 "eps": eps, "affine": affine})
    meta["script"] = "testdata/quantize/make_fold.py"
    meta["torch"] = torch.__version__
    stlite.save(os.path.join(HERE, "fold.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
