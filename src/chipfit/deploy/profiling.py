"""Kernel times read from the runtime's own profiler, alone and inside whole networks.

The profiler gives, per executed node and run, its time without the call's fixed cost. :func:`profile_file` sums
them per op type (a kernel sample built alone); :func:`profile_nodes` keeps them node by node for a whole network,
and :func:`label_kernels` pairs those nodes with the kernels chipfit reads off its cost records
(:func:`chipfit.deploy.kernels.kernels`); on OpenVINO its per-layer counters (:func:`profile_nodes_openvino`, read
twice: they are running averages) give the nodes, and its convolutions (with what it fused into them), fully
connected layers, layer norms, means, splits and transposes are paired (:data:`LABELLED_OPENVINO`). The kernel's time
as it runs inside the network, with the cache state, layouts and neighbours it really has there, a label a sample
measured alone cannot give.

Pairing is by class: a conv (whatever the runtime fused into it) is one ``Conv``/``FusedConv`` node, a layer norm
one ``LayerNormalization``, and so on (:data:`LABELLED`); an attention is the group of nodes it runs as (scores
MatMul, mask add, Softmax, MatMul by the values: :func:`attention_nodes`). Within a class a network's kernels and
nodes are taken in order, each kernel with the first unused node of a fitting output shape. Where a class's counts
differ (the runtime removed or merged some), only the pairs that are still sure are kept: for transposes, a kernel
whose op still runs under the exporter's name (``node_permute_3``), and the kernels and nodes of a shape where they
are as many (:data:`BY_NAME`, :data:`BY_SHAPE`); the other classes give no labels for that network. So the kernels
a runtime's optimizer may drop or merge (element-wise adds and multiplies, layout reorders) are labelled only in the
networks where every one of them ran.
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
    "mean": (("reduce.mean",), ("ReduceMean",)),  # those a layer norm's node group does not hold
    "split": (("split",), ("Split", "VariadicSplit")),
    "transpose": (("transpose",), ("Transpose",)),  # paired by the exporter's names: OpenVINO keeps them
}
# classes whose nodes may outnumber the kernels: an attention kernel runs as MatMul nodes too (paired by shape)
SURPLUS = ("gemm",)
# classes whose kernels, where their counts and the nodes' differ, are paired by the exporter's name of their op
# (:attr:`Kernel.op`). Adds and multiplies are not: pairing them by name too made both bench sets' predictions worse
# (RMSPE 5.4% -> 5.9% and 4.9% -> 5.2%, ONNX Runtime on an AMD EPYC), for a reason not found yet
BY_NAME = ("transpose",)
# classes whose kernels, where their counts and the nodes' differ, are paired by shape too (where kernels and nodes of
# a shape are as many) once those the exporter's names pair are taken out: the pieces of attention's q, k, v
# transposes carry names the runtime made up; on OpenVINO a layer norm or two of a network may run otherwise than
# as the node group :func:`layer_norm_nodes` finds
BY_SHAPE = ("transpose", "layer_norm")
# An attention kernel runs as several nodes: the scores' MatMul, what is added to or multiplied into the scores
# (a mask, a position bias, the scale), the Softmax, and the MatMul by the values (:func:`attention_nodes`).
MATMULS = ("MatMul", "FusedMatMul")
SCORE_OPS = ("Add", "Mul", "Div", "Sub", "Where", "Eltwise", "Subgraph")
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


def profile_nodes_openvino(path: Path, *, threads: int = 1, runs: int = 40, warmup: int = 10,
                           seconds: float = 0.5) -> list[NodeTime]:
    """The nodes OpenVINO's CPU plugin executes for the file at ``path`` (its per-layer counters, ``PERF_COUNT``),
    in its order, each with its seconds per run and its first output's shape from the runtime model; nodes it
    optimized out or did not run are left out.

    A counter is not the last run's time: it is the average over every run since the model was compiled, in whole
    microseconds, each run's time truncated to whole microseconds before it is added up. Read after ``warmup`` runs
    and again after at least ``runs`` more (and at least ``seconds`` of them, at most 1,000), the difference of the
    two totals is the steady runs' time alone, without the first runs' allocations (a conv's first run took 3x its
    steady time on an AMD EPYC); :func:`counter_seconds` undoes the two truncations on average."""
    import time

    import numpy as np

    from chipfit.deploy.openvino import _openvino

    core = _openvino().Core()
    compiled = core.compile_model(str(path), "CPU", {"PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads,
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    feed = [rng.standard_normal(list(p.get_shape())).astype(np.float32) for p in compiled.inputs]
    for i, a in enumerate(feed):  # set once, as the timing does (chipfit.deploy.ort.openvino_call)
        req.set_input_tensor(i, _openvino().Tensor(a, shared_memory=True))
    shapes: dict[str, tuple[int, ...]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        if op.get_output_size() and op.output(0).get_partial_shape().is_static:
            shapes[op.get_friendly_name()] = tuple(int(d) for d in op.output(0).get_partial_shape().to_shape())

    def averages() -> dict[str, tuple[str, float]]:
        return {i.node_name: (i.node_type, i.real_time.total_seconds() * 1e6) for i in req.get_profiling_info()
                if str(i.status).rsplit(".", 1)[-1] == "EXECUTED"}  # not NOT_RUN, OPTIMIZED_OUT

    for _ in range(max(warmup, 1)):
        req.infer(share_outputs=True)
    first, n1 = averages(), max(warmup, 1)
    t0, n = time.perf_counter(), 0
    while n < max(runs, 1) or (time.perf_counter() - t0 < seconds and n < 1000):
        req.infer(share_outputs=True)
        n += 1
    last = averages()
    return [NodeTime(name, op, shapes.get(name, ()), counter_seconds(first.get(name, (op, 0.0))[1], n1, avg, n1 + n))
            for name, (op, avg) in last.items()]


def counter_seconds(avg1_us: float, runs1: int, avg2_us: float, runs2: int) -> float:
    """Seconds per run between two readings of an OpenVINO counter, ``avg1_us`` after ``runs1`` runs and ``avg2_us``
    after ``runs2``: (total2 - total1) / (runs2 - runs1), plus a microsecond for the truncations (each run's time
    to whole microseconds, half a microsecond on average; the average to whole microseconds, half of one again), at
    least 10 ns."""
    per_run = (avg2_us * runs2 - avg1_us * runs1) / max(runs2 - runs1, 1) + 1.0
    return max(per_run * 1e-6, 1e-8)


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


def attention_nodes(nodes: list[NodeTime]) -> list[tuple[list[int], NodeTime]]:
    """The node groups that run one attention each: per ``Softmax`` node, the nearest MatMul before it with the
    scores' shape, the element-wise nodes of that shape between them, and the nearest MatMul after it whose output
    has the scores' rows (``..., L, d`` for ``..., L, L`` scores). Returns per group the node indices and one node
    standing for the group (its output shape, its seconds summed)."""
    out: list[tuple[list[int], NodeTime]] = []
    taken: set[int] = set()
    for s, node in enumerate(nodes):
        if node.op != "Softmax" or len(node.shape) < 2:
            continue
        scores = node.shape
        group = [s]
        first = next((j for j in range(s - 1, -1, -1)
                      if j not in taken and nodes[j].op in MATMULS and nodes[j].shape == scores), None)
        last = next((j for j in range(s + 1, len(nodes))
                     if j not in taken and nodes[j].op in MATMULS and nodes[j].shape[:-1] == scores[:-1]), None)
        if first is None or last is None:
            continue
        group += [first, last] + [j for j in range(first + 1, s) if nodes[j].op in SCORE_OPS
                                  and nodes[j].shape == scores and j not in taken]
        taken.update(group)
        out.append((sorted(group), NodeTime(nodes[last].name, "Attention", nodes[last].shape,
                                            sum(nodes[j].seconds for j in group))))
    return out


def mha_nodes(nodes: list[NodeTime], ks: list[Kernel]) -> list[tuple[list[int], NodeTime]]:
    """OpenVINO's attentions that run as one node: on CPUs with AVX-512 it compiles scores, softmax, the product by
    the values and the transpose after them into one ``Subgraph`` (a "snippet"), whose output is the attention's
    ``batch, heads, L, d`` transposed to ``batch, L, heads, d``. Per attention kernel of ``ks``, in order, the first
    unused such node."""
    out: list[tuple[list[int], NodeTime]] = []
    used: set[int] = set()
    for k in ks:
        if k.type != "attention" or len(k.shape) != 4:
            continue
        b, h, length, d = k.shape
        j = next((j for j, n in enumerate(nodes) if j not in used and n.op == "Subgraph"
                  and _dims(n.shape) == _dims((b, length, h, d))), None)
        if j is None:
            continue
        used.add(j)
        out.append(([j], NodeTime(nodes[j].name, "Attention", nodes[j].shape, nodes[j].seconds)))
    return out


def shuffle_pairs(ks: list[Kernel], nodes: list[NodeTime]) -> tuple[list[tuple[int, float]], set[int]]:
    """OpenVINO runs a channel shuffle (view to ``n, g, c/g, h, w``, swap the two group axes, view back) as one
    ``ShuffleChannels`` node of the ``n, c, h, w`` tensor. Per such node, in order, the first unused transpose kernel
    of five axes and as many elements. Returns (kernel index, seconds) pairs and the node indices taken."""
    pairs: list[tuple[int, float]] = []
    taken: set[int] = set()
    used: set[int] = set()
    for j, n in enumerate(nodes):
        if n.op != "ShuffleChannels":
            continue
        size = 1
        for d in n.shape:
            size *= d
        i = next((i for i, k in enumerate(ks) if i not in used and k.type == "transpose" and len(k.shape) == 5
                  and int(k.features[_OUT]) == size), None)
        if i is None:
            continue
        used.add(i)
        taken.add(j)
        pairs.append((i, n.seconds))
    return pairs, taken


def _dims(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)  # a runtime may keep or drop unit axes (a piece of a split)


def _pairs_by_name(ks: list[Kernel], kis: list[int], cand: list[NodeTime]) -> list[tuple[int, float]]:
    """The kernels whose op still runs under the exporter's name (``node_permute_3``, :attr:`Kernel.op`) with the
    same output shape (unit axes aside), paired with that node. The shape guards against numbers that drifted: ops
    chipfit's capture folds away (Swin's position bias, computed from weights alone) still take a number in the
    exporter's graph, so later ops of that name are numbered one higher there."""
    by_name = {n.name: n for n in cand}
    out = []
    for i in kis:
        node = by_name.get("node_" + ks[i].op) if ks[i].op else None
        if node is not None and _dims(node.shape) == _dims(ks[i].shape):
            out.append((i, node.seconds))
    return out


def _pairs_by_shape(ks: list[Kernel], kis: list[int], cand: list[NodeTime]) -> list[tuple[int, float]]:
    """Where a class's kernels and nodes differ in number (the runtime dropped or added some), the pairs that are
    still sure: per output shape, the kernels and nodes of that shape, in order, where they are as many."""
    by_k: dict[tuple[int, ...], list[int]] = {}
    by_n: dict[tuple[int, ...], list[NodeTime]] = {}
    for i in kis:
        if ks[i].shape:
            by_k.setdefault(_dims(ks[i].shape), []).append(i)
    for node in cand:
        by_n.setdefault(_dims(node.shape), []).append(node)
    return [(i, node.seconds) for shape, group in by_k.items() if len(by_n.get(shape, ())) == len(group)
            for i, node in zip(group, by_n[shape], strict=True)]


def layer_norm_nodes(nodes: list[NodeTime]) -> list[tuple[list[int], NodeTime]]:
    """OpenVINO's layer norms: it runs one as a ``ReduceMean`` (the mean, last axis cut to 1), the ``Subgraph`` of
    ``x - mean`` and an ``MVN``/``RMS`` node (with the scale and shift fused), layout ``Reorder``s of the same shape
    between them. Per MVN/RMS node, the nearest such ReduceMean before it, and the nodes of its shape between."""
    out: list[tuple[list[int], NodeTime]] = []
    taken: set[int] = set()
    for s, node in enumerate(nodes):
        if node.op not in ("MVN", "RMS") or not node.shape:
            continue
        mean_shape = node.shape[:-1] + (1,)
        first = next((j for j in range(s - 1, -1, -1) if j not in taken and nodes[j].op == "ReduceMean"
                      and nodes[j].shape == mean_shape), None)
        if first is None:
            continue
        group = [first, s] + [j for j in range(first + 1, s) if j not in taken and nodes[j].shape == node.shape
                              and nodes[j].op in ("Subgraph", "Reorder", "Eltwise")]
        taken.update(group)
        out.append((sorted(group), NodeTime(node.name, "LayerNorm", node.shape,
                                            sum(nodes[j].seconds for j in group))))
    return out


def label_kernels(ks: list[Kernel], nodes: list[NodeTime], runtime: str = "ort"
                  ) -> tuple[list[tuple[int, float]], dict[str, str]]:
    """In-network seconds of the kernels ``ks`` (one network's, :func:`~chipfit.deploy.kernels.kernels`) read off
    its profiled ``nodes`` (:func:`profile_nodes`, :func:`profile_nodes_openvino` for ``runtime`` openvino).

    Returns:
        (kernel index, seconds) per labelled kernel, and per class of :data:`LABELLED` left out, why.
    """
    labels: list[tuple[int, float]] = []
    skipped: dict[str, str] = {}
    # kernels that run as several nodes: those nodes, one stand-in node per kernel, and out of the other classes
    groups = {"attention": attention_nodes(nodes)}
    shuffled: set[int] = set()
    if runtime == "openvino":
        groups["layer_norm"] = layer_norm_nodes(nodes)
        groups["attention"] += mha_nodes(nodes, ks)
        pairs, shuffle_idx = shuffle_pairs(ks, nodes)
        labels.extend(pairs)
        shuffled = {i for i, _ in pairs}
    else:
        shuffle_idx = set()
    inside = {j for found in groups.values() for idx, _ in found for j in idx} | shuffle_idx
    rest = [n for j, n in enumerate(nodes) if j not in inside]
    classes = {"attention": (("attention",), ("Attention",))}
    classes.update(LABELLED_OPENVINO if runtime == "openvino" else LABELLED)
    if runtime == "openvino":
        classes["layer_norm"] = (("layer_norm",), ("LayerNorm",))
    for cls, (types, ops) in classes.items():
        kis = [i for i, k in enumerate(ks) if k.type in types and i not in shuffled]
        cand = [n for _, n in groups[cls]] if cls in groups else [n for n in rest if n.op in ops]
        if not kis and not cand:
            continue
        if len(kis) != len(cand) and not (cls in SURPLUS and len(cand) > len(kis)):
            pairs = _pairs_by_name(ks, kis, cand) if cls in BY_NAME else []
            if cls in BY_SHAPE:
                named = {i for i, _ in pairs}
                left = {n.name for n in cand} - {"node_" + ks[i].op for i in named}
                pairs += _pairs_by_shape(ks, [i for i in kis if i not in named], [n for n in cand if n.name in left])
            labels.extend(pairs)
            skipped[cls] = f"{len(kis)} kernels, {len(cand)} nodes" + \
                (f" ({len(pairs)} paired by name or shape)" if pairs else "")
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
