#!/usr/bin/python3
"""The torch.onnx.export fixtures onnx/onnximport's tests import (README.md here).

    flock /tmp/shrink-heavy.lock /usr/bin/python3 onnx/onnximport/testdata/make_fixtures.py

PyTorch 1.13, one thread, deterministic. Both networks are shrink presets built by
tools/torchref/shrinkmodel.py (module paths are shrink's layer names) and read Fashion-MNIST as
shrink does ((x/255 - 0.2860)/0.3530, float32):

  resnet8.onnx       the trained ResNet-8 of testdata/models (resnet8-fashion.safetensors:
                     depth 8, width 8, [1, 28, 28]), exported in eval mode with constant
                     folding: every batch norm folded into its convolution (anonymous
                     initializers onnx::Conv_N under nodes /layer1/layer1.0/conv1/Conv)
  resnet8_bn.onnx    the same network exported without constant folding: BatchNormalization
                     nodes with the state_dict's names (bn1.weight, ...)
  lstm2.onnx         an LSTM classifier (arch lstm: 2 stacked layers of 24, the last step, fc)
                     on rows of pixels ([28, 28] sequences), trained 2 epochs on the first
                     12,000 training images
  NAME_logits.npy    PyTorch's logits (the unexported module in eval mode) on the first 500
                     test images
  fixtures.json      per network: the model section, test accuracy and correct count on all
                     10,000 test images (eval mode, batches of 1000)

Every file is opset 13 with input "input" [N, ...] and output "logits" [N, 10], the batch
dimension dynamic ("N").
"""
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "testdata", "safetensors"))
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import eval as torchref_eval  # noqa: E402
import mnistdata  # noqa: E402
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

RESNET = {"arch": "resnet", "depth": 8, "width": 8, "input": [1, 28, 28], "classes": 10}
LSTM = {"arch": "lstm", "hidden": 24, "num_layers": 2, "input": [28, 28], "classes": 10}
FIRST = 500


def export(name, model, x, fold=True):
    model.eval()
    torch.onnx.export(
        model, x[:2], os.path.join(HERE, name + ".onnx"), opset_version=13,
        do_constant_folding=fold, input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )


def record(name, model, section, xte, yte, out):
    model.eval()
    with torch.no_grad():
        logits = model(xte[:FIRST])
    np.save(os.path.join(HERE, name + "_logits.npy"), logits.numpy().astype(np.float32))
    r = torchref_eval.evaluate(model, xte, yte, batch=1000)
    out[name] = {"model": section, "accuracy": r["accuracy"], "correct": r["correct"], "first": FIRST}
    print("%s: test accuracy %.4f" % (name, r["accuracy"]))


def main():
    torch.set_num_threads(1)
    out = {}

    resnet = shrinkmodel.build(RESNET)
    state, _ = stlite.load(os.path.join(ROOT, "testdata", "models", "resnet8-fashion.safetensors"))
    resnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    xte, yte = mnistdata.load("fashion-mnist", "test", RESNET["input"])
    export("resnet8", resnet, xte)
    export("resnet8_bn", resnet, xte, fold=False)
    record("resnet8", resnet, RESNET, xte, yte, out)

    torch.manual_seed(0)
    lstm = shrinkmodel.build(LSTM)
    xtr, ytr = mnistdata.load("fashion-mnist", "train", LSTM["input"])
    xtr, ytr = xtr[:12000], ytr[:12000]
    xte, yte = mnistdata.load("fashion-mnist", "test", LSTM["input"])
    opt = torch.optim.Adam(lstm.parameters(), lr=3e-3)
    for epoch in range(2):
        lstm.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(lstm(xtr[idx]), ytr[idx]).backward()
            opt.step()
    export("lstm2", lstm, xte)
    record("lstm2", lstm, LSTM, xte, yte, out)

    out["torch"] = torch.__version__
    with open(os.path.join(HERE, "fixtures.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
