"""Kernel times read from the runtime's own profiler, alone and inside whole networks.

The profiler gives, per executed node and run, its time without the call's fixed cost. :func:`profile_file` sums
them per op type (a kernel sample built alone); :func:`profile_nodes` keeps them node by node for a whole network,
and :func:`label_kernels` pairs those nodes with the kernels chipfit reads off its cost records
(:func:`chipfit.deploy.kernels.kernels`); on OpenVINO its per-layer counters (:func:`profile_nodes_openvino`) give
the nodes, and its convolutions (with what it fused into them) and fully connected layers are paired
(:data:`LABELLED_OPENVINO`). The kernel's time as it runs inside the network, with the cache state,
layouts and neighbours it really has there, a label a sample measured alone cannot give.

Pairing is by class: a conv (whatever the runtime fused into it) is one ``Conv``/``FusedConv`` node, a layer norm
one ``LayerNormalization``, and so on (:data:`LABELLED`). Within a class a network's kernels and nodes are taken in
order, each kernel with the first unused node of a fitting output shape; a class whose counts differ (the runtime
removed or merged some) gives no labels for that network. So the kernels a runtime's optimizer may drop or merge
(transposes, element-wise adds and multiplies, layout reorders) are labelled only in the networks where the counts
agree: there every one of them ran.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from chipfit.deploy.kernels import FEATURES, Kernel

# class -> (chipfit kernel types, ONNX Runtime op types that run one such kernel as one node)
LABELLED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conv": (("conv", "dwconv"), ("Conv", "FusedConv", "NhwcFusedConv", "NhwcConv")),
    "layer_norm": (("layer_norm",), ("LayerNormalization", "SimplifiedLayerNormalization")),
    "batch_norm": (("batch_norm",), ("BatchNormalization",)),
    "gelu": (("act.gelu",), ("Gelu", "FastGelu", "BiasGelu")),
    "gemm": (("gemm", "matmul"), ("Gemm", "FusedGemm", "MatMul", "FusedMatMul")),
    "mean": (("reduce.mean",), ("ReduceMean", "GlobalAveragePool")),
    "max_pool": (("pool.max_pool",), ("MaxPool",)),
    "avg_pool": (("pool.avg_pool", "pool.adaptive_avg_pool"), ("AveragePool",)),
    "concat": (("concat",), ("Concat",)),
    "split": (("split",), ("Split",)),
    # kinds the graph optimizer may remove or merge: labelled in the networks where none was (counts agree)
    "transpose": (("transpose",), ("Transpose",)),
    "add": (("eltwise.add",), ("Add", "Sum")),
    "mul": (("eltwise.mul",), ("Mul",)),
    "reorder.in": (("reorder.in",), ("ReorderInput",)),
    "reorder.out": (("reorder.out",), ("ReorderOutput",)),
}
# OpenVINO CPU: the node types of its per-layer counters that run one kernel chipfit reads (it fuses a conv's
# batch norm, activation and residual add into the Convolution node; a layer norm runs as several nodes)
LABELLED_OPENVINO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "conv": (("conv",), ("Convolution",)),
    "dwconv": (("dwconv",), ("GroupConvolution",)),
    "gemm": (("gemm", "matmul"), ("FullyConnected", "MatMul")),
    "max_pool": (("pool.max_pool",), ("MaxPool",)),
    "concat": (("concat",), ("Concatenation", "Concat")),
}
# classes whose nodes may outnumber the kernels: an attention kernel runs as MatMul nodes too (paired by shape)
SURPLUS = ("gemm",)
_OUT, _HO, _WO, _CO = (FEATURES.index(f) for f in ("out_elems", "h_out", "w_out", "c_out"))


@dataclass(frozen=True)
class NodeTime:
    """One node ONNX Runtime executed: its name, op type, first output's shape, and median seconds per run."""

    name: str
    op: str
    shape: tuple[int, ...]
    seconds: float


def _session_events(path: Path, threads: int, runs: int, warmup: int) -> tuple[list[dict], int]:
    """The profiler's node events of ``warmup + runs`` runs of the file on a fixed random input, and the runs."""
    import numpy as np
    import onnxruntime as ort

    from chipfit.deploy.ort import ort_options

    so = ort_options(threads)
    so.enable_profiling = True
    so.profile_file_prefix = str(path.with_suffix(""))
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {i.name: rng.standard_normal([int(d) for d in i.shape]).astype(np.float32) for i in sess.get_inputs()}
    for _ in range(warmup + runs):
        sess.run(None, feed)
    prof = Path(sess.end_profiling())
    events = json.loads(prof.read_text())
    prof.unlink(missing_ok=True)
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    per_run = len(nodes) // (warmup + runs) if nodes else 0
    return nodes[warmup * per_run:], per_run  # the warm-up runs' events come first


def profile_file(path: Path, *, threads: int = 1, runs: int = 30, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Per op type of a file, (seconds per run, nodes per run) as ONNX Runtime's own profiler gives them: a kernel's
    time without the call's fixed cost. The profiler truncates each node's time to whole microseconds (half a
    microsecond per node is added back) and adds its own cost to every node (:func:`profiler_node_cost`)."""
    events, _ = _session_events(path, threads, runs, warmup)
    out: dict[str, tuple[float, float]] = {}
    for e in events:
        op = e.get("args", {}).get("op_name", "?")
        s, n = out.get(op, (0.0, 0.0))
        out[op] = (s + (e["dur"] + 0.5) * 1e-6 / runs, n + 1 / runs)
    return out


def _shape(event: dict) -> tuple[int, ...]:
    outs = event.get("args", {}).get("output_type_shape") or [{}]
    first = next(iter(outs[0].values()), []) if isinstance(outs[0], dict) else []
    return tuple(int(d) for d in first)


def profile_nodes(path: Path, *, threads: int = 1, runs: int = 20, warmup: int = 3, overhead: float = 0.0
                  ) -> list[NodeTime]:
    """The nodes ONNX Runtime runs for the file at ``path``, in its execution order, each with its median seconds
    over ``runs`` profiled runs: whole microseconds plus half a microsecond, less ``overhead`` (the profiler's own
    cost per node, :func:`profiler_node_cost`), at least 10 ns."""
    events, per_run = _session_events(Path(path), threads, runs, warmup)
    times: dict[str, list[float]] = {}
    first: dict[str, dict] = {}
    for e in events:
        times.setdefault(e["name"], []).append((e["dur"] + 0.5) * 1e-6)
        first.setdefault(e["name"], e)
    order = [e["name"] for e in events[:per_run]]
    return [NodeTime(name.removesuffix("_kernel_time"), first[name].get("args", {}).get("op_name", "?"),
                     _shape(first[name]), max(statistics.median(times[name]) - overhead, 1e-8)) for name in order]


def profile_nodes_openvino(path: Path, *, threads: int = 1, runs: int = 20, warmup: int = 3) -> list[NodeTime]:
    """The nodes OpenVINO's CPU plugin executes for the file at ``path`` (its per-layer counters, ``PERF_COUNT``),
    in its order, each with its median seconds over ``runs`` runs and its first output's shape from the runtime
    model; nodes it optimized out or did not run are left out."""
    import numpy as np

    from chipfit.deploy.openvino import _openvino

    core = _openvino().Core()
    compiled = core.compile_model(str(path), "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    feed = [rng.standard_normal(list(p.get_shape())).astype(np.float32) for p in compiled.inputs]
    shapes: dict[str, tuple[int, ...]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_output_size() and op.output(0).get_partial_shape().is_static:
            shapes[op.get_friendly_name()] = tuple(int(d) for d in op.output(0).get_partial_shape().to_shape())
    times: dict[str, list[float]] = {}
    order: list[tuple[str, str]] = []
    for r in range(warmup + runs):
        req.infer(feed)
        if r < warmup:
            continue
        for info in req.get_profiling_info():
            if str(info.status).rsplit(".", 1)[-1] != "EXECUTED":  # NOT_RUN, OPTIMIZED_OUT
                continue
            if info.node_name not in times:
                times[info.node_name] = []
                order.append((info.node_name, info.node_type))
            times[info.node_name].append(info.real_time.total_seconds())
    return [NodeTime(name, op, shapes.get(name, ()), max(statistics.median(times[name]), 1e-8)) for name, op in order]


def _fits(kernel: Kernel, node: NodeTime) -> bool:
    """Whether the node's output can be the kernel's: the same map for a 4-d output (blocked layouts pad channels),
    else the same element count."""
    f = kernel.features
    if len(node.shape) == 4 and f[_HO] and f[_WO]:
        return (node.shape[2], node.shape[3]) == (int(f[_HO]), int(f[_WO])) or \
            (node.shape[1], node.shape[2]) == (int(f[_HO]), int(f[_WO]))  # NHWC
    n = 1
    for d in node.shape:
        n *= d
    if kernel.type in ("gemm", "matmul") and f[_CO] and node.shape and node.shape[-1] != int(f[_CO]):
        return False  # a matmul of attention's with as many elements is not this linear
    return n == int(f[_OUT])


def label_kernels(ks: list[Kernel], nodes: list[NodeTime], runtime: str = "ort"
                  ) -> tuple[list[tuple[int, float]], dict[str, str]]:
    """In-network seconds of the kernels ``ks`` (one network's, :func:`~chipfit.deploy.kernels.kernels`) read off
    its profiled ``nodes`` (:func:`profile_nodes`, :func:`profile_nodes_openvino` for ``runtime`` openvino).

    Returns:
        (kernel index, seconds) per labelled kernel, and per class of :data:`LABELLED` left out, why.
    """
    labels: list[tuple[int, float]] = []
    skipped: dict[str, str] = {}
    for cls, (types, ops) in (LABELLED_OPENVINO if runtime == "openvino" else LABELLED).items():
        kis = [i for i, k in enumerate(ks) if k.type in types]
        cand = [n for n in nodes if n.op in ops]
        if not kis and not cand:
            continue
        if len(kis) != len(cand) and not (cls in SURPLUS and len(cand) > len(kis)):
            skipped[cls] = f"{len(kis)} kernels, {len(cand)} nodes"
            continue
        used = [False] * len(cand)
        pairs = []
        for i in kis:
            j = next((j for j, n in enumerate(cand) if not used[j] and _fits(ks[i], n)), None)
            if j is None:
                break
            used[j] = True
            pairs.append((i, cand[j].seconds))
        if len(pairs) != len(kis):
            skipped[cls] = f"no node of a fitting shape for {ks[kis[len(pairs)]].name}"
            continue
        labels.extend(pairs)
    return labels, skipped


def profiler_node_cost(tmp: Path, threads: int) -> float:
    """Seconds the profiler reports for a node that does almost nothing (a ReLU of one element): its own cost per
    node, taken off every profiled kernel."""
    import torch

    from chipfit.deploy.fusion import export_sample

    path = export_sample(torch.nn.ReLU(), [[1]], tmp / "node.onnx")
    return min(sum(s for s, _ in profile_file(path, threads=threads, runs=200).values()) for _ in range(3))


def call_overhead(tmp: Path, runtime: str, threads: int) -> float:
    """Seconds the runtime spends on a call that does almost nothing (a ReLU of one element)."""
    import torch

    from chipfit.deploy.fusion import export_sample
    from chipfit.deploy.ort import time_file

    path = export_sample(torch.nn.ReLU(), [[1]], tmp / "overhead.onnx")
    return min(time_file(path, runtime, threads=threads, min_repeats=200) for _ in range(3))
