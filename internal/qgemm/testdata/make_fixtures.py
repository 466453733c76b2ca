"""Writes torch_quant.json, the PyTorch reference for package qgemm's tests.

Run with Debian's torch: /usr/bin/python3 make_fixtures.py (deterministic).

observers: torch.ao.quantization.MinMaxObserver(dtype=torch.quint8,
  qscheme=torch.per_tensor_affine, reduce_range=R) on x, then
  calculate_qparams() and torch.quantize_per_tensor(x, scale, zp,
  torch.quint8).int_repr(): qgemm.Quantize must give the same scale, zero
  point and codes, bit for bit.
linear: torch.ao.quantization.quantize_dynamic on nn.Linear(in, out)
  (qint8 weights, per tensor or per channel), run on x: qgemm's
  Quantize(Reduced) + MatMul + Dequantize must give y to within float
  rounding. PyTorch's dynamic kernels choose the activation scale in double
  precision (torch._choose_qparams_per_tensor), which can differ from the
  observer's float32 scale by one ulp; the inputs here are ones where the
  two agree, so the codes are the same and only the float epilogue's
  rounding differs.
"""
import json
import warnings

import numpy as np
import torch
from torch.ao.quantization import MinMaxObserver

warnings.filterwarnings("ignore")  # reduce_range's deprecation notice


def f32list(a):
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def observe(x, rr):
    obs = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=rr)
    obs(x)
    s, z = obs.calculate_qparams()
    q = torch.quantize_per_tensor(x, float(s), int(z), torch.quint8).int_repr()
    return float(s), int(z), q


def main():
    rs = np.random.RandomState(20)
    inputs = {
        "normal": (rs.randn(3, 37) * 1.7 + 0.4),
        "wide": (rs.randn(2, 50) * 300.0),
        "positive": rs.uniform(0.1, 6.0, size=(2, 9)),
        "negative": -rs.uniform(0.1, 6.0, size=(2, 9)),
        "zeros": np.zeros((2, 5)),
        "constant": np.full((1, 7), 0.37),
        "tiny": np.array([[-0.3, 1e-9, -1e-9, 0.7, 0.0, 0.11, 2.5e-3, -0.149999]]),
        "halves": np.array([[-1.0, 0.0, 1.0, 0.5, 1.5, 2.5, -0.5, 3.0]]) * (3.0 / 255.0),
    }
    out = {"observers": [], "linear": []}
    for name, x in inputs.items():
        x = torch.from_numpy(x.astype(np.float32))
        for rr in (False, True):
            s, z, q = observe(x, rr)
            out["observers"].append({
                "name": name, "reduce_range": rr, "shape": list(x.shape), "x": f32list(x),
                "scale": s, "zero_point": z, "q": [int(v) for v in q.ravel()],
            })

    torch.manual_seed(3)
    for per_channel in (False, True):
        lin = torch.nn.Linear(28, 19)
        qconfig = (torch.ao.quantization.per_channel_dynamic_qconfig if per_channel
                   else torch.ao.quantization.default_dynamic_qconfig)
        qm = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: qconfig}, dtype=torch.qint8)
        w, b = qm[0]._packed_params._weight_bias()
        if per_channel:
            ws = w.q_per_channel_scales().to(torch.float32)
            assert int(w.q_per_channel_zero_points().abs().max()) == 0
        else:
            ws = torch.tensor([w.q_scale()], dtype=torch.float32)
            assert w.q_zero_point() == 0
        trial = 0
        cases = 0
        while cases < 3:
            x = torch.from_numpy((np.random.RandomState(100 + trial).randn(5, 28) * 2 + 0.3).astype(np.float32))
            trial += 1
            s, z, _ = observe(x, True)
            s2, z2 = torch._choose_qparams_per_tensor(x, True)
            if np.float32(s2) != np.float32(s) or z2 != z:
                continue  # see the docstring
            y = qm(x)
            out["linear"].append({
                "per_channel": per_channel, "in": 28, "out": 19, "batch": 5,
                "weight": [int(v) for v in w.int_repr().ravel()], "weight_scale": f32list(ws),
                "bias": f32list(b.detach()), "x": f32list(x), "y": f32list(y.detach()),
                "scale": s, "zero_point": z,
            })
            cases += 1
    out["torch"] = torch.__version__
    out["engine"] = torch.backends.quantized.engine
    with open("torch_quant.json", "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
