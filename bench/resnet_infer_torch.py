#!/usr/bin/python3
"""Time in PyTorch what bench/resnetinfer times in shrink: ResNet-20 inference on one core at
batch 1 and 256, dense and structurally pruned (the architectures recipes/resnet-fashion-compress.yaml's
train and prune stages wrote, read from their checkpoints' metadata, with their weights), in float
and in int8: FX graph mode static quantization on oneDNN (Debian's torch 1.13 has no fbgemm),
batch norms folded, per-channel weights, int8 between layers, calibrated on Fashion-MNIST.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/resnet_infer_torch.py [--run DIR] [--reps 5]

bench/resnetinfer -torch runs it once per round. Prints one JSON object per benchmark
({"name": "PyTorch pruned int8/256", "ns": ...}), the median of --reps timed calls after one warm-up.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ENGINE = "onednn"


class Block(nn.Module):
    """torchvision's BasicBlock with the widths of a pruned checkpoint (bench/torch_bench.py's
    Block; shrinkmodel's modules do not trace with FX)."""

    def __init__(self, t, p):
        super().__init__()
        w1, w2 = t[p + "conv1.weight"].shape, t[p + "conv2.weight"].shape
        stride = 2 if p + "downsample.0.weight" in t and p not in ("layer1.0.",) else 1
        self.conv1 = nn.Conv2d(w1[1], w1[0], 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1[0])
        self.conv2 = nn.Conv2d(w2[1], w2[0], 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2[0])
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.downsample = None
        if p + "downsample.0.weight" in t:
            d = t[p + "downsample.0.weight"].shape
            self.downsample = nn.Sequential(nn.Conv2d(d[1], d[0], 1, stride, bias=False), nn.BatchNorm2d(d[0]))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """shrink's resnet preset (depth 20) with the widths and names of a checkpoint's tensors."""

    def __init__(self, t):
        super().__init__()
        c = t["conv1.weight"].shape
        self.conv1, self.bn1, self.relu = nn.Conv2d(c[1], c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU()
        for s in (1, 2, 3):
            setattr(self, "layer%d" % s, nn.Sequential(*[Block(t, "layer%d.%d." % (s, i)) for i in range(3)]))
        f = t["fc.weight"].shape
        self.fc = nn.Linear(f[1], f[0])
        self.load_state_dict(t)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def checkpoint(path):
    """The model section and the float tensors of a shrink safetensors checkpoint."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] not in ("F32", "I64"):
            continue
        a, b = t["data_offsets"]
        dt = np.float32 if t["dtype"] == "F32" else np.int64
        tensors[name] = torch.from_numpy(np.frombuffer(blob[a:b], dt).reshape(t["shape"]).copy())
    return json.loads(header["__metadata__"]["arch"]), tensors


def fashion(folder, n):
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz"), "rb") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16)[: n * 784].astype(np.float32) / 255
    return torch.from_numpy(x.reshape(n, 1, 28, 28).copy())


def timed(fn, reps):
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - t)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/resnet-fashion-compress")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.backends.quantized.engine = ENGINE
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    data = fashion(a.fashion, 512)
    models = {}
    for name, stage in (("dense", "train"), ("pruned", "prune")):
        _, tensors = checkpoint(os.path.join(a.run, stage, "model.safetensors"))
        models["PyTorch %s float" % name] = ResNet(tensors).eval()
        q = ResNet(tensors).eval()
        prepared = prepare_fx(q, get_default_qconfig_mapping(ENGINE), example_inputs=(data[:8],))
        with torch.inference_mode():
            for i in range(4):
                prepared(data[i * 64:(i + 1) * 64])
        models["PyTorch %s int8" % name] = convert_fx(prepared)
    with torch.inference_mode():
        for bs in (1, 256):
            xb = data[:bs].clone()
            for name, m in models.items():
                ns = timed(lambda: m(xb), a.reps if bs > 1 else 30)
                print(json.dumps({"name": "%s/%d" % (name, bs), "ns": ns}), flush=True)


if __name__ == "__main__":
    main()
