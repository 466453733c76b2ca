# Writes the torch.onnx.export fixtures onnx/torch_test.go reads: a tiny conv
# net (with a BatchNorm the exporter folds into the conv) and a tiny LSTM
# classifier, each exported at opset 13 with a dynamic batch dimension, plus
# its input, PyTorch's output on it and its state_dict (NAME_state.npz).
#
# Run from this folder with Debian's interpreter (PyTorch 1.13, NumPy):
#   /usr/bin/python3 gen.py
import numpy as np
import torch
from torch import nn


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 8, 3)
        self.fc = nn.Linear(8 * 2 * 2, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(input_size=3, hidden_size=6, batch_first=True)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def export(name, model, x):
    model.eval()
    with torch.no_grad():
        y = model(x)
    torch.onnx.export(
        model, x, f"{name}.onnx", opset_version=13, do_constant_folding=True,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )
    np.save(f"{name}_input.npy", x.numpy())
    np.save(f"{name}_output.npy", y.numpy())
    np.savez(f"{name}_state.npz", **{k: v.numpy() for k, v in model.state_dict().items()})


torch.manual_seed(0)
conv = ConvNet()
with torch.no_grad():  # running statistics a trained net would have
    conv.bn1.running_mean.uniform_(-0.5, 0.5)
    conv.bn1.running_var.uniform_(0.5, 2.0)
    conv.bn1.weight.uniform_(0.5, 1.5)
    conv.bn1.bias.uniform_(-0.2, 0.2)
export("convnet", conv, torch.randn(2, 1, 8, 8))
export("lstm", LSTMClassifier(), torch.randn(2, 5, 3))
