"""The child program of :func:`chipfit.deploy.measure`: one fresh process loads one model, runs it, and prints its
timings as one JSON line on stdout.

Run as ``python -P .../_measure_worker.py '{"runtime": "ort", "model": "m.onnx", ...}'`` (the parent does this: by
path, so that the ``chipfit`` package, which imports torch, is not imported into an ONNX Runtime or OpenVINO
measurement; ``-P`` keeps this folder, which holds an ``onnx.py``, off ``sys.path``). ``python -m
chipfit.deploy._measure_worker ARGS`` works as well. This file imports nothing from chipfit, and only the runtime
it measures: numpy, plus onnxruntime, openvino or torch.

The request's keys: ``runtime`` (``ort``, ``openvino``, ``torch``), ``model`` (the file), ``input_shape`` (a list,
or null: the model's own static input shape), ``threads``, ``warmup``, ``repeats``, ``seed`` (of the fixed random
input). The answer: ``samples_s`` (one number per timed run, seconds, ``time.perf_counter``), ``input_shape``,
``runtime_version`` and ``settings`` (what the runtime was configured with). A failure prints one line
``TypeName: message`` on stderr and exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Session:
    """A loaded model: ``run`` times one inference on what ``feed`` made of the numpy input."""

    run: Callable[[Any], Any]
    input_shape: list[int]
    version: str
    settings: dict[str, Any]
    dtype: str = "float32"
    feed: Callable[[Any], Any] = field(default=lambda x: x)


def _static(shape: Any, what: str) -> list[int]:
    dims = list(shape)
    if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
        raise ValueError(f"{what} has dynamic or unknown dimensions {dims}: give input_shape (--input-shape 1x3x32x32)")
    return dims


def _one_input(names: list[str], model: str) -> None:
    if len(names) != 1:
        raise ValueError(f"{model} has {len(names)} inputs ({', '.join(names)}); measure runs models of one input")


def _ort(req: dict[str, Any]) -> _Session:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = req["threads"]
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(req["model"], opts, providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    _one_input([i.name for i in inputs], req["model"])
    inp = inputs[0]
    dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}.get(inp.type)
    if dtype is None:
        raise ValueError(f"{req['model']}: its input {inp.name!r} is of type {inp.type}; measure feeds float inputs")
    shape = req["input_shape"] or _static(inp.shape, f"{req['model']}'s input {inp.name!r}")
    name = inp.name
    settings = {"provider": "CPUExecutionProvider", "intra_op_num_threads": req["threads"], "inter_op_num_threads": 1,
                "execution_mode": "sequential", "graph_optimization_level": "all"}
    return _Session(lambda x: sess.run(None, {name: x}), shape, ort.__version__, settings, dtype)


def _openvino(req: dict[str, Any]) -> _Session:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(req["model"])
    _one_input([next(iter(p.get_names()), f"#{i}") for i, p in enumerate(model.inputs)], req["model"])
    port = model.inputs[0]
    shape = req["input_shape"]
    if shape is None:
        pshape = port.get_partial_shape()
        if pshape.is_dynamic:
            raise ValueError(f"{req['model']}'s input has dynamic dimensions {pshape}: give input_shape "
                             "(--input-shape 1x3x32x32)")
        shape = [int(d) for d in pshape.to_shape()]
    else:
        model.reshape({0: ov.PartialShape(shape)})
    # f32 for float layers (OpenVINO would choose bf16 on CPUs with AMX); a quantized file still runs its int8 ops.
    config = {"INFERENCE_NUM_THREADS": req["threads"], "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "INFERENCE_PRECISION_HINT": "f32"}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    dtype = {"f16": "float16", "f64": "float64"}.get(port.get_element_type().get_type_name(), "float32")
    settings = {"device": "CPU", **config, "input": "set once, shared (as benchmark_app)"}

    def feed(x: Any) -> Any:  # the input tensor set once, sharing x's memory: no Python wrapping inside the timing
        request.set_input_tensor(ov.Tensor(x, shared_memory=True))
        return x

    return _Session(lambda _x: request.infer(share_outputs=True), shape, ov.get_version(), settings, dtype, feed)


def _torch(req: dict[str, Any]) -> _Session:
    import torch

    torch.set_num_threads(req["threads"])
    torch.set_num_interop_threads(1)
    program = torch.export.load(req["model"])
    names = list(program.graph_signature.user_inputs)
    _one_input(names, req["model"])
    shape = req["input_shape"]
    if shape is None:
        node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
        val = node.meta.get("val")
        shape = _static(val.shape if val is not None else (), f"{req['model']}'s input {names[0]!r}")
    module = program.module()

    def run(x: Any) -> Any:
        with torch.no_grad():
            return module(x)

    settings = {"num_threads": req["threads"], "num_interop_threads": 1, "grad": "no_grad"}
    return _Session(run, shape, torch.__version__, settings, feed=torch.from_numpy)


RUNTIMES = {"ort": _ort, "openvino": _openvino, "torch": _torch}


def run(req: dict[str, Any]) -> dict[str, Any]:
    """Load, warm up and time the model that ``req`` names (see the module docstring)."""
    import numpy as np

    runtime = req["runtime"]
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    s = RUNTIMES[runtime](req)
    x = s.feed(np.random.default_rng(req.get("seed", 0)).standard_normal(tuple(s.input_shape)).astype(s.dtype))
    fn = s.run
    for _ in range(req["warmup"]):
        fn(x)
    samples = []
    for _ in range(req["repeats"]):
        t = time.perf_counter()
        fn(x)
        samples.append(time.perf_counter() - t)
    return {"samples_s": samples, "input_shape": list(s.input_shape), "runtime_version": str(s.version),
            "settings": s.settings}


def main(argv: list[str]) -> int:
    try:
        req = json.loads(argv[1] if len(argv) > 1 else sys.stdin.read())
        out = run(req)
    except Exception as e:  # the parent shows this line to the user, with the runtime and the file
        message = " ".join(str(e).split()) or "(no message)"
        print(f"{type(e).__name__}: {message}", file=sys.stderr)
        return 1
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
