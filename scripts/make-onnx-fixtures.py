#!/usr/bin/python3
"""Writes the committed fixtures of the io tests with reference implementations (run by hand, never by tests or CI).

- test/fixtures/onnx/<name>.onnx + <name>.json: small CNNs exported by PyTorch's ONNX exporter, with a
  recorded input and PyTorch's output for it (eval mode).
- test/io/fixtures/reference-writer.safetensors + .json: a file written by the official safetensors
  library, so the tests can check that our reader and writer agree with it byte for byte.

Needs Debian's python3-torch and python3-onnx (apt-get install -y python3-torch python3-onnx) and, for
the safetensors fixture, the `safetensors` Python package (any source; skipped with a note if absent).
Usage: /usr/bin/python3 scripts/make-onnx-fixtures.py
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONNX_DIR = os.path.join(ROOT, "test", "fixtures", "onnx")
IO_DIR = os.path.join(ROOT, "test", "io", "fixtures")


def floats(a):
    """A flat list of float32 values that JSON round-trips exactly (repr of the float32 as a double)."""
    return [float(v) for v in a.reshape(-1).tolist()]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def safetensors_fixture():
    try:
        import numpy as np
        import safetensors
        import safetensors.numpy as stn
    except ImportError:
        print("safetensors is not importable: skipping test/io/fixtures/reference-writer.safetensors", file=sys.stderr)
        return
    tensors = {
        "conv.weight": (np.arange(18, dtype=np.float32) * 0.25 - 1).reshape(2, 1, 3, 3),
        "conv.bias": np.array([0.5, -2.0], dtype=np.float32),
        "count": np.array([1, -2, 3], dtype=np.int32),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    metadata = {"format": "reference", "note": "written by the safetensors library"}
    os.makedirs(IO_DIR, exist_ok=True)
    path = os.path.join(IO_DIR, "reference-writer.safetensors")
    stn.save_file(tensors, path, metadata=metadata)
    write_json(os.path.join(IO_DIR, "reference-writer.json"), {
        "writer": "safetensors %s (Python)" % safetensors.__version__,
        "metadata": metadata,
        "tensors": {k: {"dtype": "F32" if v.dtype == np.float32 else "I32", "shape": list(v.shape), "values": v.reshape(-1).tolist()} for k, v in tensors.items()},
    })
    print("wrote", os.path.relpath(path, ROOT))


def fashion_images(count):
    """The first `count` test images of the built-in Fashion-MNIST subset, as uint8 rows of 784 pixels."""
    import gzip
    path = os.path.join(ROOT, "data", "fashion-mnist-subset", "t10k-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    assert n >= count and rows == 28 and cols == 28, (n, rows, cols)
    return [list(raw[16 + i * 784:16 + (i + 1) * 784]) for i in range(count)]


def randomize_batch_norms(model, torch):
    """Running statistics and affine parameters away from their identity defaults, so that BN matters."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)


def onnx_fixtures():
    import numpy as np
    import onnx
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Vgg(nn.Module):
        """Exported with the default eval-mode export: batch norms are folded into the convolutions."""
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.b1 = nn.BatchNorm2d(8)
            self.c2 = nn.Conv2d(8, 12, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(12)
            self.c3 = nn.Conv2d(12, 16, 3, stride=2, padding=1)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(16 * 4 * 4, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.b1(self.c1(x))), 2)
            x = F.avg_pool2d(F.relu(self.b2(self.c2(x))), 3, stride=2, padding=1)
            x = F.relu(self.c3(x))
            x = x.view(x.size(0), -1)
            return self.fc(self.drop(x))

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(cout)
            self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            out = out + (x if self.down is None else self.down(x))
            return F.relu(out)

    class ResNet(nn.Module):
        """Batch norms kept as nodes (TrainingMode.PRESERVE, no folding); clamp(min=0) as Clip; mean over H, W as ReduceMean."""
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 6, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(6)
            self.blocks = nn.Sequential(Block(6, 6, 1), Block(6, 10, 2), Block(10, 14, 2))
            self.fc = nn.Linear(14, 10)

        def forward(self, x):
            x = torch.clamp(self.bn(self.stem(x)), min=0)
            x = self.blocks(x)
            return self.fc(x.mean((2, 3)))

    class MaxNet(nn.Module):
        """Opset 17: a padded max pool, a global max as ReduceMax, and a classifier as MatMul + Add."""
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 6, 5, padding=2)
            self.c2 = nn.Conv2d(6, 12, 3, padding=1, groups=3)
            self.b2 = nn.BatchNorm2d(12)
            self.w = nn.Parameter(torch.randn(12, 10) * 0.3)
            self.b = nn.Parameter(torch.randn(10) * 0.1)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.c1(x)), 3, stride=2, padding=1)
            x = F.relu(self.b2(self.c2(x)))
            x = torch.amax(x, dim=(2, 3))
            return torch.matmul(x, self.w) + self.b

    class Unsupported(nn.Module):
        """Ops with no mapping: LeakyRelu, Softmax."""
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            x = F.leaky_relu(self.c1(x), 0.1)
            return F.softmax(self.fc(x.mean((2, 3))), dim=1)

    images = fashion_images(4)
    pixels = np.array(images, dtype=np.uint8)
    x = torch.from_numpy((pixels.astype(np.float64) / 255).astype(np.float32).reshape(4, 1, 28, 28))
    os.makedirs(ONNX_DIR, exist_ok=True)
    specs = [
        ("torch-vgg-folded", Vgg, 11, dict(), False),
        ("torch-resnet", ResNet, 13, dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}), False),
        ("torch-maxnet", MaxNet, 17, dict(dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}), False),
        ("torch-unsupported", Unsupported, 13, dict(), True),
    ]
    for name, cls, opset, kwargs, unsupported in specs:
        torch.manual_seed(0)
        model = cls()
        randomize_batch_norms(model, torch)
        model.eval()
        path = os.path.join(ONNX_DIR, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"], **kwargs)
            y = model(x)
        proto = onnx.load(path)
        onnx.checker.check_model(proto)
        record = {
            "producer": "PyTorch %s, torch.onnx.export (TorchScript exporter), eval mode" % torch.__version__,
            "opset": opset,
            "ops": sorted({n.op_type for n in proto.graph.node}),
            "images": "first 4 test images of data/fashion-mnist-subset, scaled by 1/255 in float64 then rounded to float32",
            "input_shape": [4, 1, 28, 28],
            "pixels": pixels.reshape(-1).tolist(),
            "output_shape": list(y.shape),
            "output": floats(y.numpy()),
        }
        if unsupported:
            record["unsupported"] = sorted({n.op_type for n in proto.graph.node} - {"Conv", "Gemm", "ReduceMean"})
        write_json(os.path.join(ONNX_DIR, name + ".json"), record)
        print("wrote", os.path.relpath(path, ROOT), os.path.getsize(path), "bytes, ops", record["ops"])


if __name__ == "__main__":
    safetensors_fixture()
    onnx_fixtures()
