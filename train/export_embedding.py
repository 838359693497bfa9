"""Convert openWakeWord's two ONNX graphs (melspectrogram + Google speech_embedding) to one .npz.

Why: the daemon runs the embedding with numpy (digitd/embedding.py) and must never import onnx
or onnxruntime. This script is the only place that reads the graphs. It walks them node by node
and refuses (ExportError) anything the numpy port does not implement exactly: an unexpected op,
stride, dilation, group, padding mode, pooling overlap, activation constant, reshape or dB
constant. Numbers the port needs (hop, clip floor, top_db, paddings, pool sizes, LeakyRelu
alpha, the Max floor, batch-norm epsilon) are stored as arrays rather than assumed.

    python -m train.export_embedding SRC OUT.npz

SRC: a folder holding melspectrogram.onnx and embedding_model.onnx (e.g. the unzipped wheel's
openwakeword/resources/models), or the openwakeword-*.whl itself. Needs the `onnx` package.

npz layout (all float32 or int64, loadable with allow_pickle=False):
  format                      int64 ()          FORMAT_VERSION
  mel_stft_real, mel_stft_imag float32 (257, 512) the STFT-as-convolution kernels
  mel_filterbank              float32 (257, 32)
  mel_hop                     int64 ()          conv stride (samples between frames)
  mel_amin                    float32 ()        power floor before the log
  mel_log_mul, mel_log_div    float32 ()        dB = log(power) * mul / div (10, ln 10)
  mel_top_db                  float32 ()        output clipped to max - top_db
  emb_input_pad               int64 (4,)        zero padding of the (76, 32) window: top, left, bottom, right
  emb_window                  int64 ()          frames per window (76)
  emb_layers                  int64 (L, 4)      per conv: [relu+batchnorm, leaky+floor, pool_h, pool_w] (pool 0 = none)
  emb_conv_NN_w               float32 (out, in, kh, kw)
  emb_conv_NN_b               float32 (out,)    zeros where the graph has no bias
  emb_conv_NN_pads            int64 (4,)        ONNX order: top, left, bottom, right
  emb_bn_NN                   float32 (4, out)  scale, bias, mean, var (layers with relu+batchnorm)
  emb_bn_NN_eps               float32 ()
  emb_leaky_alpha             float32 ()        LeakyRelu slope (one value shared by all layers)
  emb_act_floor               float32 ()        the constant of the Max that follows each LeakyRelu
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
MEL_FILE = "melspectrogram.onnx"
EMB_FILE = "embedding_model.onnx"
WHEEL_DIR = "openwakeword/resources/models/"

# The melspectrogram graph, op by op (openwakeword 0.4.0). Anything else is refused.
MEL_OPS = ["Constant", "Unsqueeze", "Conv", "Conv", "Constant", "Unsqueeze", "Transpose", "Constant", "Unsqueeze",
           "Transpose", "Constant", "Pow", "Constant", "Pow", "Add", "MatMul", "Clip", "Log", "Constant", "Mul",
           "Constant", "Div", "Constant", "Sub", "ReduceMax", "Constant", "Sub", "Cast", "Clip"]


class ExportError(Exception):
    """The graph is not the one the numpy port implements; the message says where."""


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ExportError(what)


def read_models(src: Path) -> tuple[bytes, bytes]:
    """(melspectrogram.onnx, embedding_model.onnx) bytes from a folder or an openwakeword wheel."""
    if src.is_dir():
        for name in (MEL_FILE, EMB_FILE):
            _need((src / name).is_file(), f"{src / name}: not found")
        return (src / MEL_FILE).read_bytes(), (src / EMB_FILE).read_bytes()
    _need(src.is_file() and zipfile.is_zipfile(src), f"{src}: neither a folder nor a wheel")
    with zipfile.ZipFile(src) as z:
        names = set(z.namelist())
        for name in (MEL_FILE, EMB_FILE):
            _need(WHEEL_DIR + name in names, f"{src}: no {WHEEL_DIR + name} inside")
        return z.read(WHEEL_DIR + MEL_FILE), z.read(WHEEL_DIR + EMB_FILE)


class _Graph:
    """Initializers and Constant outputs by name, node attributes as plain Python values."""

    def __init__(self, model: Any, what: str):
        import onnx
        from onnx import numpy_helper

        self.onnx, self.what = onnx, what
        g = model.graph
        self.nodes = list(g.node)
        self.values: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant":
                _need(len(n.attribute) == 1 and n.attribute[0].name == "value", f"{what}: Constant {n.output[0]} is not a plain tensor")
                self.values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)

    def attrs(self, node: Any) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def value(self, name: str) -> np.ndarray:
        _need(name in self.values, f"{self.what}: {name!r} is computed, expected a constant")
        return self.values[name]

    def scalar(self, name: str) -> float:
        v = self.value(name)
        _need(v.size == 1, f"{self.what}: {name!r} has shape {v.shape}, expected a scalar")
        return float(v.reshape(()))


def _check_attrs(g: _Graph, node: Any, allowed: dict[str, Any], where: str) -> dict[str, Any]:
    """Node attributes, failing on any name not in `allowed` or on a value that differs from it
    (a value of None in `allowed` means: any value, returned to the caller)."""
    a = g.attrs(node)
    for k, v in a.items():
        _need(k in allowed, f"{where}: {node.op_type} attribute {k}={v!r} is not supported")
        want = allowed[k]
        if want is not None:
            _need(list(v) == list(want) if isinstance(v, (list, tuple)) else v == want,
                  f"{where}: {node.op_type} {k}={v!r}, the numpy port assumes {want!r}")
    return a


def mel_arrays(model: Any) -> dict[str, np.ndarray]:
    """The melspectrogram graph's weights and constants, after checking every op."""
    g = _Graph(model, "melspectrogram")
    ops = [n.op_type for n in g.nodes]
    _need(ops == MEL_OPS, f"melspectrogram: op sequence {ops} differs from the one the port implements")
    nodes = [n for n in g.nodes if n.op_type != "Constant"]
    (unsq, conv_r, conv_i, unsq_r, tr_r, unsq_i, tr_i, pow_r, pow_i, add, matmul, clip_lo, log, mul, div, sub0,
     rmax, sub_db, cast, clip_db) = nodes
    inp = model.graph.input[0].name
    _need(list(unsq.input)[0] == inp and g.value(unsq.input[1]).tolist() == [1], "melspectrogram: input is not unsqueezed at axis 1")
    hop = None
    for conv in (conv_r, conv_i):
        a = _check_attrs(g, conv, {"dilations": [1], "group": 1, "kernel_shape": None, "pads": [0, 0], "strides": None,
                                   "auto_pad": "NOTSET"}, "melspectrogram")
        _need(len(conv.input) == 2, "melspectrogram: STFT conv has a bias")
        _need(conv.input[0] == unsq.output[0], "melspectrogram: STFT conv does not read the input")
        _need(len(a["strides"]) == 1 and (hop is None or a["strides"][0] == hop), "melspectrogram: STFT strides differ")
        hop = int(a["strides"][0])
    real = g.value(conv_r.input[1]).astype(np.float32)
    imag = g.value(conv_i.input[1]).astype(np.float32)
    _need(real.ndim == 3 and real.shape[1] == 1 and real.shape == imag.shape, f"melspectrogram: STFT kernels {real.shape}/{imag.shape}")
    for u, t, c in ((unsq_r, tr_r, conv_r), (unsq_i, tr_i, conv_i)):
        _need(u.input[0] == c.output[0] and g.value(u.input[1]).tolist() == [1], "melspectrogram: unexpected Unsqueeze")
        _check_attrs(g, t, {"perm": [0, 1, 3, 2]}, "melspectrogram")
    for p, t in ((pow_r, tr_r), (pow_i, tr_i)):
        _need(p.input[0] == t.output[0] and g.scalar(p.input[1]) == 2.0, "melspectrogram: Pow is not a square of the STFT")
    _need(set(add.input) == {pow_r.output[0], pow_i.output[0]}, "melspectrogram: Add is not re^2 + im^2")
    _need(matmul.input[0] == add.output[0], "melspectrogram: MatMul does not read the power")
    fbank = g.value(matmul.input[1]).astype(np.float32)
    _need(fbank.ndim == 2 and fbank.shape[0] == real.shape[0], f"melspectrogram: filterbank {fbank.shape}")
    _need(clip_lo.input[0] == matmul.output[0] and len(clip_lo.input) == 3, "melspectrogram: no power floor")
    amin = g.scalar(clip_lo.input[1])
    _need(amin > 0 and math.isinf(g.scalar(clip_lo.input[2])), "melspectrogram: the power clip is not [amin, inf)")
    _need(log.input[0] == clip_lo.output[0] and mul.input[0] == log.output[0] and div.input[0] == mul.output[0]
          and sub0.input[0] == div.output[0], "melspectrogram: dB chain is not log * mul / div - ref")
    log_mul, log_div = g.scalar(mul.input[1]), g.scalar(div.input[1])
    _need(log_mul == 10.0 and abs(log_div - math.log(10.0)) < 1e-6, f"melspectrogram: dB factors {log_mul}/{log_div}")
    _need(g.scalar(sub0.input[1]) == 0.0, "melspectrogram: a non-zero reference level is not implemented")
    _check_attrs(g, rmax, {"keepdims": 0}, "melspectrogram")
    _need(len(rmax.input) == 1 and rmax.input[0] == sub0.output[0], "melspectrogram: ReduceMax must reduce over all axes")
    _need(sub_db.input[0] == rmax.output[0], "melspectrogram: top_db is not subtracted from the max")
    top_db = g.scalar(sub_db.input[1])
    _check_attrs(g, cast, {"to": 1}, "melspectrogram")  # 1 = FLOAT
    _need(cast.input[0] == sub_db.output[0], "melspectrogram: unexpected Cast")
    _need(clip_db.input[0] == sub0.output[0] and clip_db.input[1] == cast.output[0]
          and math.isinf(g.scalar(clip_db.input[2])) and clip_db.output[0] == model.graph.output[0].name,
          "melspectrogram: output is not clip(dB, max - top_db, inf)")
    return {
        "mel_stft_real": np.ascontiguousarray(real[:, 0, :]),
        "mel_stft_imag": np.ascontiguousarray(imag[:, 0, :]),
        "mel_filterbank": np.ascontiguousarray(fbank),
        "mel_hop": np.array(hop, dtype=np.int64),
        "mel_amin": np.array(amin, dtype=np.float32),
        "mel_log_mul": np.array(log_mul, dtype=np.float32),
        "mel_log_div": np.array(log_div, dtype=np.float32),
        "mel_top_db": np.array(top_db, dtype=np.float32),
    }


def embedding_arrays(model: Any) -> dict[str, np.ndarray]:
    """The embedding graph as a layer table plus weights, after checking every op.

    Accepted shape: Pad (H/W zeros) -> Reshape NHWC->NCHW (one channel) -> repeated
    [Conv -> (Relu -> BatchNormalization)? -> (LeakyRelu -> Max(const))? -> MaxPool?] -> Reshape.
    """
    g = _Graph(model, "embedding_model")
    nodes = [n for n in g.nodes if n.op_type != "Constant"]
    inp = model.graph.input[0]
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
    _need(len(dims) == 4 and dims[3] == 1 and dims[1] and dims[2], f"embedding_model: input shape {dims}")
    window, bands = int(dims[1]), int(dims[2])
    out: dict[str, np.ndarray] = {"emb_window": np.array(window, dtype=np.int64)}

    pad, reshape = nodes[0], nodes[1]
    _need(pad.op_type == "Pad" and pad.input[0] == inp.name, "embedding_model: does not start with Pad")
    _check_attrs(g, pad, {"mode": "constant"}, "embedding_model")
    _need(len(pad.input) == 2 or (len(pad.input) == 3 and g.scalar(pad.input[2]) == 0.0), "embedding_model: non-zero pad value")
    p = g.value(pad.input[1]).astype(np.int64).tolist()  # NHWC begins then ends
    _need(len(p) == 8 and p[0] == p[3] == p[4] == p[7] == 0 and min(p) >= 0, f"embedding_model: Pad {p} pads batch/channel")
    out["emb_input_pad"] = np.array([p[1], p[2], p[5], p[6]], dtype=np.int64)
    h, w = window + p[1] + p[5], bands + p[2] + p[6]
    _need(reshape.op_type == "Reshape" and reshape.input[0] == pad.output[0], "embedding_model: no NHWC->NCHW reshape")
    _need(g.value(reshape.input[1]).tolist() == [-1, 1, h, w], "embedding_model: the reshape is not a one-channel NHWC->NCHW")

    i, prev, c = 2, reshape.output[0], 1
    layers: list[list[int]] = []
    alphas: set[float] = set()
    floors: set[float] = set()

    def take(op: str) -> Any | None:
        nonlocal i, prev
        if i < len(nodes) and nodes[i].op_type == op and nodes[i].input[0] == prev:
            n = nodes[i]
            i += 1
            prev = n.output[0]
            return n
        return None

    while i < len(nodes) and nodes[i].op_type == "Conv":
        k = len(layers)
        conv = take("Conv")
        _need(conv is not None, f"embedding_model: conv {k} does not follow the previous layer")
        a = _check_attrs(g, conv, {"dilations": [1, 1], "strides": [1, 1], "group": 1, "kernel_shape": None,
                                   "pads": None, "auto_pad": "NOTSET"}, f"embedding_model conv {k}")
        wt = g.value(conv.input[1]).astype(np.float32)
        _need(wt.ndim == 4 and wt.shape[1] == c and list(wt.shape[2:]) == list(a["kernel_shape"]),
              f"embedding_model conv {k}: weight {wt.shape} for {c} input channels")
        b = g.value(conv.input[2]).astype(np.float32) if len(conv.input) > 2 and conv.input[2] else np.zeros(wt.shape[0], np.float32)
        _need(b.shape == (wt.shape[0],), f"embedding_model conv {k}: bias {b.shape}")
        pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
        _need(len(pads) == 4 and min(pads) >= 0, f"embedding_model conv {k}: pads {pads}")
        out[f"emb_conv_{k:02d}_w"], out[f"emb_conv_{k:02d}_b"] = wt, b
        out[f"emb_conv_{k:02d}_pads"] = np.array(pads, dtype=np.int64)
        c = wt.shape[0]
        row = [0, 0, 0, 0]
        if take("Relu") is not None:
            bn = take("BatchNormalization")
            _need(bn is not None, f"embedding_model conv {k}: Relu without the BatchNormalization the port expects")
            ba = _check_attrs(g, bn, {"epsilon": None, "momentum": None, "training_mode": 0}, f"embedding_model conv {k}")
            _need(len(bn.output) == 1, f"embedding_model conv {k}: training-mode BatchNormalization")
            stats = np.stack([g.value(n).astype(np.float32) for n in bn.input[1:5]])
            _need(stats.shape == (4, c) and np.all(stats[3] >= 0), f"embedding_model conv {k}: batch norm {stats.shape}")
            out[f"emb_bn_{k:02d}"] = stats
            out[f"emb_bn_{k:02d}_eps"] = np.array(ba.get("epsilon", 1e-5), dtype=np.float32)
            row[0] = 1
        lr = take("LeakyRelu")
        if lr is not None:
            alphas.add(float(_check_attrs(g, lr, {"alpha": None}, f"embedding_model conv {k}").get("alpha", 0.01)))
            mx = take("Max")
            _need(mx is not None and len(mx.input) == 2, f"embedding_model conv {k}: LeakyRelu without the Max the port expects")
            floors.add(g.scalar(mx.input[1]))
            row[1] = 1
        elif row[0]:
            raise ExportError(f"embedding_model conv {k}: batch norm without LeakyRelu is not implemented")
        pool = take("MaxPool")
        if pool is not None:
            pa = _check_attrs(g, pool, {"kernel_shape": None, "strides": None, "pads": [0, 0, 0, 0], "ceil_mode": 0,
                                        "dilations": [1, 1], "storage_order": 0, "auto_pad": "NOTSET"},
                              f"embedding_model pool after conv {k}")
            _need(list(pa["strides"]) == list(pa["kernel_shape"]) and len(pa["strides"]) == 2 and len(pool.output) == 1,
                  f"embedding_model pool after conv {k}: overlapping or strided pooling {pa}")
            row[2:] = [int(v) for v in pa["kernel_shape"]]
        layers.append(row)

    _need(len(layers) > 0, "embedding_model: no convolutions found")
    last = take("Reshape")
    _need(last is not None and i == len(nodes), f"embedding_model: unexpected op after layer {len(layers) - 1}: "
          f"{nodes[i].op_type if i < len(nodes) else 'none'}")
    _need(g.value(last.input[1]).tolist() == [-1, 1, 1, c] and last.output[0] == model.graph.output[0].name,
          "embedding_model: output reshape is not (n, 1, 1, channels)")
    _need(len(alphas) == 1 and len(floors) == 1, f"embedding_model: several LeakyRelu alphas {alphas} / Max floors {floors}")
    alpha = alphas.pop()
    _need(0.0 <= alpha < 1.0, f"embedding_model: LeakyRelu alpha {alpha} (the port computes max(x, alpha x))")
    out["emb_layers"] = np.array(layers, dtype=np.int64)
    out["emb_leaky_alpha"] = np.array(alpha, dtype=np.float32)
    out["emb_act_floor"] = np.array(floors.pop(), dtype=np.float32)
    return out


def export(src: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays for the npz, {onnx file name: sha256}) from a folder or wheel."""
    import onnx

    mel_bytes, emb_bytes = read_models(src)
    arrays = {"format": np.array(FORMAT_VERSION, dtype=np.int64)}
    arrays.update(mel_arrays(onnx.load_from_string(mel_bytes)))
    arrays.update(embedding_arrays(onnx.load_from_string(emb_bytes)))
    for k, v in arrays.items():
        assert v.dtype in (np.float32, np.int64), (k, v.dtype)
    sums = {MEL_FILE: hashlib.sha256(mel_bytes).hexdigest(), EMB_FILE: hashlib.sha256(emb_bytes).hexdigest()}
    return arrays, sums


def save(arrays: dict[str, np.ndarray], out: Path) -> None:
    """Uncompressed npz: float weights barely compress, and an uncompressed one loads faster."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out.write_bytes(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.export_embedding", description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="folder with melspectrogram.onnx + embedding_model.onnx, or an openwakeword wheel")
    ap.add_argument("out", type=Path, help="output .npz")
    args = ap.parse_args(argv)
    try:
        arrays, sums = export(args.src)
    except ExportError as e:
        print(f"export_embedding: {e}", file=sys.stderr)
        return 1
    save(arrays, args.out)
    n = sum(v.size for k, v in arrays.items() if v.dtype == np.float32)
    print(f"{args.out}: {len(arrays)} arrays, {n:,} float32 values, {args.out.stat().st_size:,} bytes, "
          f"{len(arrays['emb_layers'])} conv layers")
    for name, s in sums.items():
        print(f"  {name} sha256 {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
