"""Evaluates a shrink checkpoint of LeNet-300-100 in PyTorch, where a factored
layer NAME is nn.Sequential(nn.Linear(in, k, bias=False), nn.Linear(k, out)):
exactly the state_dict names NAME.0.weight, NAME.1.weight, NAME.1.bias. Prints
{"accuracy": ..., "loss": ..., "samples": ...} on the MNIST test set, to compare
with `shrink eval CHECKPOINT --recipe RECIPE --format json`.

    /usr/bin/python3 stages/lowrank/testdata/torch_check.py CHECKPOINT MNIST_DIR
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        buf = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(buf[a:b], dtype="<f4").reshape(e["shape"]).copy())
    return out


def layer(sd, name):
    if name + ".0.weight" in sd:
        k, n = sd[name + ".0.weight"].shape
        m = sd[name + ".1.weight"].shape[0]
        return nn.Sequential(nn.Linear(n, k, bias=False), nn.Linear(k, m))
    m, n = sd[name + ".weight"].shape
    return nn.Linear(n, m)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data[4 + 4 * dims:], dtype=np.uint8).reshape(shape)


def main():
    ckpt, mnist = sys.argv[1], sys.argv[2]
    sd = load_safetensors(ckpt)
    net = nn.ModuleDict({n: layer(sd, n) for n in ("fc1", "fc2", "fc3")})
    net.load_state_dict(sd, strict=True)
    x = idx(mnist + "/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    x = torch.from_numpy((x - np.float32(0.1307)) / np.float32(0.3081))
    y = torch.from_numpy(idx(mnist + "/t10k-labels-idx1-ubyte.gz").astype(np.int64))
    with torch.no_grad():
        h = F.relu(net["fc1"](x))
        h = F.relu(net["fc2"](h))
        logits = net["fc3"](h)
        loss = F.cross_entropy(logits.double(), y).item()
        acc = (logits.argmax(1) == y).double().mean().item()
    print(json.dumps({"accuracy": round(acc, 6), "loss": round(loss, 6), "samples": len(y)}))


if __name__ == "__main__":
    main()
