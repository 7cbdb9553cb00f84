"""QDQ ONNX: the fake-quantized network as QuantizeLinear/DequantizeLinear pairs around float operators, the form
chip toolchains and ONNX Runtime consume; and ONNX Runtime's own post-training quantization for comparison.

Weights below 8 bits are exported as int8 QDQ with the same scale and zero point: their values lie on the low-bit
grid (|k| <= 7 for 4 bits, -8..7 with a zero point when asymmetric, k = +-1 for binary), which int8 holds exactly, so
the file computes what the fake-quant model computes; a toolchain that packs 4-bit weights can read the grid from the
values. (ONNX has int4 from opset 21; it is not used here so that the file loads in every ONNX Runtime this project
supports.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from chipfit.compress.quant import fake
from chipfit.compress.quant.modules import ActQuant, QuantLayer
from chipfit.deploy._outputs import flat_outputs, output_names


class _Exporting:
    """While active, each weight is replaced by its quantized values (computed before tracing, so they enter the
    file as constants) behind an int8 fake-quant that the exporter writes as QuantizeLinear/DequantizeLinear."""

    def __init__(self, model: nn.Module):
        self.mods = [m for m in model.modules() if isinstance(m, QuantLayer)]

    def __enter__(self):
        for m in self.mods:
            table = {}
            for i, p in enumerate(p for p in m.layer.parameters() if p.ndim >= 2):
                with torch.no_grad():
                    wq, scale = fake.quantize_weight(p, m.cfg.weight_bits, m.cfg.per_channel, m.cfg.symmetric)
                    zp = (torch.zeros(scale.numel(), dtype=torch.int32) if m.cfg.weight_bits == 1 else
                          fake.weight_qparams(p, m.cfg.weight_bits, m.cfg.per_channel, m.cfg.symmetric)[1])
                # buffers become initializers, which the tracer does not fold away with their Q/DQ pair
                m.register_buffer(f"_export_w{i}", wq.detach().clone())
                table[id(p)] = (f"_export_w{i}", scale.detach().clone(), zp)
            m.qw = _export_qw(m, table, m.cfg.per_channel)
        return self

    def __exit__(self, *exc):
        for m in self.mods:
            del m.qw
            for name in [n for n in m._buffers if n.startswith("_export_w")]:
                del m._buffers[name]


def _export_qw(module: nn.Module, table: dict, per_channel: bool):
    def qw(w: torch.Tensor) -> torch.Tensor:
        name, scale, zp = table[id(w)]
        wq = getattr(module, name)
        if per_channel:
            return torch.fake_quantize_per_channel_affine(wq, scale, zp, 0, -128, 127)
        return torch.fake_quantize_per_tensor_affine(wq, float(scale), int(zp[0]), -128, 127)

    return qw


def export_qdq(model: nn.Module, path: str | Path, input_shape: tuple[int, ...]) -> Path:
    """Write the calibrated fake-quant ``model`` as QDQ ONNX (opset 17, legacy exporter); returns the path."""
    if any(isinstance(m, ActQuant) and not bool(m.ready) for m in model.modules()):
        raise ValueError("calibrate the network before exporting it (activation ranges are not set)")
    path = Path(path)
    model.eval()
    with _Exporting(model), torch.no_grad():
        # no constant folding: it would fold the weights' Q/DQ pairs into float constants
        torch.onnx.export(model, (torch.zeros(input_shape),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=output_names(model), do_constant_folding=False)
    return path


def verify_qdq(model: nn.Module, path: str | Path, x: torch.Tensor) -> dict[str, Any]:
    """Run the QDQ file in ONNX Runtime image by image and compare its logits with the fake-quant model's.

    Two sessions: ``reference`` with graph optimisations off (each DequantizeLinear feeds a float operator, the same
    arithmetic as fake quantization: only float summation order differs, which can flip a rounding now and then) and
    ``optimized`` (ONNX Runtime's default: Q/DQ pairs fused into integer kernels, as deployed). Returns the max and
    median |difference| and the top-1 agreement of each, and ``logit_step``: the change of a logit when one input of
    the last quantized layer moves by one step (its input scale times its largest |weight|).
    """
    import onnxruntime as ort

    model.eval()
    with torch.no_grad():
        ref = flat_outputs(model(x))
    out: dict[str, Any] = {}
    for label, level in (("reference", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                         ("optimized", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)):
        so = ort.SessionOptions()
        so.graph_optimization_level = level
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        got = np.concatenate([flat_outputs(sess.run(None, {name: x[i:i + 1].numpy()})) for i in range(len(x))])
        d = np.abs(got - ref)
        out[label] = {"max_abs_diff": float(d.max()), "median_abs_diff": float(np.median(d)),
                      "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean())}
    last = [m for m in model.modules() if isinstance(m, QuantLayer)][-1]
    w = getattr(last.layer, "weight", None)
    if w is None:
        w = last.layer.weight_c
    act_scale = float(last.act.scale) if isinstance(last.act, ActQuant) else 0.0
    out["max_abs_diff"] = out["reference"]["max_abs_diff"]
    out["logit_step"] = act_scale * float(w.detach().abs().max())
    return out


class _Reader:
    def __init__(self, name: str, batches: list[torch.Tensor]):
        self.name, self.it = name, iter(batches)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x.numpy()}

    def rewind(self):  # pragma: no cover - some ORT versions call it
        pass


def ort_quantize_static(float_onnx: str | Path, out_onnx: str | Path, calib: list[torch.Tensor],
                        per_channel: bool = False, method: str = "MinMax") -> Path:
    """ONNX Runtime's quantize_static: QDQ, uint8 activations, int8 weights, ``method`` MinMax/Entropy/Percentile.
    ``calib`` holds input batches of the shape the file was exported with."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(float_onnx)).graph.input[0].name
    quantize_static(str(float_onnx), str(out_onnx), _Reader(name, calib), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))
    return Path(out_onnx)
