"""Which op chains a runtime fuses, read from the runtime itself.

ONNX Runtime writes the graph it will execute (``SessionOptions.optimized_model_filepath``): a conv with its batch
norm and ReLU comes back as one node; on x86 its NCHWc transformer adds ``ReorderInput``/``ReorderOutput`` nodes at
layout boundaries. OpenVINO reports its executed graph (``CompiledModel.get_runtime_model()``), each node naming the
layers it absorbed. :func:`executed_ops` returns the compute nodes either runtime runs for an ONNX file;
:func:`detect` builds each chain of a network alone (:mod:`chipfit.deploy._samples`), asks the runtime, and returns
:class:`~chipfit.deploy.kernels.FusionRules` plus a table of what it saw.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from chipfit.deploy.kernels import FusionRules

# Nodes that move layout or rename a tensor, not compute: left out when counting the kernels a chain became.
LAYOUT_OPS = {"ReorderInput", "ReorderOutput", "Reshape", "Identity", "Constant", "Squeeze", "Unsqueeze", "Flatten",
              "Parameter", "Result", "Reorder", "Convert", "Input", "Output", "Const"}
RUNTIMES = ("ort", "openvino")


def _ort_ops(path: Path, threads: int) -> list[str]:
    import onnx
    import onnxruntime as ort

    from chipfit.deploy.ort import ort_options

    so = ort_options(threads)  # warnings only: the "hardware specific optimizations" notice for NCHWc is expected
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opt = path.with_name(path.stem + ".optimized.onnx")
    so.optimized_model_filepath = str(opt)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(opt)).graph.node]


def _openvino_ops(path: Path, threads: int) -> list[str]:
    from chipfit.deploy.openvino import _openvino

    core = _openvino().Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
    ops = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        ops.append(info["layerType"].astype(str) if "layerType" in info else op.get_type_name())
    return ops


def executed_ops(path: str | Path, runtime: str = "ort", *, threads: int = 1, compute_only: bool = True) -> list[str]:
    """Op types of the nodes ``runtime`` executes for the ONNX file at ``path``, in its order.

    Args:
        path: an ONNX file.
        runtime: ``ort`` (ONNX Runtime CPU, all graph optimizations) or ``openvino`` (OpenVINO CPU).
        threads: intra-op threads (some fusions depend on the thread count).
        compute_only: drop layout and renaming nodes (:data:`LAYOUT_OPS`).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; fusion can be read from {', '.join(RUNTIMES)}")
    path = Path(path)
    ops = _ort_ops(path, threads) if runtime == "ort" else _openvino_ops(path, threads)
    return [o for o in ops if o not in LAYOUT_OPS] if compute_only else ops


def export_sample(module, shapes: Sequence[Sequence[int]], path: Path) -> Path:
    """Write a kernel sample as ONNX with the legacy exporter at the opset ``chipfit deploy`` writes (20): 50x faster
    than the torch.export-based one on a single op, and the runtime's optimizer makes the same kernel of either file
    (a batch norm is folded by the new exporter or by the runtime; both write GELU as one Gelu op)."""
    import torch

    args = tuple(torch.randn(*[int(d) for d in s]) for s in shapes)
    names = [f"in{i}" for i in range(len(args))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=20, input_names=names,
                          do_constant_folding=True)
    return path


def detect(specs: Iterable[dict[str, Any]], runtime: str = "ort", *, threads: int = 1
           ) -> tuple[FusionRules, list[dict[str, Any]]]:
    """Measure, for each distinct chain among ``specs`` (kernel specs of :mod:`chipfit.deploy.kernels`, one example
    per chain is enough), how many followers ``runtime`` absorbs into the head.

    Returns:
        the rules, and one row per chain: ``chain``, ``executed`` (the compute nodes the runtime ran),
        ``absorbed``, ``followers``, or ``error`` when the chain could not be built alone.
    """
    from chipfit.deploy._samples import UnknownKernel, build

    seen: dict[str, dict[str, Any]] = {}
    for s in specs:
        if "|" in s["chain"]:
            seen.setdefault(s["chain"], s)
    chains: dict[str, int] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (key, spec) in enumerate(sorted(seen.items())):
            followers = len(key.split("|")) - 1
            try:
                mod, shapes = build(spec)
                ops = executed_ops(export_sample(mod, shapes, Path(tmp) / f"c{i}.onnx"), runtime, threads=threads)
            except (UnknownKernel, RuntimeError) as e:  # RuntimeError: the rebuilt chain does not trace
                rows.append({"chain": key, "error": str(e).splitlines()[0][:200]})
                continue
            absorbed = max(0, min(followers, followers - (len(ops) - 1)))
            chains[key] = absorbed
            rows.append({"chain": key, "executed": ops, "absorbed": absorbed, "followers": followers})
    return FusionRules(runtime, chains, nchwc_block=nchwc_block(threads) if runtime == "ort" else 0), rows


@functools.cache
def nchwc_block(threads: int = 1) -> int:
    """Channels per block of ONNX Runtime's blocked conv layout on this CPU, read from the graph it executes: a 3x3
    conv of 8 channels, then one of 16, straight from the model's input; the first that ONNX Runtime reorders into
    its blocked layout gives the block (8 with AVX2, 16 with AVX-512 on x86), 0 when neither is (no blocked layout,
    as on ARM)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        for c in (8, 16):
            path = export_sample(torch.nn.Conv2d(c, c, 3, padding=1), [[1, c, 8, 8]], Path(tmp) / f"b{c}.onnx")
            if "ReorderInput" in executed_ops(path, "ort", threads=threads, compute_only=False):
                return c
    return 0
