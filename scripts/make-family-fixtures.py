#!/usr/bin/python3
"""Writes test/fixtures/families/: torchvision's CNN families, reduced in width and depth, with random
weights, exported by torch.onnx.export at opsets 13 and 17, and a gated network written the way a
PyTorch user would write an LKAM (run by hand, never by tests or CI).

Each family keeps its torchvision building blocks (InvertedResidual, Fire, _DenseBlock, MBConv with
squeeze-excitation, mobilenet_v3's InvertedResidual, ShuffleNetV2's InvertedResidual, CNBlock), so the
exported graph has the ops and patterns of the full network; only channel counts and block counts shrink.
For each family, <name>.json records the input (a formula, below) and PyTorch's output in eval mode;
<name>-opset<k>.onnx are the exports.

Input: x[i] = ((i * 7919) % 1000) / 500 - 1 (float32), i over the flat [N, C, H, W] index; the tests
compute the same values.
Needs Debian's python3-torch, python3-torchvision and python3-onnx.
Usage: /usr/bin/python3 scripts/make-family-fixtures.py
"""
import io
import json
import os

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import efficientnet, mobilenetv3
from torchvision.models.convnext import CNBlockConfig, ConvNeXt
from torchvision.models.densenet import DenseNet
from torchvision.models.mobilenetv2 import MobileNetV2
from torchvision.models.shufflenetv2 import ShuffleNetV2
from torchvision.models.squeezenet import Fire

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "families")
OPSETS = (13, 17)
N, C, H, W = 2, 3, 32, 32
CLASSES = 10


def pattern_input(shape):
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.int64)
    return (((i * 7919) % 1000).to(torch.float64) / 500 - 1).to(torch.float32).reshape(shape)


def randomize(model, seed):
    """Random weights, and batch-norm statistics away from their defaults so that folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def squeezenet1_1():
    """squeezenet1_1's layout (conv 3x3/2, ceil-mode max pools, Fire modules, conv classifier), narrower."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(16, 4, 8, 8), Fire(16, 4, 8, 8),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(16, 8, 16, 16), Fire(32, 8, 16, 16),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(32, 8, 16, 16),
            )
            self.classifier = nn.Sequential(nn.Dropout(p=0.5), nn.Conv2d(32, CLASSES, kernel_size=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

        def forward(self, x):
            return torch.flatten(self.classifier(self.features(x)), 1)
    return Net()


def efficientnet_b0():
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return efficientnet.EfficientNet(setting, dropout=0.2, num_classes=CLASSES, last_channel=128)


def mobilenet_v3_small():
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return mobilenetv3.MobileNetV3(setting, 128, num_classes=CLASSES)


def convnext_tiny():
    setting = [CNBlockConfig(8, 16, 1), CNBlockConfig(16, 32, 1), CNBlockConfig(32, 48, 1), CNBlockConfig(48, None, 1)]
    return ConvNeXt(setting, stochastic_depth_prob=0.1, layer_scale=0.5, num_classes=CLASSES)


class TorchLKAM(nn.Module):
    """An LKAM as a PyTorch user writes one: 1x1 conv bank, pooling, FC, clamp or sigmoid."""

    def __init__(self, cin, switches, bank, pool, kind):
        super().__init__()
        self.bank = nn.Conv2d(cin, bank, 1)
        self.fc = nn.Linear(bank, switches)
        self.pool, self.kind = pool, kind

    def forward(self, x):
        b = self.bank(x)
        p = torch.amax(b, dim=(2, 3)) if self.pool == "max" else F.adaptive_avg_pool2d(b, 1).flatten(1)
        z = self.fc(p)
        return torch.clamp(z, 0, 1) if self.kind == "hard" else torch.sigmoid(z)


class TorchGated(nn.Module):
    def __init__(self, cin, cout, pool, kind, view):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())
        self.lkam = TorchLKAM(cin, cout, 4, pool, kind)
        self.view = view

    def forward(self, x):
        s = self.lkam(x)
        y = self.block(x)
        return y * (s.view(s.size(0), -1, 1, 1) if self.view else s[:, :, None, None])


def gated():
    """Two gated blocks (max-pooled clamp switches through a computed view; average-pooled sigmoid through indexing)."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        TorchGated(8, 12, "max", "hard", True),
        nn.MaxPool2d(2),
        TorchGated(12, 16, "max", "hard", False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES),
    )
    randomize(net, 99)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, TorchLKAM):
                # Switches spread so that, per image, some kernels are off and some on.
                m.fc.weight.copy_(torch.rand(m.fc.weight.shape, generator=g) * 0.6 - 0.3)
                m.fc.bias.copy_(torch.rand(m.fc.bias.shape, generator=g) * 1.6 - 0.6)
    return net


FAMILIES = {
    "mobilenet_v2": lambda: MobileNetV2(num_classes=CLASSES, width_mult=0.25, inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2], [6, 64, 1, 2], [6, 96, 1, 1]]),
    "squeezenet1_1": squeezenet1_1,
    "densenet121": lambda: DenseNet(growth_rate=8, block_config=(2, 3, 4, 2), num_init_features=16, bn_size=2, num_classes=CLASSES),
    "efficientnet_b0": efficientnet_b0,
    "mobilenet_v3_small": mobilenet_v3_small,
    "shufflenet_v2_x0_5": lambda: ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=CLASSES),
    "convnext_tiny": convnext_tiny,
    "gated": gated,
}


def export(model, x, opset):
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    x = pattern_input((N, C, H, W))
    total = 0
    for name, make in FAMILIES.items():
        torch.manual_seed(0)
        model = make()
        if name != "gated":
            randomize(model, 1)
        model.eval()
        with torch.no_grad():
            y = model(x)
        record = {
            "family": name,
            "producer": "PyTorch %s, torchvision %s, torch.onnx.export (TorchScript exporter), eval mode" % (torch.__version__, torchvision.__version__),
            "input_shape": [N, C, H, W],
            "input": "x[i] = ((i * 7919) % 1000) / 500 - 1",
            "parameters": sum(p.numel() for p in model.parameters()),
            "opsets": {},
            "output_shape": list(y.shape),
            "output": [float(v) for v in y.reshape(-1).tolist()],
        }
        for opset in OPSETS:
            data = export(model, x, opset)
            path = os.path.join(OUT, "%s-opset%d.onnx" % (name, opset))
            with open(path, "wb") as f:
                f.write(data)
            total += len(data)
            ops = sorted({n.op_type for n in onnx.load_from_string(data).graph.node})
            record["opsets"][str(opset)] = {"file": os.path.basename(path), "bytes": len(data), "ops": ops}
            print("%-20s opset %d: %7d bytes, %s" % (name, opset, len(data), ", ".join(ops)))
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
