"""Measured latency in this process: ONNX Runtime (or OpenVINO) on this machine's CPU.

:func:`time_file` is the quick in-process timing the predictor's build and ``chipfit compress`` use;
:mod:`chipfit.deploy.measure` is the protocol (fresh processes, raw samples, load checks) for figures to report.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def ort_options(threads: int = 1) -> Any:
    """ONNX Runtime session options for timing: ``threads`` intra-op threads (0: one per core, ONNX Runtime's
    default), one inter-op thread, sequential execution, warnings only."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


def _session(path: Path, runtime: str, threads: int, shape: Sequence[int] | None = None):
    """A callable running the file once on fixed random inputs (``threads`` 0: the runtime's own default; ``shape``:
    the first input's, where the file's own is not fixed)."""
    import numpy as np

    rng = np.random.default_rng(0)
    if runtime == "ort":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), ort_options(threads), providers=["CPUExecutionProvider"])
        ins = sess.get_inputs()
        shapes = [list(shape) if shape is not None and j == 0 else [int(d) for d in i.shape] for j, i in enumerate(ins)]
        feed = {i.name: rng.standard_normal(s).astype(np.float32) for i, s in zip(ins, shapes, strict=True)}
        return lambda: sess.run(None, feed)
    from chipfit.deploy.openvino import _openvino

    ov = _openvino()
    config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    return openvino_call(compiled, [rng.standard_normal(list(p.get_shape())).astype(np.float32)
                                    for p in compiled.inputs])


def openvino_call(compiled: Any, arrays: Sequence[Any]):
    """A callable running one inference of the compiled OpenVINO model on ``arrays``, set as its input tensors once
    (sharing their memory), as OpenVINO's own benchmark_app does: handing the arrays to every ``infer`` call instead
    makes the Python API wrap them anew each time, 25 to 30 us a call on an AMD EPYC (a 1-element ReLU: 42 us a call
    against 12 us), and more in a process holding many models; that is the caller's Python, not the runtime."""
    import openvino as ov

    req = compiled.create_infer_request()
    for i, a in enumerate(arrays):
        req.set_input_tensor(i, ov.Tensor(a, shared_memory=True))

    def run():
        return req.infer(share_outputs=True)

    run.arrays = list(arrays)  # kept alive with the callable: the tensors share their memory
    return run


def time_file(path: Path, runtime: str = "ort", *, threads: int = 1, min_repeats: int = 15, min_s: float = 0.15,
              max_repeats: int = 400, warmup: int = 3, input_shape: Sequence[int] | None = None) -> float:
    """Median seconds of one run of an ONNX file, in this process: ``warmup`` runs, then at least ``min_repeats``
    and at least ``min_s`` seconds of timed runs."""
    run = _session(path, runtime, threads, input_shape)
    for _ in range(warmup):
        run()
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < max_repeats and (len(ts) < min_repeats or time.perf_counter() - start < min_s):
        t = time.perf_counter()
        run()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)



def ort_latency(path: str | Path, input_shape: Sequence[int], runs: int = 50) -> float:
    """Median seconds of one ONNX Runtime CPU run of the file at ``path`` (one thread per core available, after 5
    warm-up runs, ``runs`` timed runs) on a fixed random input of ``input_shape``.

    This CPU need not have a fast int8 path: an int8 file need not run faster here than a float one; a chip's low
    precision is what the simulator models.
    """
    if runs < 1:
        raise ValueError(f"ort_latency needs at least one timed run, got runs={runs}")
    return time_file(Path(path), "ort", threads=0, min_repeats=runs, min_s=0.0, max_repeats=runs, warmup=5,
                     input_shape=input_shape)
