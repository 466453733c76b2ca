#!/usr/bin/python3
"""Time in PyTorch what bench/structured_test.go times in shrink: ResNet-20 on 1x28x28 images,
dense against structurally pruned to half its MACs (bench/testdata/resnet20-fashion-pruned.json,
the architecture recipes/resnet-fashion-compress.yaml's prune stage writes), built by
tools/torchref/shrinkmodel.py: eval forward at batch 1 and 256, and a training step at batch 128
(forward, cross-entropy, backward, Adam).

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/resnet_prune_torch.py

One core: torch.set_num_threads(1), and OPENBLAS_NUM_THREADS=1 in the environment. Prints one
JSON object per benchmark ({"name": "ResNetForward/dense/batch=256", "ns": ...}), the median of
--reps timed repetitions after one warm-up.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools", "torchref"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import shrinkmodel  # noqa: E402


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
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    with open(os.path.join(HERE, "testdata", "resnet20-fashion-pruned.json")) as f:
        pruned = json.load(f)
    models = {
        "dense": {"arch": "resnet", "depth": 20, "input": [1, 28, 28], "classes": 10},
        "pruned": pruned,
    }
    for bs in (1, 256):
        for name, section in models.items():
            m = shrinkmodel.build(section).eval()
            x = torch.randn(bs, 1, 28, 28)

            def fwd():
                with torch.no_grad():
                    m(x)
            print(json.dumps({"name": "ResNetForward/%s/batch=%d" % (name, bs), "ns": timed(fwd, args.reps)}))
    for name, section in models.items():
        m = shrinkmodel.build(section).train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        x, y = torch.randn(128, 1, 28, 28), torch.arange(128) % 10

        def step():
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        print(json.dumps({"name": "ResNetTrainStep/%s" % name, "ns": timed(step, args.reps)}))


if __name__ == "__main__":
    main()
