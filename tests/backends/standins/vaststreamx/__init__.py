"""TEST-ONLY stand-in for the Vastai ``vaststreamx`` SDK.

It implements just the API subset :class:`vacc_deploy.backends.vacc.session.VaccSession` uses, with the
call shapes of the vendor's samples, and checks what it receives (device id, model prefix files,
tensor shape and dtype). Its "model" output is the input upscaled by nearest neighbour with the
scale read from the stand-in compiled ``mod.json`` (key ``scale``, default 1) - deterministic and of
the right shape, nothing more.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import numpy as np

__standin__ = True
DEVICES = (0, 1)
_current_device = None
calls: list[tuple] = []  # (what, details) for tests


def set_device(device_id):
    global _current_device
    if not isinstance(device_id, int) or device_id not in DEVICES:
        return -1
    _current_device = device_id
    calls.append(("set_device", device_id))
    return 0


class StreamBalanceMode(Enum):
    ONCE = 0
    RUN = 1


class Tensor:
    def __init__(self, array, device_id):
        self._array = array
        self.device_id = device_id
        self.shape = array.shape


def from_numpy(array, device_id):
    if not isinstance(array, np.ndarray):
        raise TypeError("from_numpy expects a numpy array")
    if device_id != _current_device:
        raise ValueError(f"tensor for device {device_id} but device {_current_device} is set")
    return Tensor(array.copy(), device_id)


def as_numpy(tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError("as_numpy expects a vaststreamx Tensor")
    return tensor._array.copy()


class Model:
    def __init__(self, model_prefix, batch_size=1):
        prefix = Path(model_prefix)
        for suffix in (".so", ".json", ".params"):
            if not prefix.with_name(prefix.name + suffix).is_file():
                raise RuntimeError(f"model file missing: {prefix}{suffix}")
        info = json.loads(prefix.with_name(prefix.name + ".json").read_text())
        if not info.get("standin"):
            raise RuntimeError("not a stand-in compiled model")
        self.batch_size = int(batch_size)
        self.input_shape = [tuple(info["input_shape"])]
        self.scale = int(info.get("scale", 1))


class ModelOperator:
    def __init__(self, model):
        if not isinstance(model, Model):
            raise TypeError("ModelOperator expects a Model")
        self.model = model


class Graph:
    def __init__(self, *args):
        self.ops = []

    def add_operators(self, *ops):
        self.ops.extend(ops)


class Stream:
    def __init__(self, graph, balance_mode):
        if not isinstance(graph, Graph) or not isinstance(balance_mode, StreamBalanceMode):
            raise TypeError("Stream(graph, StreamBalanceMode)")
        self.graph, self.outputs, self.built, self.closed = graph, [], False, False

    def register_operator_output(self, op):
        if op not in self.graph.ops:
            raise ValueError("operator not in graph")
        self.outputs.append(op)

    def build(self):
        if not self.outputs:
            raise RuntimeError("no output registered")
        self.built = True

    def run_sync(self, inputs):
        if not self.built or self.closed:
            raise RuntimeError("stream not built or closed")
        model = self.outputs[0].model
        if len(inputs) > model.batch_size:
            raise ValueError(f"{len(inputs)} inputs > batch size {model.batch_size}")
        n, c, h, w = model.input_shape[0]
        results = []
        for one in inputs:
            (t,) = one
            if t.shape != (c, h, w) or t._array.dtype != np.float16:
                raise ValueError(f"input {t.shape} {t._array.dtype}, model takes {(c, h, w)} float16")
            s = model.scale
            up = t._array.repeat(s, axis=1).repeat(s, axis=2)[None]
            results.append([Tensor(up, t.device_id)])
        calls.append(("run_sync", len(inputs)))
        return results

    def close_input(self):
        self.closed = True

    def wait_until_done(self):
        pass
