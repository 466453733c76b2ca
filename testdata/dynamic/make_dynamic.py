#!/usr/bin/python3
"""Fixtures for dynamic quantization as PyTorch does it (README.md here states the contract).

    /usr/bin/python3 testdata/dynamic/make_dynamic.py

Writes
  qparams.safetensors   ATen's ChooseQuantizationParams (torch._choose_qparams_per_tensor) on
                        chosen ranges: the rule dynamic operators apply to each input tensor
  CASE.safetensors      a small float model, trained a little on a seeded synthetic task, and
                        what torch.ao.quantization.quantize_dynamic({nn.LSTM, nn.Linear},
                        dtype=torch.qint8) makes of it: every weight's int8 values and scale,
                        and the quantized model's logits batch by batch

Deterministic (seeded per case, one thread): running it twice writes identical files. Needs
PyTorch 1.13 (Debian's python3-torch runs the onednn quantized engine; fbgemm's arithmetic is the
same to float rounding) and numpy.
"""
import json
import os
import sys
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "safetensors"))  # stlite.py

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import stlite  # noqa: E402

torch.set_num_threads(1)


# --- ChooseQuantizationParams ---------------------------------------------------------------------

def qparams():
    """Ranges that reach every branch: zero, one-sided, tiny (the 6.1e-5 floor, one side zero or
    both sides), huge, ties of the zero point, and random ones."""
    gen = torch.Generator().manual_seed(7)
    ranges = [(0.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (-1.0, 1.0), (-0.3, 2.7), (-2.7, 0.3),
              (0.0, 1e-6), (-1e-6, 0.0), (-1e-6, 2e-6), (-3e-7, 1e-9), (1e-3, 2e-3), (-5.0, -1.0),
              (-1e30, 1e30), (-3e38, 3e38), (-1e-38, 1e-38), (-127.0, 127.0), (-0.5, 126.5),
              (-63.5, 63.5), (-1.5, 125.5), (-2.5, 124.5), (-100.0, 27.0), (-27.0, 100.0)]
    for _ in range(300):
        a = float(torch.randn((), generator=gen) * 10 ** float(torch.randint(-6, 4, (), generator=gen)))
        b = a + abs(float(torch.randn((), generator=gen))) * 10 ** float(torch.randint(-6, 4, (), generator=gen))
        ranges.append((a, b))
    out = {}
    for name, reduce in (("reduced", True), ("full", False)):
        lo, hi, sc, zp = [], [], [], []
        for a, b in ranges:
            t = torch.tensor([a, b], dtype=torch.float32)
            s, z = torch._choose_qparams_per_tensor(t, reduce)
            lo.append(t[0].item())
            hi.append(t[1].item())
            sc.append(s)
            zp.append(z)
        out[name + ".lo"] = np.array(lo, dtype=np.float32)
        out[name + ".hi"] = np.array(hi, dtype=np.float32)
        # The operators use the scale as float32 (fbgemm's float scale; onednn's 1/scale).
        out[name + ".scale"] = np.array(sc, dtype=np.float32)
        out[name + ".zero_point"] = np.array(zp, dtype=np.int64)
    meta = {"what": "torch._choose_qparams_per_tensor(tensor([lo, hi]), reduce_range) for .reduced "
            "(reduce_range=True, quint8 0..127) and .full (False, 0..255); scale rounded to float32",
            "torch": torch.__version__, "script": "testdata/dynamic/make_dynamic.py"}
    stlite.save(os.path.join(HERE, "qparams.safetensors"), out, meta)


# --- models -----------------------------------------------------------------------------------------

class SeqNet(nn.Module):
    """shrink's lstm preset: lstm (batch_first, the output sequence), its last step, fc."""

    def __init__(self, features, hidden, layers, classes):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1, :])


class MLP(nn.Module):
    def __init__(self, features, hidden, classes):
        super().__init__()
        widths = [features] + hidden + [classes]
        for i in range(len(widths) - 1):
            setattr(self, "fc%d" % (i + 1), nn.Linear(widths[i], widths[i + 1]))
        self.n = len(widths) - 1

    def forward(self, x):
        for i in range(1, self.n + 1):
            x = getattr(self, "fc%d" % i)(x)
            if i < self.n:
                x = F.relu(x)
        return x


class Case:
    def __init__(self, name, desc, section, build, n, eval_batch, steps=150):
        self.name, self.desc, self.section, self.build = name, desc, section, build
        self.n, self.eval_batch, self.steps = n, eval_batch, steps


CASES = [
    Case("lstm_preset", "arch lstm, hidden 32, on [10, 12] sequences, 10 classes",
         {"arch": "lstm", "hidden": 32, "input": [10, 12], "classes": 10},
         lambda: SeqNet(12, 32, 1, 10), n=512, eval_batch=96),
    Case("lstm_2layer", "arch lstm, hidden 20, num_layers 2, on [9, 7] sequences, 5 classes",
         {"arch": "lstm", "hidden": 20, "num_layers": 2, "input": [9, 7], "classes": 5},
         lambda: SeqNet(7, 20, 2, 5), n=512, eval_batch=128),
    Case("mlp", "arch mlp 40-32-16-6 (quantized::linear_dynamic alone)",
         {"arch": "mlp", "inputs": 40, "hidden": [32, 16], "classes": 6},
         lambda: MLP(40, [32, 16], 6), n=512, eval_batch=100),
]


def task(case, gen):
    """A seeded classification task: each class a random mean pattern, plus noise."""
    shape = case.section["input"] if "input" in case.section else [case.section["inputs"]]
    classes = case.section["classes"]
    means = torch.randn([classes] + shape, generator=gen)
    y = torch.randint(classes, (case.n,), generator=gen)
    x = means[y] * 0.25 + torch.randn([case.n] + shape, generator=gen)
    return x, y


def make(case):
    seed = zlib.crc32(case.name.encode())
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = case.build()
    x, y = task(case, gen)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(case.steps):
        i = torch.randint(case.n, (64,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)

    tensors = {k: v.numpy() for k, v in state.items()}
    for name, w in quantized_weights(qmodel).items():
        assert w.qscheme() == torch.per_tensor_affine and w.q_zero_point() == 0, name
        tensors["q." + name] = w.int_repr().numpy()
        tensors["q." + name + "_scale"] = np.array([w.q_scale()], dtype=np.float32)
    with torch.no_grad():
        tensors["float.logits"] = model(x).numpy()
        # Activation ranges are measured per call: batch as shrink's eval does, in order, the
        # last batch short.
        tensors["int8.logits"] = torch.cat([qmodel(x[i:i + case.eval_batch])
                                            for i in range(0, case.n, case.eval_batch)]).numpy()
    tensors["x"], tensors["y"] = x.numpy(), y.numpy()
    meta = {
        "model": json.dumps(case.section, separators=(",", ":")),
        "case": case.desc,
        "torch": torch.__version__,
        "engine": torch.backends.quantized.engine,
        "eval_batch": str(case.eval_batch),
        "quantize": "torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)",
        "script": "testdata/dynamic/make_dynamic.py",
    }
    stlite.save(os.path.join(HERE, case.name + ".safetensors"), tensors, meta)
    f, q = tensors["float.logits"], tensors["int8.logits"]
    print("%-12s float acc %.3f, int8 acc %.3f, argmax agreement %.4f, median |int8-float|/|float| %.2e" % (
        case.name, (f.argmax(1) == y.numpy()).mean(), (q.argmax(1) == y.numpy()).mean(),
        (f.argmax(1) == q.argmax(1)).mean(), np.median(np.abs(q - f) / np.abs(f))))


def quantized_weights(qmodel):
    """Every quantized weight by its float model's state_dict name."""
    out = {}
    for mname, mod in qmodel.named_modules():
        if isinstance(mod, torch.ao.nn.quantized.dynamic.LSTM):
            for k, w in mod._weight_bias()["weight"].items():
                out[mname + "." + k] = w
        elif isinstance(mod, torch.ao.nn.quantized.dynamic.Linear):
            out[mname + ".weight"] = mod.weight()
    return out


if __name__ == "__main__":
    qparams()
    for c in CASES:
        make(c)
