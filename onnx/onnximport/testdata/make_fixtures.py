#!/usr/bin/python3
"""The torch.onnx.export fixtures onnx/onnximport's tests import (README.md here).

    flock /tmp/shrink-heavy.lock /usr/bin/python3 onnx/onnximport/testdata/make_fixtures.py [resnet] [lstm] [layers]

(all by default; naming some remakes only their files and entries of fixtures.json)

PyTorch 1.13, one thread, deterministic. Both networks are shrink presets and read
Fashion-MNIST as shrink does ((x/255 - 0.2860)/0.3530, float32):

  resnet8.onnx       the trained ResNet-8 of testdata/models (resnet8-fashion.safetensors:
                     the resnet preset, depth 8, width 8, [1, 28, 28]) as a torchvision-style
                     module tree (ResNet, Sequential stages of BasicBlocks, whose forward calls
                     nest, so node names are module paths: /layer1/layer1.0/conv1/Conv),
                     exported in eval mode: every batch norm folded into its convolution under
                     an anonymous initializer (onnx::Conv_N)
  resnet8_bn.onnx    the same network exported with training=PRESERVE: BatchNormalization
                     nodes with the state_dict's names (bn1.weight, ...)
  lstm2.onnx         an LSTM classifier (arch lstm: 2 stacked layers of 24, the last step, fc,
                     built by tools/torchref/shrinkmodel.py) on rows of pixels ([28, 28]
                     sequences), trained 2 epochs on the first 12,000 training images
  layers.onnx        an untrained MLP through every activation torch.onnx.export writes as
                     a pattern at opset 13 or an operator (ReLU6 as Clip, Sigmoid, Tanh, SiLU as
                     Sigmoid and Mul, GELU exact as Div/Erf/Add/Mul/Mul and tanh as its Mul/Tanh
                     form), Dropout and LayerNorm, at opset 17 (LayerNormalization)
  tokens.onnx        an untrained nn.Embedding classifier: INT64 token ids [N, 6] into
                     Gather, MatMul + Add (a linear layer on a sequence), GELU, Flatten, Gemm
  NAME_input.npy, NAME_output.npy   the inputs and PyTorch's outputs of those two
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
from torch import nn  # noqa: E402

import eval as torchref_eval  # noqa: E402
import mnistdata  # noqa: E402
import shrinkmodel  # noqa: E402
import stlite  # noqa: E402

RESNET = {"arch": "resnet", "depth": 8, "width": 8, "input": [1, 28, 28], "classes": 10}
LSTM = {"arch": "lstm", "hidden": 24, "num_layers": 2, "input": [28, 28], "classes": 10}
FIRST = 500


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: the resnet preset's block, with its state_dict names."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """The resnet preset (CIFAR-style: 3x3 stem, no max pool) with torchvision's module tree."""

    def __init__(self, depth, width, channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        cin = width
        for stage in (1, 2, 3):
            w = width << (stage - 1)
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, w, 2 if b == 0 and stage > 1 else 1))
                cin = w
            setattr(self, "layer%d" % stage, nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def export(name, model, x, preserve=False):
    model.eval()
    torch.onnx.export(
        model, x[:2], os.path.join(HERE, name + ".onnx"), opset_version=13,
        training=torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL,
        input_names=["input"], output_names=["logits"],
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
    which = sys.argv[1:] or ["resnet", "lstm", "layers"]
    path = os.path.join(HERE, "fixtures.json")
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            out = json.load(f)
    if "resnet" in which:
        make_resnet(out)
    if "lstm" in which:
        make_lstm(out)
    if "layers" in which:
        make_layers()
    out["torch"] = torch.__version__
    with open(path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


class Layers(nn.Module):
    def __init__(self):
        super().__init__()
        acts = [nn.ReLU6(), nn.Sigmoid(), nn.Tanh(), nn.SiLU(), nn.GELU(), nn.GELU(approximate="tanh")]
        self.fcs = nn.ModuleList([nn.Linear(16 if i == 0 else 12, 12) for i in range(len(acts))])
        self.acts = nn.ModuleList(acts)
        self.drop = nn.Dropout(0.25)
        self.ln = nn.LayerNorm(12, eps=1e-4)
        self.out = nn.Linear(12, 5)

    def forward(self, x):
        for fc, act in zip(self.fcs, self.acts):
            x = act(fc(x))
        return self.out(self.ln(self.drop(x)))


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 8)
        self.act = nn.GELU()
        self.fc = nn.Linear(6 * 8, 4)

    def forward(self, ids):
        return self.fc(torch.flatten(self.act(self.proj(self.emb(ids))), 1))


def make_layers():
    torch.manual_seed(1)
    for name, model, x, opset in (("layers", Layers(), torch.randn(7, 16), 17),
                                   ("tokens", Tokens(), torch.randint(0, 20, (7, 6)), 13)):
        model.eval()
        with torch.no_grad():
            y = model(x)
        torch.onnx.export(model, x, os.path.join(HERE, name + ".onnx"), opset_version=opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        np.save(os.path.join(HERE, name + "_input.npy"), x.numpy())
        np.save(os.path.join(HERE, name + "_output.npy"), y.numpy())


def make_resnet(out):
    resnet = ResNet(RESNET["depth"], RESNET["width"], RESNET["input"][0], RESNET["classes"])
    state, _ = stlite.load(os.path.join(ROOT, "testdata", "models", "resnet8-fashion.safetensors"))
    resnet.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    xte, yte = mnistdata.load("fashion-mnist", "test", RESNET["input"])
    export("resnet8", resnet, xte)
    export("resnet8_bn", resnet, xte, preserve=True)
    record("resnet8", resnet, RESNET, xte, yte, out)


def make_lstm(out):
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


if __name__ == "__main__":
    main()
