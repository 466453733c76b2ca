#!/usr/bin/python3
"""Time in PyTorch the work bench/bench_test.go times in shrink.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --threads 1 --mnist DIR
    /usr/bin/python3 bench/torch_bench.py --threads 2 --mnist DIR
    /usr/bin/python3 bench/torch_bench.py --threads 1 --mnist DIR --only Infer   # inference only

Needs Debian's python3-torch (1.13) and numpy. Prints one JSON object per benchmark
({"name": "TrainStep/mlp", "ns": ...}) with the median of its repetitions.
--threads 1 is one core: torch.set_num_threads(1), and OPENBLAS_NUM_THREADS=1 must be in
the environment (set_num_threads does not limit OpenBLAS). --threads 2 is PyTorch's best
two-core setting here: torch.set_num_threads(1) with OpenBLAS's two threads (two torch
threads oversubscribe the cores; see shared/notes/gorgonia-perf.md).
The models, batch sizes, optimizer (Adam, lr 1e-3) and data (MNIST, pixel/255 then
(x-0.1307)/0.3081, shuffled, batch 128, last batch short) are shrink's.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class SeqLSTM(nn.Module):
    """recipes/lstm-mnist.yaml's network: a 128-unit LSTM over 28 steps of 28 pixels, its last
    step, a linear layer."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(28, 128, batch_first=True), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1, :])


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    """torchvision's BasicBlock, as shrink's resnet preset builds it (1x1 conv + batch norm
    shortcut where the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + (x if self.downsample is None else self.downsample(x)))


class ResNet20(nn.Module):
    """The CIFAR ResNet-20 of shrink's resnet preset (depth 20, width 16)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        blocks, cin = [], 16
        for stage in range(3):
            w = 16 << stage
            for i in range(3):
                blocks.append(Block(cin, w, 2 if stage > 0 and i == 0 else 1))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# Debian's torch 1.13 is built without fbgemm: its x86 int8 engine is oneDNN (supported engines
# qnnpack, onednn; onednn is the default and the faster on x86).
ENGINE = "onednn"


def infer_benchmarks(x, report, wanted):
    """bench/infer_test.go's BenchmarkInfer: inference of LeNet-300-100 (float, Deep
    Compression's pruned 4-bit weights, dynamic int8, static int8) and ResNet-20 (float, static int8) at
    batch 1 and 256. PyTorch has no faster path for unstructured zeros on CPU, so the Deep
    Compression model runs as a dense float one there. int8 is ENGINE: quantize_dynamic for
    LeNet-300-100, FX graph mode static quantization (batch norms folded, per-channel
    weights) for ResNet-20."""
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.backends.quantized.engine = ENGINE
    mlp = MLP().eval()
    dc = MLP().eval()
    with torch.no_grad():
        for layer, keep in ((dc.fc1, 0.08), (dc.fc2, 0.09), (dc.fc3, 0.26)):
            layer.weight.mul_((torch.rand_like(layer.weight) < keep).float())
    dynamic = quantize_dynamic(MLP().eval(), {nn.Linear}, dtype=torch.qint8)
    models = {"lenet300-float": (mlp, x),
              "lenet300-dc": (dc, x),
              "lenet300-int8": (dynamic, x),
              # PyTorch has one dynamic form (its engine picks the activations' range).
              "lenet300-int8full": (dynamic, x)}
    # FX static quantization, as recipes/quantize-static.yaml: per-channel int8 weights, 8-bit
    # inputs calibrated (MinMax) on 1280 training images; PyTorch fuses the ReLUs.
    prepared = prepare_fx(MLP().eval(), get_default_qconfig_mapping(ENGINE), example_inputs=(x[:8],))
    with torch.inference_mode():
        for i in range(10):
            prepared(x[i * 128:(i + 1) * 128])
    models["lenet300-static"] = (convert_fx(prepared), x)
    cifar = torch.randn(512, 3, 32, 32)
    if any("resnet20" in w for w in wanted):
        rf = ResNet20().eval()
        models["resnet20-float"] = (rf, cifar)
        rq = ResNet20().eval()
        prepared = prepare_fx(rq, get_default_qconfig_mapping(ENGINE), example_inputs=(cifar[:8],))
        with torch.inference_mode():
            for i in range(4):
                prepared(cifar[i * 64:(i + 1) * 64])
        models["resnet20-int8"] = (convert_fx(prepared), cifar)
    with torch.inference_mode():
        for name, (m, data) in models.items():
            for bs in (1, 256):
                full = "Infer/%s/batch=%d" % (name, bs)
                if not any(w in full for w in wanted):
                    continue
                xb = data[:bs].clone()
                heavy = "resnet" in name and bs > 1
                report(full, timed(lambda: m(xb), 7, 2 if heavy else (50 if bs > 1 else 300)))


def idx(path):
    with gzip.open(path, "rb") as f:
        b = f.read()
    magic = int.from_bytes(b[0:4], "big")
    if magic == 0x803:
        n, r, c = (int.from_bytes(b[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(b, np.uint8, offset=16).reshape(n, r * c)
    return np.frombuffer(b, np.uint8, offset=8)


def mnist(folder):
    x = idx(os.path.join(folder, "train-images-idx3-ubyte.gz")).astype(np.float32) / np.float32(255)
    x = (x - np.float32(0.1307)) / np.float32(0.3081)
    y = idx(os.path.join(folder, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def blas():
    """The BLAS library torch loaded (Debian's torch uses whatever libblas.so.3
    points to: install libopenblas0 so it is OpenBLAS, not the slow reference BLAS)."""
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return sorted(os.path.basename(os.path.dirname(p)) + "/" + os.path.basename(p) for p in libs)


def timed(fn, reps, inner=1):
    fn()  # warm up
    out = []
    for _ in range(reps):
        t = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter_ns() - t) / inner)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, choices=(1, 2), default=1)
    ap.add_argument("--mnist", required=True)
    ap.add_argument("--epochs", type=int, default=3, help="epoch repetitions")
    ap.add_argument("--only", default="", help="run benchmarks whose name contains this (LSTM: the LSTM ones; "
                    "ResNet: the ResNet-20 ones, which run only when asked for)")
    ap.add_argument("--fashion", default=os.environ.get("SHRINK_FASHION_MNIST_DIR") or "/usr/share/datasets/fashion-mnist",
                    help="Fashion-MNIST's IDX files (the ResNet benchmarks)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    x, y = mnist(a.mnist)
    print(json.dumps({"torch": torch.__version__, "blas": blas(), "threads": a.threads,
                      "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "")}), flush=True)
    results = []

    if a.only.startswith("Infer"):
        def report_infer(name, ns):
            print(json.dumps({"name": name, "ns": ns, "threads": a.threads}), flush=True)
        infer_benchmarks(x, report_infer, [a.only])
        return

    def report(name, ns):
        if a.only and a.only not in name:
            return
        results.append({"name": name, "ns": ns})
        print(json.dumps({"name": name, "ns": ns, "threads": a.threads}), flush=True)

    for name, make, shape in (("mlp", MLP, (784,)), ("lenet5", LeNet5, (1, 28, 28))):
        xs = x.reshape((-1,) + shape)
        m = make()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        xb, yb = xs[:128].clone(), y[:128].clone()

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(xb), yb).backward()
            opt.step()

        if not a.only or a.only in "TrainStep/" + name:
            report("TrainStep/" + name, timed(step, 7, 30))

        def epoch():
            perm = torch.randperm(xs.shape[0])
            for i in range(0, xs.shape[0], 128):
                idx_ = perm[i:i + 128]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(m(xs[idx_]), y[idx_]).backward()
                opt.step()

        if not a.only or a.only in "Epoch/" + name:
            report("Epoch/" + name, timed(epoch, a.epochs))
        m.eval()
        with torch.inference_mode():
            for bs in (1, 1000):
                xb2 = xs[:bs].clone()
                if not a.only or a.only in "Forward/%s/batch=%d" % (name, bs):
                    report("Forward/%s/batch=%d" % (name, bs), timed(lambda: m(xb2), 7, 200 if bs == 1 else 10))
        m.train()

    if "ResNet" in a.only:
        resnet(a, report)
        return

    # The LSTM of recipes/lstm-mnist.yaml: a training step at batch 128, and inference at batch
    # 1 and 256 in float and quantized as quantize_dynamic({nn.LSTM, nn.Linear}, qint8) does.
    xs = x.reshape(-1, 28, 28)
    m = SeqLSTM()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    xb, yb = xs[:128].clone(), y[:128].clone()

    def lstm_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(xb), yb).backward()
        opt.step()

    if not a.only or a.only in "LSTMTrainStep":
        report("LSTMTrainStep", timed(lstm_step, 7, 5))
    m.eval()
    q = torch.ao.quantization.quantize_dynamic(m, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        for kind, mod in (("float", m), ("int8", q)):
            for bs in (1, 256):
                name = "LSTMForward/%s/batch=%d" % (kind, bs)
                xb2 = xs[:bs].clone()
                if not a.only or a.only in name:
                    report(name, timed(lambda: mod(xb2), 7, 50 if bs == 1 else 3))


def resnet(a, report):
    """recipes/resnet-fashion.yaml's training (bench/resnet_fashion.py has the whole recipe):
    ResNet/step is one SGD step at batch 128 (median of 7 runs of 5), ResNet/epoch one shuffled
    pass over the 60,000 training images (a few steps warm up first; an epoch takes minutes)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "torchref"))
    import mnistdata
    import shrinkmodel
    xs, ys = mnistdata.load("fashion-mnist", "train", [1, 28, 28], a.fashion)
    m = shrinkmodel.build({"arch": "resnet", "depth": 20, "width": 16, "classes": 10, "input": [1, 28, 28]})
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    xb, yb = xs[:128].clone(), ys[:128].clone()

    def step(x=xb, y=yb):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        opt.step()

    if a.only in "ResNet/step":
        report("ResNet/step", timed(step, 7, 5))
    if a.only in "ResNet/epoch":
        for _ in range(3):
            step()
        t = time.perf_counter_ns()
        perm = torch.randperm(xs.shape[0])
        for i in range(0, xs.shape[0], 128):
            idx_ = perm[i:i + 128]
            step(xs[idx_], ys[idx_])
        report("ResNet/epoch", time.perf_counter_ns() - t)


if __name__ == "__main__":
    main()
