#!/usr/bin/python3
"""Writes the ONNX files that `npm run bench -- model --onnx FILE` times, into bench/onnx/ (git-ignored).

torchvision networks with seeded random weights (batch-norm statistics randomised too, so that folding
them is not the identity), exported by torch.onnx.export at opset 13 with a batch of 1:
resnet18 at 224x224 and at 32x32, mobilenet_v2 at 224x224.
Needs Debian's python3-torch and python3-torchvision (apt-get install -y python3-torch python3-torchvision).
Usage: /usr/bin/python3 bench/make-onnx-models.py [name ...]
"""
import os
import sys

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "onnx")

MODELS = {
    "resnet18-224": (torchvision.models.resnet18, 224),
    "resnet18-32": (torchvision.models.resnet18, 32),
    "mobilenet_v2-224": (torchvision.models.mobilenet_v2, 224),
}


def build(name):
    make, side = MODELS[name]
    torch.manual_seed(20241204)
    model = make(weights=None)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    model.eval()
    x = torch.randn(1, 3, side, side)
    path = os.path.join(OUT, f"{name}.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"], do_constant_folding=True)
    print(f"wrote {path}")


def main(names):
    os.makedirs(OUT, exist_ok=True)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"unknown model {', '.join(unknown)}; the known ones are: {', '.join(MODELS)}")
    for name in names or MODELS:
        build(name)


if __name__ == "__main__":
    main(sys.argv[1:])
