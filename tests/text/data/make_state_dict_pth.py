#!/usr/bin/env python3
"""Writes state_dict.pth: a tiny umT5 state dict in Wan's names, pickled as python's
torch.save(module.state_dict()) does — a zip with archive/data.pkl (protocol 2, a
collections.OrderedDict with a _metadata attribute, tensors through torch._utils._rebuild_tensor_v2
and persistent storage ids) and archive/data/<key> — without needing torch: stand-in modules give
the pickler the same global names. The tensors hold arange values so a test can check them.
Run: python3 tests/text/data/make_state_dict_pth.py tests/text/data/state_dict.pth
"""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


class FloatStorage:  # what torch.save names a float32 storage
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None


def main(path):
    # umT5 at vocab 8, d_model 4, 2 heads x 2, d_ff 6, 1 layer, 32 buckets (Wan's names).
    shapes = collections.OrderedDict([
        ("token_embedding.weight", [8, 4]), ("blocks.0.norm1.weight", [4]), ("blocks.0.attn.q.weight", [4, 4]),
        ("blocks.0.attn.k.weight", [4, 4]), ("blocks.0.attn.v.weight", [4, 4]), ("blocks.0.attn.o.weight", [4, 4]),
        ("blocks.0.norm2.weight", [4]), ("blocks.0.ffn.gate.0.weight", [6, 4]), ("blocks.0.ffn.fc1.weight", [6, 4]),
        ("blocks.0.ffn.fc2.weight", [4, 6]), ("blocks.0.pos_embedding.embedding.weight", [32, 2]), ("norm.weight", [4]),
    ])
    sd, blobs = collections.OrderedDict(), {}
    for i, (name, shape) in enumerate(shapes.items()):
        n = 1
        for d in shape:
            n *= d
        values = [float(i) + 0.01 * k for k in range(n)]
        st = Storage(str(i), values)
        blobs[str(i)] = struct.pack(f"<{n}f", *values)
        sd[name] = Tensor(st, shape)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])
    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(sd)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for k, b in blobs.items():
            z.writestr(f"archive/data/{k}", b)
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main(sys.argv[1])
