#!/usr/bin/python3
"""Static calibration of a ResNet as torch.ao's MinMaxObserver sees it: writes calibrate.safetensors
for stages/quantize's TestCalibrateResNetInputs.

    /usr/bin/python3 testdata/quantize/make_calibrate.py

A ResNet-8 (width 4, 1x8x8 inputs, 3 classes; tools/torchref/shrinkmodel.py) with random weights
and batch norm statistics, in eval mode, and 64 random input rows (input). A forward pre-hook on
every Conv2d and Linear records the min and max of the tensor the layer really reads: the stem's
the image, a block's first convolution the ReLU after the previous block's residual add, a
downsample the same, fc the adaptive average pool's flattened output. range.<layer> is [min, max]
over all 64 rows. The __metadata__ holds the model section.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

SECTION = {"arch": "resnet", "depth": 8, "width": 4, "input": [1, 8, 8], "classes": 3}


def main():
    torch.manual_seed(23)
    model = shrinkmodel.build(SECTION)
    gen = torch.Generator().manual_seed(29)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif "bn" in name or "downsample.1" in name:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.5 + (1 if name.endswith("weight") else 0))
    model.eval()
    ranges = {}

    def hook(name):
        def pre(mod, inputs):
            x = inputs[0]
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name, (lo, hi))
            ranges[name] = (min(old[0], lo), max(old[1], hi))
        return pre

    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.register_forward_pre_hook(hook(name))
    x = torch.randn([64] + SECTION["input"], generator=gen)
    with torch.no_grad():
        model(x)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    tensors["input"] = x.reshape(64, -1).numpy()
    for name, (lo, hi) in ranges.items():
        tensors["range." + name] = torch.tensor([lo, hi], dtype=torch.float32).numpy()
    meta = {"model": json.dumps(SECTION), "script": "testdata/quantize/make_calibrate.py",
            "torch": torch.__version__}
    stlite.save(os.path.join(HERE, "calibrate.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
