#!/usr/bin/python3
"""Evaluate a shrink mlp checkpoint in PyTorch, independently of shrink's Go code.

  /usr/bin/python3 stages/quantize/testdata/torch_eval.py CHECKPOINT [MNIST_DIR]

Reads the safetensors file as the spec lays it out (F32 weights; I8 NAME.weight or
packed I32 NAME.weight_packed with NAME.weight_shape, value + 2^(b-1) at bit i*b of
each row's little-endian int32 stream; NAME.weight_scale; NAME.weight_zero_point
when asymmetric; NAME.input_scale / NAME.input_zero_point when static), dequantizes
the weights, quantizes each layer's input with torch.fake_quantize_per_tensor_affine
(static: the stored parameters; dynamic: each batch's, from torch.ao's
MinMaxObserver) and prints the MNIST test accuracy, to compare with the accuracy in
the stage's metrics.json. Needs numpy and torch (Debian's python3-torch).
"""
import glob
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch

DT = {"F32": "<f4", "I8": "i1", "I32": "<i4", "I64": "<i8"}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DT[info["dtype"]]).reshape(info["shape"]).copy()
    return out, meta


def unpack(words, rows, cols, bits):
    """Element j of a row at bit j*bits of the row's little-endian int32 stream."""
    stream = np.unpackbits(words.astype("<i4").view(np.uint8).reshape(rows, -1), axis=1, bitorder="little")
    codes = stream[:, : cols * bits].reshape(rows, cols, bits).astype(np.int64)
    values = (codes << np.arange(bits)).sum(axis=2)
    return values - (1 << (bits - 1))


def weight(t, comp, name):
    if name + ".weight" in t and t[name + ".weight"].dtype == np.float32:
        return torch.from_numpy(t[name + ".weight"])
    spec = comp[name]["quant"]
    if name + ".weight_packed" in t:
        rows, cols = (int(d) for d in t[name + ".weight_shape"])
        q = unpack(t[name + ".weight_packed"], rows, cols, spec["bits"])
    else:
        q = t[name + ".weight"].astype(np.int64)
    scale = t[name + ".weight_scale"].reshape(-1, 1).astype(np.float32)
    zp = t.get(name + ".weight_zero_point", np.zeros_like(scale, dtype=np.int8)).reshape(-1, 1).astype(np.int64)
    return torch.from_numpy(((q - zp).astype(np.float32) * scale).astype(np.float32))


def quantize_input(x, t, comp, name):
    inq = comp[name].get("input_quant")
    if not inq:
        return x
    bits = inq["spec"]["bits"]
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if inq["mode"] == "static":
        scale = float(t[name + ".input_scale"][0])
        zp = int(t.get(name + ".input_zero_point", np.zeros(1, np.int8))[0])
    else:
        qscheme = torch.per_tensor_affine if inq["spec"]["scheme"] == "asymmetric" else torch.per_tensor_symmetric
        obs = torch.ao.quantization.MinMaxObserver(dtype=torch.qint8, qscheme=qscheme, quant_min=qmin, quant_max=qmax)
        obs(x)
        s, z = obs.calculate_qparams()
        scale, zp = float(s), int(z)
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)


def mnist_test(folder):
    def read(name):
        with gzip.open(os.path.join(folder, name)) as f:
            return f.read()
    img = np.frombuffer(read("t10k-images-idx3-ubyte.gz")[16:], np.uint8).reshape(-1, 784)
    lab = np.frombuffer(read("t10k-labels-idx1-ubyte.gz")[8:], np.uint8).astype(np.int64)
    x = ((img.astype(np.float32) / np.float32(255)) - np.float32(0.1307)) / np.float32(0.3081)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(lab)


def main():
    t, meta = load(sys.argv[1])
    arch = json.loads(meta["arch"])
    comp = json.loads(meta.get("compression", "{}"))
    assert arch["arch"] == "mlp", "only mlp checkpoints"
    names = ["fc%d" % (i + 1) for i in range(len(arch["hidden"]) + 1)]
    layers = [(n, weight(t, comp, n), torch.from_numpy(t[n + ".bias"])) for n in names]
    folder = sys.argv[2] if len(sys.argv) > 2 else glob.glob(os.path.expanduser("~/go/pkg/mod/github.com/petar/*/data"))[0]
    x, y = mnist_test(folder)
    correct = 0
    with torch.no_grad():
        for b in range(0, len(y), 1000):
            h = x[b : b + 1000]
            for i, (n, w, bias) in enumerate(layers):
                h = quantize_input(h, t, comp, n) @ w.T + bias
                if i < len(layers) - 1:
                    h = torch.relu(h)
            correct += int((h.argmax(1) == y[b : b + 1000]).sum())
    print("accuracy %.4f" % (correct / len(y)))


if __name__ == "__main__":
    main()
