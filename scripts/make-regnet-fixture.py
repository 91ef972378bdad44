#!/usr/bin/python3
"""Writes test/fixtures/families/regnet_x_400mf.json and regnet_x_400mf-opset{13,17}.onnx: torchvision's
RegNetX (ResBottleneckBlock: proj(x) + f(x), so the projection shortcut is the Add's first input) at
regnet_x_400mf's block structure with reduced width and depth, random weights, in the format of
scripts/make-family-fixtures.py (run by hand, never by tests or CI).

Needs Debian's python3-torch, python3-torchvision and python3-onnx.
Usage: /usr/bin/python3 scripts/make-regnet-fixture.py
"""
import importlib.util
import json
import os

import onnx
import torch
import torchvision
from torchvision.models.regnet import BlockParams, RegNet

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("families", os.path.join(HERE, "make-family-fixtures.py"))
families = importlib.util.module_from_spec(spec)
spec.loader.exec_module(families)

NAME = "regnet_x_400mf"


def regnet_x():
    # regnet_x_400mf is depth 22, w_0 24, w_a 24.48, w_m 2.54, group width 16; here 3 stages of 1, 1 and 3 blocks.
    params = BlockParams.from_init_params(depth=5, w_0=8, w_a=8.0, w_m=2.0, group_width=4)
    return RegNet(params, num_classes=families.CLASSES, stem_width=8)


def main():
    x = families.pattern_input((families.N, families.C, families.H, families.W))
    torch.manual_seed(0)
    model = families.randomize(regnet_x(), 1).eval()
    with torch.no_grad():
        y = model(x)
    record = {
        "family": NAME,
        "producer": "PyTorch %s, torchvision %s, torch.onnx.export (TorchScript exporter), eval mode" % (torch.__version__, torchvision.__version__),
        "input_shape": [families.N, families.C, families.H, families.W],
        "input": "x[i] = ((i * 7919) % 1000) / 500 - 1",
        "parameters": sum(p.numel() for p in model.parameters()),
        "opsets": {},
        "output_shape": list(y.shape),
        "output": [float(v) for v in y.reshape(-1).tolist()],
    }
    for opset in families.OPSETS:
        data = families.export(model, x, opset)
        path = os.path.join(families.OUT, "%s-opset%d.onnx" % (NAME, opset))
        with open(path, "wb") as f:
            f.write(data)
        ops = sorted({n.op_type for n in onnx.load_from_string(data).graph.node})
        record["opsets"][str(opset)] = {"file": os.path.basename(path), "bytes": len(data), "ops": ops}
        print("%s opset %d: %d bytes, %s" % (NAME, opset, len(data), ", ".join(ops)))
    with open(os.path.join(families.OUT, NAME + ".json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
