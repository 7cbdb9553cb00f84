"""Deployment: a network exported to ONNX (float or QDQ), checked against PyTorch in ONNX Runtime, and its latency
measured there.

``onnx`` writes and checks a file (:func:`export_onnx`, :func:`export_float`), ``qdq`` the quantized form and ONNX
Runtime's own post-training quantization for comparison, ``ort`` measures latency (:func:`ort_latency`), and
``compressed`` completes what ``chipfit compress`` leaves in its folder (:func:`export_compressed`). ``measure``
times a file by a benchmark protocol (fresh processes, warm-up, raw samples, load checks) in ONNX Runtime, OpenVINO,
PyTorch or a user's own benchmark command (``remote``: :func:`run_remote`), as a :class:`Measurement`. ``openvino``
converts a file for OpenVINO and checks it (:func:`to_openvino`, :func:`openvino_check`), and ``bundle`` writes a
deploy folder, exported, checked, converted and measured, with its manifest (:func:`deploy_model`: ``chipfit
deploy``). ``kernels`` reads the kernels a runtime executes off chipfit's cost records, with the fusion ``fusion``
reads from the runtime itself and ``profiling`` times from its profiler, kernel by kernel inside whole networks;
``predictor`` is a latency predictor per kernel type (:class:`Predictor`: ``chipfit predict``), trained on this
machine by ``build`` (:func:`build_predictor`: ``chipfit predictor build``); ``steady`` times a canary between
measurements to tell when the machine has slowed down. ONNX Runtime,
OpenVINO and LightGBM are imported only when a file is run or converted, or a predictor built or used.
"""

from chipfit.deploy.build import build_predictor
from chipfit.deploy.bundle import deploy_model
from chipfit.deploy.compressed import export_compressed
from chipfit.deploy.fusion import detect, executed_ops
from chipfit.deploy.kernels import FusionRules, Kernel
from chipfit.deploy.measure import Measurement, measure
from chipfit.deploy.onnx import export_float, export_onnx, max_abs_diff, onnx_format
from chipfit.deploy.openvino import openvino_check, to_openvino
from chipfit.deploy.ort import ort_latency
from chipfit.deploy.predictor import Prediction, Predictor
from chipfit.deploy.qdq import export_qdq, ort_quantize_static, verify_qdq
from chipfit.deploy.remote import run_remote

__all__ = ["FusionRules", "Kernel", "Measurement", "Prediction", "Predictor", "build_predictor", "deploy_model",
           "detect", "executed_ops", "export_compressed", "export_float", "export_onnx", "export_qdq",
           "max_abs_diff", "measure", "onnx_format", "openvino_check", "ort_latency", "ort_quantize_static",
           "run_remote", "to_openvino", "verify_qdq"]
