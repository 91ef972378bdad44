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


if __name__ == "__main__":
    safetensors_fixture()
