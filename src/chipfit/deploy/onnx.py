"""ONNX export of a network as :func:`chipfit.compress.compress` leaves it, checked in ONNX Runtime.

The file's form follows the network: QDQ (:mod:`chipfit.deploy.qdq`) when it holds integer fake-quantized layers,
float otherwise (``fp16-emulated float`` when its layers round to half precision: the file holds those rounded
weights in float32). Every file has one input ``input`` of the export shape and one output ``logits``, with a fixed
batch (no dynamic axes).

Float files (:func:`export_float`, :func:`export_float_info`) come from the torch.export-based exporter
(``torch.onnx.export(..., dynamo=True)``, onnxscript's operator library) at opset 18, the opset that library is
written in (a lower one would need its version converter; ONNX Runtime reads opset 18 from 1.14 on, and the OpenVINO
this project tests converts it). The network is traced under ``torch.no_grad()``: with autograd on, the exporter's
decompositions fail on window attention (a ``view`` of a transposed tensor in ``swin_*``). Where that exporter fails
on a network (``torch.export`` cannot trace data-dependent Python control flow such as ``if bool(buffer)``), the
legacy TorchScript exporter writes the file at opset 17 instead, and says so: an :class:`ExportFallbackWarning` and
the ``exporter`` and ``fallback`` entries of :func:`export_float_info`. The new exporter is slower (seconds per zoo
network where the legacy one takes tenths); ``export_s`` records it. The graph is then simplified with onnxslim and
the simplified file compared with PyTorch in ONNX Runtime; where slimming fails or changes the logits beyond the
tolerance, the exporter's own graph is written (and that is said too). A file whose logits differ from PyTorch's by
more than ``REL_TOLERANCE`` x the largest |logit| + ``ABS_TOLERANCE`` is refused with a ValueError.

QDQ files stay on the legacy exporter (opset 17, :func:`chipfit.deploy.qdq.export_qdq`): the fake-quant layers test
``bool(self.ready)`` of a buffer in ``forward``, data-dependent control flow that ``torch.export`` refuses (checked
with torch 2.13), and the legacy exporter is what writes ``fake_quantize_*`` as QuantizeLinear/DequantizeLinear.
"""

from __future__ import annotations

import io
import logging
import re
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from chipfit.compress.quant.modules import Fp16, QuantLayer
from chipfit.deploy._outputs import flat_outputs, output_names
from chipfit.deploy.qdq import export_qdq, verify_qdq

OPSET = 20  # Gelu is an ONNX op from 20 on; at 18 it is written out as Div, Erf, Add, Mul: 5 ONNX Runtime kernels
LEGACY_OPSET = 17  # the TorchScript exporter's: the fallback and QDQ files
SAMPLE_IMAGES = 16  # inputs on which the file is compared with PyTorch when none are given
REL_TOLERANCE = 1e-3  # of the largest |logit|: float32 reordering stays far below, a mistranslated operator far above
ABS_TOLERANCE = 1e-5  # for networks whose logits are all near zero
EXPORTERS = ("torch.export", "torchscript")


class ExportFallbackWarning(UserWarning):
    """The torch.export-based exporter failed and the legacy TorchScript one wrote the file, or onnxslim's graph was
    not kept."""


def _reason(e: BaseException) -> str:
    """The root cause of an exporter's failure, one line (its messages run to pages)."""
    root = e
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    lines = [x.strip() for x in str(root).splitlines() if x.strip()]
    return f"{type(root).__name__}: {lines[0][:200] if lines else '(no message)'}"


def _dynamo(model: nn.Module, x: torch.Tensor):
    """The torch.export-based exporter's ModelProto, without its console output and torch's internal notes."""
    log = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed", once per export
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=re.escape("`isinstance(treespec, LeafSpec)` is deprecated"),
                                    category=FutureWarning)  # torch's own use of its pytree API
            program = torch.onnx.export(model, (x,), None, dynamo=True, opset_version=OPSET, input_names=["input"],
                                        output_names=output_names(model), verbose=False, optimize=True)
    finally:
        log.setLevel(level)
    return program.model_proto


def _torchscript(model: nn.Module, x: torch.Tensor):
    import onnx

    buf = io.BytesIO()
    torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=LEGACY_OPSET, input_names=["input"],
                      output_names=output_names(model))
    return onnx.load_from_string(buf.getvalue())


def _export(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[Any, dict[str, Any]]:
    """(ModelProto, {exporter, opset, fallback, export_s}): torch.export first, TorchScript where it fails."""
    x = torch.zeros(input_shape)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            proto = _dynamo(model, x)
        return proto, {"exporter": "torch.export", "opset": OPSET, "fallback": None,
                       "export_s": time.perf_counter() - started}
    except Exception as e:  # the new exporter's failure on this network: the legacy one is the fallback
        reason = _reason(e)
    name = type(model).__name__
    started = time.perf_counter()
    try:
        proto = _torchscript(model, x)
    except Exception as e:
        raise ValueError(f"cannot export {name} to ONNX: the torch.export-based exporter failed ({reason}), and so "
                         f"did the legacy TorchScript exporter ({_reason(e)})") from None
    warnings.warn(f"the torch.export-based ONNX exporter failed on {name} ({reason}); the legacy TorchScript exporter "
                  f"wrote the file (opset {LEGACY_OPSET})", ExportFallbackWarning, stacklevel=3)
    return proto, {"exporter": "torchscript", "opset": LEGACY_OPSET, "fallback": reason,
                   "export_s": time.perf_counter() - started}


def ort_logits(source: str | bytes, x: torch.Tensor):
    """Logits of an ONNX file (path) or serialized model (bytes) in ONNX Runtime, CPU, image by image (the file has
    a fixed batch of one); several outputs come joined as :func:`flat_outputs` joins them."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([flat_outputs(sess.run(None, {name: x[i:i + 1].numpy()})) for i in range(len(x))])


def _reference(model: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        return flat_outputs(model.eval()(x))


def max_abs_diff(model: nn.Module, path: str | Path, x: torch.Tensor) -> float:
    """Largest |difference| between the logits of ``model`` and of the ONNX file at ``path`` (ONNX Runtime, CPU,
    run image by image since the file has a fixed batch of one) on the inputs ``x``."""
    import numpy as np

    return float(np.abs(ort_logits(str(path), x) - _reference(model, x)).max())


def tolerance(logit_scale: float) -> float:
    """The largest |logit difference| a file may show: ``REL_TOLERANCE * logit_scale + ABS_TOLERANCE``."""
    return REL_TOLERANCE * logit_scale + ABS_TOLERANCE


def _nodes(proto) -> int:
    return len(proto.graph.node)


def _io_names(proto) -> tuple[list[str], list[str]]:
    return [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]


def export_float_info(model: nn.Module, path: str | Path, input_shape: Sequence[int], *,
                      sample: torch.Tensor | None = None, slim: bool = True) -> dict[str, Any]:
    """Write a float ``model`` (put in eval mode) as ONNX, simplified by onnxslim, and check it in ONNX Runtime.

    Args:
        model: a float network (one without integer fake-quant layers: those are :func:`export_qdq`'s).
        path: the ``.onnx`` file to write.
        input_shape: the one input the file takes, e.g. (1, 3, 32, 32).
        sample: inputs for the check (any batch size); default 16 standard normal ones (seed 0).
        slim: simplify the graph with onnxslim (kept only where its logits stay within the tolerance).

    Returns:
        ``file``; ``exporter`` (``torch.export`` or ``torchscript``), ``opset``, ``fallback`` (why the legacy
        exporter was used, or ``None``) and ``export_s`` (seconds the export took); ``slim``: ``version`` of
        onnxslim, ``nodes_before`` and ``nodes_after``, ``applied`` and a ``note`` where the slimmed graph was not
        kept (``None`` when ``slim`` is false); ``max_abs_diff`` (largest |logit difference| of the written file on
        ``sample``), ``logit_scale`` (the largest |logit| of PyTorch) and ``tolerance``.

    Raises:
        ValueError: both exporters failed, or the file's logits differ from PyTorch's beyond the tolerance.
    """
    import numpy as np

    path = Path(path)
    shape = tuple(int(d) for d in input_shape)
    model.eval()
    x = sample if sample is not None else torch.randn(SAMPLE_IMAGES, *shape[1:],
                                                      generator=torch.Generator().manual_seed(0))
    ref = _reference(model, x)
    scale = float(np.abs(ref).max())
    limit = tolerance(scale)
    proto, info = _export(model, shape)
    names = output_names(model)
    if _io_names(proto) != (["input"], names):
        ins, outs = _io_names(proto)
        raise ValueError(f"{type(model).__name__} exports with inputs {ins} and outputs {outs}: chipfit deploys "
                         f"networks of one image input and the outputs {names}")
    raw = proto.SerializeToString()
    chosen, diff, slim_info = raw, None, None
    if slim:
        import onnxslim

        slim_info = {"version": onnxslim.__version__, "nodes_before": _nodes(proto), "nodes_after": _nodes(proto),
                     "applied": False, "note": None}
        try:
            slimmed = onnxslim.slim(proto)
            if _io_names(slimmed) != (["input"], names):
                raise ValueError(f"it renamed the graph's inputs and outputs to {_io_names(slimmed)}")
            candidate = slimmed.SerializeToString()
            d = float(np.abs(ort_logits(candidate, x) - ref).max())
            if d > limit:
                raise ValueError(f"its logits differ from PyTorch's by {d:.3g} (tolerance {limit:.3g})")
            chosen, diff = candidate, d
            slim_info.update(nodes_after=_nodes(slimmed), applied=True)
        except Exception as e:  # onnxslim's own failure: the exporter's graph is still a valid file
            slim_info["note"] = f"onnxslim's graph was not kept ({_reason(e)}): the file is the exporter's graph"
            warnings.warn(f"{type(model).__name__}: {slim_info['note']}", ExportFallbackWarning, stacklevel=2)
    if diff is None:
        diff = float(np.abs(ort_logits(raw, x) - ref).max())
    if diff > limit:
        raise ValueError(f"the ONNX file of {type(model).__name__} ({info['exporter']} exporter, opset "
                         f"{info['opset']}) differs from PyTorch by {diff:.3g} on {len(x)} inputs, beyond the "
                         f"tolerance {limit:.3g} ({REL_TOLERANCE:g} x the largest |logit| {scale:.3g} + "
                         f"{ABS_TOLERANCE:g}): an operator was translated wrongly; the file was not written")
    path.write_bytes(chosen)
    return {"file": str(path), **info, "slim": slim_info, "max_abs_diff": diff, "logit_scale": scale,
            "tolerance": limit}


def export_float(model: nn.Module, path: str | Path, input_shape: Sequence[int], *,
                 sample: torch.Tensor | None = None, slim: bool = True) -> Path:
    """Write a float ``model`` (put in eval mode) as ONNX, slimmed and checked (:func:`export_float_info`); returns
    the path. The exporter used is said only where it is the legacy one (an :class:`ExportFallbackWarning`)."""
    return Path(export_float_info(model, path, input_shape, sample=sample, slim=slim)["file"])


def onnx_format(model: nn.Module) -> str:
    """``QDQ``, ``fp16-emulated float`` or ``float``: how :func:`export_onnx` writes ``model``."""
    if any(isinstance(m, QuantLayer) for m in model.modules()):
        return "QDQ"
    if any(isinstance(m, Fp16) for m in model.modules()):
        return "fp16-emulated float"
    return "float"


def export_onnx(model: nn.Module, path: str | Path, input_shape: Sequence[int], *,
                sample: torch.Tensor | None = None) -> dict[str, Any]:
    """Write ``model`` as ONNX (QDQ or float, see the module's text) and compare the file with it in ONNX Runtime.

    Args:
        model: a float network or one :func:`chipfit.compress.compress` quantized (calibrated).
        path: the ``.onnx`` file to write.
        input_shape: the one input the file takes, e.g. (1, 1, 28, 28).
        sample: inputs for the comparison (normalised images, any batch size); default 16 standard normal ones.

    Returns:
        ``file``, ``format`` and ``max_abs_diff`` (largest |logit difference|); for QDQ also what
        :func:`~chipfit.deploy.qdq.verify_qdq` measures (``reference``, ``optimized``, ``logit_step``).
    """
    x = sample if sample is not None else torch.randn(SAMPLE_IMAGES, *tuple(input_shape)[1:])
    info: dict[str, Any] = {"file": str(path)}
    fmt = onnx_format(model)
    if fmt == "QDQ":
        export_qdq(model, path, tuple(input_shape))
        info.update(verify_qdq(model, path, x))
        info["format"] = fmt
    else:
        checked = export_float_info(model, path, input_shape, sample=x)
        info.update({"format": fmt, "max_abs_diff": checked["max_abs_diff"]})
    return info
