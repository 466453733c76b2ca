#!/usr/bin/python3
"""Rebuild a shrink dynamic-int8 LSTM checkpoint as PyTorch's own quantized model and check it.

    shrink predict runs/lstm-mnist/quantize/model.safetensors --recipe recipes/lstm-mnist.yaml \\
        --out /tmp/shrink_logits.npy
    /usr/bin/python3 docs/lstm_dynamic_check.py runs/lstm-mnist/quantize/model.safetensors \\
        --logits /tmp/shrink_logits.npy --from-float runs/lstm-mnist/train/model.safetensors

The checkpoint holds the lstm preset (lstm, last step, fc) quantized with the keys that reproduce
torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8) (see
docs/QUANTIZATION.md). PyTorch cannot read its own quantized state_dict from safetensors (it holds
packed TorchScript objects), so this script takes the route a PyTorch user would: build the float
module, quantize_dynamic it for the structure, then put shrink's stored integers and scales into
the packed parameters (nn.quantized.dynamic.Linear.set_weight_bias for the linear layer, the
quantized cell parameters quantize_dynamic builds for each LSTM layer). It checks that PyTorch now
holds exactly shrink's int8 weights and scales, runs the MNIST test set in sequence layout batch by
batch (data.batch_size, in order: activation ranges are per batch), prints the accuracy, and with
--logits compares PyTorch's logits with shrink's (argmax agreement, median relative error).
With --from-float, it also runs quantize_dynamic itself on the float checkpoint the quantize stage
started from and checks that PyTorch's int8 weights and scales equal shrink's.

Needs PyTorch 1.13 (Debian's python3-torch) and numpy; tools/torchref/mnistdata.py reads MNIST.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "torchref"))
import mnistdata  # noqa: E402
from torch.ao.nn.quantized.dynamic.modules.rnn import PackedParameter  # noqa: E402

DTYPES = {"F32": np.float32, "I8": np.int8, "I32": np.int32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy()
    return out, meta


class SeqNet(nn.Module):
    """shrink's lstm preset: nn.LSTM(batch_first=True), its last step, nn.Linear."""

    def __init__(self, features, hidden, layers, classes):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1, :])


def qtensor(t, name):
    """The stored int8 weight NAME and its per-tensor NAME_scale as a qint8 tensor."""
    scale = t[name + "_scale"]
    if scale.shape != (1,) or name + "_zero_point" in t:
        raise SystemExit("%s: this script handles symmetric per-tensor weights (quantize_dynamic's)" % name)
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(t[name]), float(scale[0]), 0)


def rebuild(path):
    t, meta = read_safetensors(path)
    spec = json.loads(meta["arch"])
    if spec.get("arch") != "lstm":
        raise SystemExit("%s: not the lstm preset (arch %s)" % (path, spec.get("arch")))
    hidden = spec["hidden"][0] if isinstance(spec["hidden"], list) else spec["hidden"]
    layers, (steps, features), classes = spec.get("num_layers", 1), spec["input"], spec["classes"]
    model = SeqNet(features, hidden, layers, classes).eval()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    bias = {k: torch.from_numpy(v) for k, v in t.items() if ".bias" in k}
    for k in range(layers):
        w_ih, w_hh = qtensor(t, "lstm.weight_ih_l%d" % k), qtensor(t, "lstm.weight_hh_l%d" % k)
        b_ih, b_hh = bias["lstm.bias_ih_l%d" % k], bias["lstm.bias_hh_l%d" % k]
        # What LSTM.from_float builds per layer: packed weights with their biases, reduce_range
        # True (the module's version 2).
        cell = torch.ops.quantized.make_quantized_cell_params_dynamic(
            torch.ops.quantized.linear_prepack(w_ih, b_ih), torch.ops.quantized.linear_prepack(w_hh, b_hh),
            b_ih, b_hh, True)
        qmodel.lstm._all_weight_values[k] = PackedParameter(cell)
    qmodel.fc.set_weight_bias(qtensor(t, "fc.weight"), bias["fc.bias"])

    # PyTorch now holds shrink's integers and scales, bit for bit.
    held = dict(qmodel.lstm._weight_bias()["weight"])
    held = {"lstm." + k: v for k, v in held.items()}
    held["fc.weight"] = qmodel.fc.weight()
    for name, w in held.items():
        assert np.array_equal(w.int_repr().numpy(), t[name]), name
        assert np.float32(w.q_scale()) == t[name + "_scale"][0], name
    print("%d int8 weights and scales in PyTorch equal the checkpoint's" % len(held))
    return qmodel, t, (steps, features), classes, hidden, layers


def check_from_float(path, t_int8, shape, classes, hidden, layers):
    """quantize_dynamic on the float checkpoint gives the int8 checkpoint's integers and scales."""
    t, _ = read_safetensors(path)
    model = SeqNet(shape[1], hidden, layers, classes).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()})
    q = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    held = {"lstm." + k: v for k, v in q.lstm._weight_bias()["weight"].items()}
    held["fc.weight"] = q.fc.weight()
    for name, w in held.items():
        if not np.array_equal(w.int_repr().numpy(), t_int8[name]) or np.float32(w.q_scale()) != t_int8[name + "_scale"][0]:
            raise SystemExit("%s: PyTorch's quantize_dynamic gives other integers or scale than shrink" % name)
    print("quantize_dynamic of %s gives shrink's %d int8 weights and scales, bit for bit" % (path, len(held)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--logits", help="shrink predict's .npy output for the same checkpoint and recipe")
    ap.add_argument("--batch", type=int, default=128, help="data.batch_size (default 128)")
    ap.add_argument("--data-dir", help="the MNIST IDX files (default: where shrink finds them)")
    ap.add_argument("--from-float", help="the float checkpoint the quantize stage started from (runs/lstm-mnist/train/model.safetensors)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    qmodel, t, shape, classes, hidden, layers = rebuild(args.checkpoint)
    if args.from_float:
        check_from_float(args.from_float, t, shape, classes, hidden, layers)
    x, y = mnistdata.load("mnist", "test", list(shape), args.data_dir)
    with torch.no_grad():
        logits = torch.cat([qmodel(x[i:i + args.batch]) for i in range(0, len(x), args.batch)]).numpy()
    print("PyTorch's quantized model: accuracy %.4f on %d test images" % ((logits.argmax(1) == y.numpy()).mean(), len(y)))
    if args.logits:
        mine = np.load(args.logits)
        agree = (mine.argmax(1) == logits.argmax(1)).mean()
        diff = np.abs(mine - logits)
        rel = diff / np.abs(logits)
        # A logit near zero has a large relative error from a tiny difference; against its row's
        # largest logit the worst case says how far apart the two models really are.
        row = diff / np.abs(logits).max(1, keepdims=True)
        print("shrink vs PyTorch: argmax agreement %.4f, median relative error %.2e, largest %.2e "
              "(%.2e of its row's largest |logit|); %d of %d samples off by more than 1e-4 of theirs" % (
                  agree, np.median(rel), rel.max(), row.max(), (row.max(1) > 1e-4).sum(), len(row)))
        if agree < 0.998 or np.median(rel) > 1e-4:
            raise SystemExit("shrink's logits do not match PyTorch's quantized model")


if __name__ == "__main__":
    main()
