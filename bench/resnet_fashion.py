#!/usr/bin/python3
"""recipes/resnet-fashion.yaml in PyTorch: the reference its accuracy and time are compared with.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/resnet_fashion.py [--threads 1] [--epochs 5]

The same network (tools/torchref/shrinkmodel.py builds the recipe's model section: ResNet-20,
width 16, shrink's tensor names), data (Fashion-MNIST, (x/255 - 0.2860)/0.3530, reshuffled every
epoch, batch 128 with a short last batch), optimizer (torch.optim.SGD, lr 0.1, momentum 0.9,
weight_decay 5e-4, the learning rate halved after every epoch: ExponentialLR(gamma=0.5), which is
the recipe's lr_decay) and epochs. Initialization is PyTorch's default, as shrink's is. Prints one
JSON line per epoch (train loss, test accuracy, seconds) and a summary line.
--threads 1 is one core (set OPENBLAS_NUM_THREADS=1 too); --threads 2 is torch.set_num_threads(1)
with OpenBLAS's two threads, PyTorch's best two-core setting here (see bench/torch_bench.py).
"""
import argparse
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "torchref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mnistdata  # noqa: E402
import shrinkmodel  # noqa: E402

SECTION = {"arch": "resnet", "depth": 20, "width": 16, "classes": 10, "input": [1, 28, 28]}


def evaluate(m, x, y, batch=1000):
    m.eval()
    correct, loss = 0, 0.0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out = m(x[i:i + batch])
            loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch]).sum().item()
    m.train()
    return correct / len(x), loss / len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, choices=(1, 2), default=1)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--data-dir", default=None, help="Fashion-MNIST's IDX files (default: shrink's)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    xtr, ytr = mnistdata.load("fashion-mnist", "train", [1, 28, 28], a.data_dir)
    xte, yte = mnistdata.load("fashion-mnist", "test", [1, 28, 28], a.data_dir)
    m = shrinkmodel.build(SECTION)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    total = time.perf_counter()
    train_time = 0.0
    for epoch in range(1, a.epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(len(xtr))
        loss_sum, n = 0.0, 0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            n += len(idx)
        sched.step()
        secs = time.perf_counter() - t
        train_time += secs
        acc, test_loss = evaluate(m, xte, yte)
        print(json.dumps({"epoch": epoch, "train_loss": round(loss_sum / n, 4), "test_accuracy": acc,
                          "test_loss": round(test_loss, 4), "train_seconds": round(secs, 1)}), flush=True)
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "epochs": a.epochs,
                      "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", ""),
                      "test_accuracy": acc, "train_seconds": round(train_time, 1),
                      "wall_seconds": round(time.perf_counter() - total, 1)}), flush=True)


if __name__ == "__main__":
    main()
