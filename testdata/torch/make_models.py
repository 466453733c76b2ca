#!/usr/bin/python3
"""Make the PyTorch fixtures model/torch_test.go checks shrink against.

    /usr/bin/python3 testdata/torch/make_models.py

Needs Debian's python3-torch (1.13) and numpy; writes, next to this script:
  mlp.safetensors     784-300-100-10 nn.Linear MLP (default init, torch.manual_seed(3))
  lenet5.safetensors  LeNet-5 as the spec defines it (conv1 1->6 5x5, pool, conv2 6->16 5x5,
                      pool, fc 256->120->84->10, ReLU), torch.manual_seed(4)
each with the state_dict tensors plus `x` (8 inputs, [8, 784] or [8, 1, 28, 28], N(0,1)) and
`logits` (model(x) in float32, eval mode). shrink must reproduce `logits` to 1e-5.
Deterministic: run it twice and the files are byte-identical.
"""
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "safetensors"))  # stlite.py, the small reader/writer

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import stlite  # noqa: E402

torch.set_num_threads(1)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def write(name, model, x):
    model.eval()
    with torch.no_grad():
        logits = model(x)
    tensors = {k: v.numpy() for k, v in model.state_dict().items()}
    tensors["x"] = x.numpy()
    tensors["logits"] = logits.numpy()
    stlite.save(os.path.join(HERE, name), tensors,
                {"torch": torch.__version__, "script": "testdata/torch/make_models.py"})


def main():
    torch.manual_seed(3)
    mlp = MLP()
    write("mlp.safetensors", mlp, torch.randn(8, 784))
    torch.manual_seed(4)
    lenet = LeNet5()
    write("lenet5.safetensors", lenet, torch.randn(8, 1, 28, 28))
    print("wrote mlp.safetensors and lenet5.safetensors")


if __name__ == "__main__":
    main()
