"""Build a latency predictor on this machine: label kernels inside networks, sample the rest, fit, correct.

1. Training networks: random architectures of the zoo's families (:mod:`chipfit.models.sample`), costed once.
2. Fusion rules: every conv/linear chain among them is built alone and the runtime says what it fused
   (:func:`chipfit.deploy.fusion.detect`).
3. Whole networks (for up to 70% of the budget; the kernels get at least 20% after them): each exported as
   ``chipfit deploy`` does and, once a canary network runs as fast as it did
   (:mod:`chipfit.deploy.steady`), measured (:func:`chipfit.deploy.measure.measure`, three fresh processes: on
   this kind of machine one process's latency can differ from the next one's by 1.5x), its executed graph read, and
   its nodes profiled one by one (ONNX Runtime's profiler, OpenVINO's per-layer counters): the kernels they pair
   with get their in-network seconds as labels (:mod:`chipfit.deploy.profiling`), scaled down where the nodes sum to
   more than the network's measured latency (the profiling process ran slow).
4. Kernel samples measured alone, for the types the networks label too rarely and for the layout reorders around
   convs: each kernel built alone (:mod:`chipfit.deploy._samples`) with its output kept inside the graph, exported
   and timed by the runtime's own profiler (ONNX Runtime; elsewhere the median call minus the call's fixed cost),
   round-robin over kernel types; then the types whose cross-validated error is largest get neighbours (other map
   sizes and widths) of their worst-predicted samples.
5. One regressor per kernel type, on its in-network labels where there are enough (:func:`fit_all`).
6. Survival: in each training network's executed graph, the share of transposes, adds, multiplies and reorders the
   runtime's optimizer kept, per kernel context (:func:`fit_survival`).
7. Correction: ``measured = sum over kernel groups of scale_g * their kernels' sum + per_kernel * kernels + per_view *
   views + per_byte terms for activations + offset``, fitted by bounded least squares on the whole networks
   (:func:`fit_correction`), without the networks it misses by far (measured in a slow process); the offset is the
   runtime's call overhead, measured (:func:`call_overhead`).

Every measured sample is appended to ``samples.jsonl`` and every network to ``networks.jsonl`` in the output folder
as it is taken: an interrupted build run again on the same folder keeps what it had, and ``refit=True`` fits again
on it without measuring (after chipfit's pairing or regressors changed).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from chipfit.deploy.kernels import FEATURES, FusionRules, Kernel, chains, kernels, view_count, with_net_bytes
from chipfit.deploy.ort import time_file
from chipfit.deploy.predictor import Predictor, environment, fit_type
from chipfit.deploy.profiling import (
    NodeTime,
    call_overhead,
    label_kernels,
    profile_file,
    profile_nodes,
    profile_nodes_openvino,
    profiler_node_cost,
)
from chipfit.deploy.steady import Canary

Progress = Callable[[str, float], None]


def _key(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)


class SampleLog:
    """Measured kernel samples, appended to a JSON-lines file as they come."""

    def __init__(self, path: Path, env: dict[str, Any]):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interruption
                if row.get("env") == env:
                    if len(row.get("features", ())) == len(FEATURES) - 1:  # logged before net_bytes was a feature
                        row["features"] = list(with_net_bytes(tuple(row["features"]) + (0.0,)))
                    self.rows.append(row)
        self.env = env
        self.done = {r["key"] for r in self.rows}

    def add(self, kernel_type: str, spec: dict[str, Any], features: tuple[float, ...], seconds: float) -> None:
        row = {"type": kernel_type, "key": _key(spec), "spec": spec, "features": list(features), "s": seconds,
               "env": self.env}
        self.rows.append(row)
        self.done.add(row["key"])
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def measure_kernel(spec: dict[str, Any], tmp: Path, runtime: str, threads: int, overhead: float
                   ) -> tuple[float, dict[str, float]]:
    """Seconds of the kernel ``spec`` run alone, at least 10 ns, and the seconds of the layout reorders the runtime
    ran around it (``ReorderInput`` / ``ReorderOutput``). On ONNX Runtime: its profiler on the kernel's compute
    nodes, the kernel's output kept inside the graph (:class:`~chipfit.deploy._samples.Tail`), ``overhead`` (the
    profiler's own cost, :func:`profiler_node_cost`) taken off each node; elsewhere the median call minus
    ``overhead`` (the call's fixed cost, :func:`call_overhead`)."""
    from chipfit.deploy._samples import TAIL_OPS, Tail, build
    from chipfit.deploy.fusion import LAYOUT_OPS, export_sample

    mod, shapes = build(spec)
    if runtime != "ort":
        path = export_sample(mod, shapes, tmp / "k.onnx")
        return max(time_file(path, runtime, threads=threads) - overhead, 1e-8), {}
    path = export_sample(Tail(mod).eval(), shapes, tmp / "k.onnx")
    ops = {op: max(s - n * overhead, 1e-8) for op, (s, n) in profile_file(path, threads=threads).items()}
    kernel = sum(s for op, s in ops.items() if op not in LAYOUT_OPS and op not in TAIL_OPS)
    return max(kernel, 1e-8), {op: s for op, s in ops.items() if op in ("ReorderInput", "ReorderOutput")}


def _take(log: SampleLog, kernel_type: str, spec: dict[str, Any], features: tuple[float, ...], tmp: Path,
          runtime: str, threads: int, overhead: float) -> None:
    """Measure one kernel and log it, with the reorders around a conv as samples of their own."""
    from chipfit.deploy.kernels import tensor_features

    seconds, reorders = measure_kernel(spec, tmp, runtime, threads, overhead)
    log.add(kernel_type, spec, with_net_bytes(features), seconds)  # measured alone: the network is the kernel
    if kernel_type in ("conv", "dwconv"):
        for op, r_type, shape in (("ReorderInput", "reorder.in", spec["input"]),
                                  ("ReorderOutput", "reorder.out", spec["output"])):
            if op in reorders:
                log.add(r_type, {"chain": r_type, "input": list(shape), "of": _key(spec)}, tensor_features(shape),
                        reorders[op])


def _features_of(spec: dict[str, Any], kernel_type: str, rules: FusionRules) -> tuple[float, ...] | None:
    """Features of a perturbed spec: cost its module with chipfit and take the kernel of the same type."""
    from chipfit.cost import count
    from chipfit.deploy._samples import build

    mod, shapes = build(spec)
    if len(shapes) != 1:
        return None
    ks = [k for k in kernels(count(mod, tuple(shapes[0])), rules) if k.type == kernel_type]
    return max(ks, key=lambda k: k.features[0] + k.features[5]).features if ks else None


MIN_IN_NETWORK = 20  # in-network labels of a type from which they replace its samples measured alone
# How hard the correction's per-group scales are held at 1 for groups whose kernels were labelled inside networks:
# those labels are already the kernels' times in context, so a scale would only trade one group's error for
# another's (on 74 held-out networks, ONNX Runtime on an AMD EPYC: RMSPE 8.6% with 0.3 for every group, 7.8% with 30).
IN_NETWORK_PRIOR = 30.0


def fit_all(rows: list[dict[str, Any]], seed: int = 0, in_network: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """Per-type regressors from measured rows (``type``, ``features``, ``s``): kernel samples measured alone, and
    kernels labelled inside whole networks (``in_network``, :func:`chipfit.deploy.profiling.label_kernels`). A type
    with at least :data:`MIN_IN_NETWORK` in-network labels is fitted on those alone: they are the times the kernel
    takes where it will be predicted; the others keep their samples measured alone."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["type"], []).append(r)
    inside: dict[str, list[dict[str, Any]]] = {}
    for r in in_network or []:
        inside.setdefault(r["type"], []).append(r)
    for t, rs in inside.items():
        if len(rs) >= MIN_IN_NETWORK or t not in by_type:
            by_type[t] = rs
    return {t: fit_type(t, [r["features"] for r in rs], [r["s"] for r in rs], seed=seed)
            for t, rs in by_type.items()}


def group_priors(preds: list[Any], labelled: Counter) -> dict[str, float]:
    """Per kernel group, how hard the correction holds its scale at 1: :data:`IN_NETWORK_PRIOR` where kernel types
    fitted on in-network labels hold at least 80% of the group's predicted seconds over the training networks (their
    times are already the times in context), 0.3 elsewhere (kernels measured alone, which a runtime may fuse with
    their neighbours: OpenVINO runs chains of element-wise ops as one Subgraph)."""
    from chipfit.deploy.predictor import group_of

    total: Counter = Counter()
    inside: Counter = Counter()
    for p in preds:
        for _, t, sec in p.kernels:
            if sec == sec:  # not NaN (a type never measured)
                total[group_of(t)] += sec
                if labelled[t] >= MIN_IN_NETWORK:
                    inside[group_of(t)] += sec
    return {g: IN_NETWORK_PRIOR if inside[g] >= 0.8 * total[g] > 0 else 0.3 for g in total}


def in_network_rows(nets: list[tuple[Any, dict[str, Any]]], rules: FusionRules, runtime: str = "ort"
                    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Training rows (``type``, ``features``, ``s``) of the kernels that the profiled nodes of each (profile,
    network log row) label (:func:`chipfit.deploy.profiling.label_kernels`), and per kernel class, in how many
    networks its kernels and nodes could not be paired.

    Where a network's nodes sum to more than its measured latency (the median of fresh processes), the process that
    profiled it ran slow (a process's memory layout can make a network 1.5x slower, see the README): its nodes are
    scaled down to sum to the measured latency. The profiler's own cost per node taken off is the least that any
    network's row measured (:func:`node_cost`)."""
    out: list[dict[str, Any]] = []
    unpaired: Counter = Counter()
    cost = node_cost([row for _, row in nets])
    for prof, row in nets:
        ks = kernels(prof, rules, specs=False)
        nodes = NetworkLog.nodes(row, cost)
        total = sum(n.seconds for n in nodes)
        scale = min(1.0, row["measured_s"] / total) if total > 0 and row.get("measured_s") else 1.0
        labels, skipped = label_kernels(ks, nodes, runtime)
        out.extend({"type": ks[j].type, "features": list(ks[j].features), "s": sec * scale} for j, sec in labels)
        unpaired.update(skipped.keys())
    return out, dict(unpaired)


class NetworkLog:
    """Whole training networks as measured, one JSON line each (its name, measured seconds, the op types the runtime
    executed and its profiled nodes), so an interrupted build keeps them; the nodes are paired with kernels when the
    predictor is fitted (:func:`in_network_rows`)."""

    def __init__(self, path: Path, env: dict[str, Any]):
        self.path = path
        self.env = env
        self.rows: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if row.get("env") == env:
                    self.rows[row["name"]] = row

    @staticmethod
    def nodes(row: dict[str, Any], node_cost: float | None = None) -> list[NodeTime]:
        """The row's profiled nodes; where the row holds them raw (with the profiler's cost per node measured beside
        them, ``node_cost_s``), less ``node_cost`` (default the row's own), at least 10 ns. Rows written before
        that was kept hold their nodes with the cost of their build already taken off."""
        cost = 0.0 if row.get("node_cost_s") is None else row["node_cost_s"] if node_cost is None else node_cost
        return [NodeTime(n, op, tuple(shape), max(sec - cost, 1e-8) if cost else sec)
                for n, op, shape, sec in row.get("nodes", [])]

    def add(self, name: str, measured_s: float, executed: dict[str, int], nodes: list[NodeTime],
            canary: float | None = None, call_s: float | None = None, node_cost_s: float | None = None
            ) -> dict[str, Any]:
        row = {"name": name, "measured_s": measured_s, "executed": executed,
               "nodes": [[n.name, n.op, list(n.shape), n.seconds] for n in nodes], "canary": canary,
               "call_s": call_s, "node_cost_s": node_cost_s, "env": self.env}
        self.rows[name] = row
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row


def fit_correction(group_s: list[dict[str, float]], n_kernels: list[int], n_views: list[int], measured: list[float],
                   prior: float | dict[str, float] = 0.3, weight_bytes: list[float] | None = None,
                   act_bytes: list[float] | None = None, spill_bytes: list[float] | None = None,
                   offset: float | None = None, robust: bool = True) -> dict[str, Any]:
    """Fit, on whole networks, ``measured = sum_g scale_g * kernels_g + per_kernel * kernels + per_view * views +
    per_weight_byte * weight bytes + per_act_byte * activation bytes + per_spill_byte * bytes beyond the cache +
    offset`` by bounded least squares in relative
    terms (a 0.2 ms network counts as much as a 20 ms one), each scale pulled towards 1 with weight ``prior`` so that
    a group few networks exercise keeps its kernels' sum.

    Why the byte terms: a kernel measured alone finds its weights in cache on every run; inside a network each
    layer's weights come from memory once per inference, and its inputs from the kernel before, from cache only when
    they fit (``spill_bytes``: per kernel, what it moves beyond the L2 cache, summed). Labels taken inside networks
    hold those trips already, so :func:`build_predictor`, whose labels mostly are, fits no weight term.
    ``per_kernel`` is 0 or more: a kernel's dispatch costs time. Allowed down to -3 us, the fit took -0.19 to -0.28
    us per kernel to make up for kernel types timed alone that its training networks over-predicted, and carried it
    to networks with several times their kernels: QuadraNet36-xxs at 32 pixels (923 kernels) came out 50% fast.

    Args:
        group_s: per network, the predicted kernel seconds summed per group
            (:func:`~chipfit.deploy.predictor.group_of`).
        n_kernels, n_views: per network, its kernels and its renaming views.
        measured: per network, its measured seconds.
        weight_bytes, act_bytes: per network, the bytes of weights its kernels read and of activations they move
            (a term not given stays 0; :func:`build_predictor` gives no weight bytes, see there).
        spill_bytes: per network, the bytes its kernels move beyond the cache.
        offset: the per-network seconds when measured (the runtime's call overhead, :func:`call_overhead`); fitted
            when None.
        robust: leave out, and fit again without, the networks the fit misses by more than 4 robust sigmas (and
            10%), at most three times: a network measured in a process that ran slow (on this kind of machine a
            process may run 1.5x slower than the next, :mod:`chipfit.deploy.measure`) otherwise pulls every
            coefficient towards it. ``networks`` counts those kept, ``outliers`` lists the others (index,
            measured / fitted) and ``train_rmspe`` is the kept networks' fit error.
    """
    import numpy as np
    from scipy.optimize import lsq_linear

    groups = sorted({g for d in group_s for g in d})
    y = np.asarray(measured, dtype=float)
    zeros = np.zeros(len(y))
    wb = zeros if weight_bytes is None else np.asarray(weight_bytes, dtype=float)
    ab = zeros if act_bytes is None else np.asarray(act_bytes, dtype=float)
    sb = zeros if spill_bytes is None else np.asarray(spill_bytes, dtype=float)
    a = np.column_stack([[d.get(g, 0.0) for d in group_s] for g in groups]
                        + [n_kernels, n_views, wb, ab, sb, np.ones(len(y))]).astype(float)
    fixed = 0.0 if offset is None else float(offset)
    if offset is not None:
        a[:, -1] = 0.0  # the offset's column stays (so the coefficients keep their places) but does nothing
    k = len(groups)
    scale_cols = a[:, k + 2:k + 5].max(axis=0)  # bytes are ~1e6 times larger than seconds: solve in scaled units
    scale_cols[scale_cols == 0] = 1.0
    a[:, k + 2:k + 5] /= scale_cols
    w = 1.0 / np.maximum(y, 1e-9)
    reg = np.zeros((k, a.shape[1]))
    pri = np.array([prior.get(g, 0.3) if isinstance(prior, dict) else prior for g in groups], dtype=float)
    reg[:, :k] = np.diag(np.sqrt(pri))
    lo = np.zeros(a.shape[1])
    # a term whose bytes are not given stays at 0 (an upper bound of 0 itself is refused)
    hi = np.array([3.0] * k + [1e-5, 1e-5] + [np.inf if b is not None else 1e-30
                                              for b in (weight_bytes, act_bytes, spill_bytes)] + [np.inf])

    def solve(keep):
        coef = lsq_linear(np.vstack([a[keep] * w[keep, None], reg]),
                          np.concatenate([(y[keep] - fixed) * w[keep], np.sqrt(pri)]), bounds=(lo, hi)).x
        if offset is not None:
            coef[k + 5] = fixed
        return coef

    full = a.copy()
    if offset is not None:
        full[:, -1] = 1.0
    keep = np.ones(len(y), dtype=bool)
    coef = solve(keep)
    for _ in range(3 if robust else 0):
        rel = full @ coef / y - 1
        mad = 1.4826 * float(np.median(np.abs(rel[keep] - np.median(rel[keep]))))
        out = np.abs(rel - np.median(rel[keep])) > max(4 * mad, 0.1)
        if (~out).sum() < max(8, len(y) // 2) or np.array_equal(~out, keep):
            break
        keep = ~out
        coef = solve(keep)
    rel = full @ coef / y - 1
    return {"scales": {g: float(c) for g, c in zip(groups, coef[:k], strict=True)}, "per_kernel_s": float(coef[k]),
            "per_view_s": float(coef[k + 1]), "per_weight_byte_s": float(coef[k + 2] / scale_cols[0]),
            "per_act_byte_s": float(coef[k + 3] / scale_cols[1]),
            "per_spill_byte_s": float(coef[k + 4] / scale_cols[2]),
            "offset_s": float(coef[k + 5]), "networks": int(keep.sum()),
            "outliers": [[int(i), float(1 / (1 + rel[i]))] for i in np.flatnonzero(~keep)],  # index, measured/fit
            "train_rmspe": float(np.sqrt(np.mean(rel[keep] ** 2)))}


def node_cost(rows: list[dict[str, Any]]) -> float | None:
    """The least profiler cost per node that the network rows measured (None where none did). Measured once at the
    start of a build, it came out at 2.5-4.2 us one afternoon when the VM ran 1.1-2x slow (a numpy canary's time),
    where the morning's rows imply about 0.5 us; taken off every node, it left up to three quarters of a small
    network's nodes at the 10 ns floor, and ShuffleNetV2 x0.5's convs were predicted at a third of their time.
    Measured with every network, the least is the least disturbed."""
    got = [r["node_cost_s"] for r in rows if r.get("node_cost_s") is not None]
    return min(got) if got else None


def _call_seconds(rows: list[dict[str, Any]]) -> float | None:
    """The least call overhead the network log holds (None for a log written before it was kept): a call's fixed
    cost is a floor, and the least of its measurements the one a slow spell of the machine disturbed least."""
    got = [r["call_s"] for r in rows if r.get("call_s")]
    return min(got) if got else None


def fit_survival(contexts: list[dict[str, int]], executed: list[dict[str, int]], prior: float = 0.05
                 ) -> dict[str, float]:
    """Per kernel context, the share of such kernels a runtime still runs after its graph optimizations.

    Args:
        contexts: per network, kernel context (:attr:`~chipfit.deploy.kernels.Kernel.context`) -> count.
        executed: per network, executed op type (:func:`chipfit.deploy.fusion.executed_ops`) -> count.
        prior: weight pulling each share towards the type's overall share (for contexts few networks hold).

    Returns:
        context -> share in [0, 1], and kernel type -> its overall share (for contexts never seen).
    """
    import numpy as np
    from scipy.optimize import lsq_linear

    from chipfit.deploy.predictor import SURVIVAL_OPS

    out: dict[str, float] = {}
    for kernel_type, ops in SURVIVAL_OPS.items():
        ctx = sorted({c for d in contexts for c in d if c.split("<")[0].removesuffix(".w") == kernel_type})
        if not ctx:
            continue
        a = np.array([[d.get(c, 0) for c in ctx] for d in contexts], dtype=float)
        b = np.array([sum(e.get(o, 0) for o in ops) for e in executed], dtype=float)
        if not b.any():
            continue  # the runtime names these ops otherwise (OpenVINO's Eltwise, Subgraph): no share is read
        overall = float(min(1.0, b.sum() / max(a.sum(), 1.0)))
        lam = np.sqrt(prior * max(a.sum(axis=0).mean(), 1.0))
        res = lsq_linear(np.vstack([a, lam * np.eye(len(ctx))]), np.concatenate([b, lam * overall * np.ones(len(ctx))]),
                         bounds=(0.0, 1.0))
        out[kernel_type] = overall
        out.update({c: float(r) for c, r in zip(ctx, res.x, strict=True)})
    return out


# Classes of the head that every other training network takes: an ImageNet head's 1280 x 1000 weights (5 MB) take
# 150 us inside a network whose traffic pushes them out of the last-level cache and some 70 us inside one where they
# stay (ONNX Runtime, AMD EPYC, 32 MB L3), and the zoo's small ImageNet networks at 28-64 pixels are such networks.
# With a third of the networks drawn with 1000 classes, one 40-network build held a single head that large, and those
# small networks were predicted 19-49% slow.
HEAD_CLASSES = 1000


def training_networks(count_: int, seed: int) -> list[tuple[Any, Any]]:
    """(ModelConfig, Profile) of ``count_`` random networks, the zoo's families taken in turn (in an order drawn per
    seed) so that each is trained on: drawn freely, one 40-network set held a single Swin, and the held-out Swins were
    predicted from attention kernels measured alone. Every other network takes a :data:`HEAD_CLASSES`-class head
    (see there). Seeds from 10**6 + seed, apart from evaluation seeds."""
    from chipfit.cost import count
    from chipfit.models import build_model
    from chipfit.models.sample import FAMILIES, random_config

    rng = random.Random(10**6 + seed)
    order = list(FAMILIES)
    rng.shuffle(order)
    out = []
    for i in range(count_):
        cfg = random_config(rng, order[i % len(order)])
        if i % 2 and cfg.num_classes != HEAD_CLASSES:
            cfg = replace(cfg, num_classes=HEAD_CLASSES, name=f"{cfg.name}_k{HEAD_CLASSES}")
        out.append((cfg, count(build_model(cfg), (1, cfg.in_chans, cfg.input_size, cfg.input_size), name=cfg.name)))
    return out


def export_network(cfg, path: Path) -> Path:
    """Export a sampled network the way ``chipfit deploy`` does."""
    from chipfit.deploy.onnx import export_float
    from chipfit.models import build_model

    export_float(build_model(cfg), path, (1, cfg.in_chans, cfg.input_size, cfg.input_size))
    return path


def build_predictor(out: str | Path, *, runtime: str = "ort", minutes: float = 10.0, threads: int = 1, seed: int = 0,
                    networks: int = 40, progress: Progress | None = None, refit: bool = False
                    ) -> tuple[Predictor, dict[str, Any]]:
    """Train a predictor for ``runtime`` on this machine within about ``minutes`` and save it in ``out``.
    ``refit``: measure nothing, fit again on the kernel samples and networks ``out`` holds from an earlier build
    (after an upgrade of chipfit's kernel pairing or regressors; ``minutes`` is not used).

    Returns:
        the predictor and a report (fusion table, samples per type, cross-validated errors, correction, times).
    """
    if minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {minutes}")
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    say = progress or (lambda msg, frac: None)
    out = Path(out)
    if refit and not (out / "networks.jsonl").is_file() and not (out / "samples.jsonl").is_file():
        raise ValueError(f"nothing to refit in {out}: it holds no samples.jsonl or networks.jsonl of a build")
    out.mkdir(parents=True, exist_ok=True)
    env = environment(runtime, threads)
    t0 = time.perf_counter()
    budget = minutes * 60
    say("costing training networks", 0.0)
    nets = training_networks(networks, seed)
    say("reading the runtime's fusion", 0.05)
    from chipfit.deploy.fusion import detect

    rules, fusion_rows = detect((s for _, p in nets for s in chains(p)), runtime, threads=threads)
    pool: dict[str, Kernel] = {}
    for _, p in nets:
        for k in kernels(p, rules):
            if not k.type.startswith("reorder."):  # measured with the convs they surround
                pool.setdefault(_key(k.spec), k)
    log = SampleLog(out / "samples.jsonl", env)
    rng = random.Random(seed)
    by_type: dict[str, list[Kernel]] = {}
    for k in pool.values():
        by_type.setdefault(k.type, []).append(k)
    for ks in by_type.values():
        rng.shuffle(ks)
    failed: dict[str, str] = {}
    net_log = NetworkLog(out / "networks.jsonl", env)
    from chipfit.deploy.fusion import executed_ops
    from chipfit.deploy.measure import measure

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        overhead = 0.0 if refit else profiler_node_cost(tmp, threads) if runtime == "ort" else \
            call_overhead(tmp, runtime, threads)
        # whole networks first: measured (the correction's targets), their executed graph read (survival) and each
        # profiled node by node (in-network labels of their kernels)
        used: list[tuple[Any, Any, dict[str, Any]]] = []
        canary = None
        for i, (cfg, prof) in enumerate(nets):
            if not refit and time.perf_counter() - t0 > 0.7 * budget and len(used) >= 8:
                break
            key = f"{i}:{cfg.name}"
            row = net_log.rows.get(key)
            if row is None and refit:
                continue
            if row is None:
                path = export_network(cfg, tmp / "net.onnx")
                if canary is None:
                    canary = Canary.onnx(export_network(nets[0][0], tmp / "canary.onnx"), runtime, threads)
                frac = 0.05 + 0.35 * i / len(nets)
                _, ratio = canary.wait(lambda m, f=frac: say(m, f))
                # raw node times and, beside them, the profiler's cost per node measured now (see node_cost)
                node_s = profiler_node_cost(tmp, threads) if runtime == "ort" else None
                nodes = profile_nodes(path, threads=threads) if runtime == "ort" else \
                    profile_nodes_openvino(path, threads=threads)
                measured = measure(path, runtime=runtime, threads=threads, processes=3, repeats=20).median_s
                ran = Counter(executed_ops(path, runtime, threads=threads, compute_only=False))
                # the runtime's call overhead, measured with every network: the correction's offset is their least
                call_s = call_overhead(tmp, runtime, threads)
                row = net_log.add(key, measured, dict(ran), nodes, canary=ratio, call_s=call_s, node_cost_s=node_s)
            used.append((cfg, prof, row))
            say(f"whole networks measured: {len(used)}", 0.05 + 0.35 * (i + 1) / len(nets))
        least = node_cost([row for _, _, row in used])
        if least is not None and runtime == "ort":  # the kernels measured alone lose the least disturbed cost too
            overhead = min(overhead, least) if overhead else least
        in_network, unpaired = in_network_rows([(prof, row) for _, prof, row in used], rules, runtime)
        labelled = Counter(r["type"] for r in in_network)
        # kernel samples measured alone, for the types the networks did not label enough (and convs, for the layout
        # reorders measured around them, when the networks did not label those enough)
        # at least a fifth of the budget, even when the networks ran over theirs (slow spells waited out): one
        # OpenVINO build left its kernels 16 samples, two for most types
        kernel_budget = max(0.9 * budget, time.perf_counter() - t0 + 0.2 * budget)
        reorders_short = runtime == "ort" and min(labelled["reorder.in"], labelled["reorder.out"]) < MIN_IN_NETWORK
        queues = {t: list(ks) for t, ks in by_type.items()
                  if labelled[t] < MIN_IN_NETWORK or (reorders_short and t in ("conv", "dwconv"))}
        rounds = 0
        if refit:
            queues = {}
        # the queues get 60% of the time the networks left, the adaptive pass the rest
        queue_end = (time.perf_counter() - t0) + 0.6 * max(kernel_budget - (time.perf_counter() - t0), 0.0)
        while any(queues.values()) and (rounds < 2 or time.perf_counter() - t0 < queue_end):
            rounds += 1  # two rounds always: every type gets samples, however short the budget
            for t in sorted(queues):
                if not queues[t]:
                    continue
                k = queues[t].pop()
                if _key(k.spec) in log.done:
                    continue
                try:
                    _take(log, t, k.spec, k.features, tmp, runtime, threads, overhead)
                except (ValueError, RuntimeError) as e:
                    failed.setdefault(t, str(e).splitlines()[0][:160])
            say(f"kernels measured: {len(log.rows)}", min(0.4 + 0.4 * (time.perf_counter() - t0) / kernel_budget,
                                                           0.8))
        # adaptive pass: the worst types get neighbours of their worst-predicted samples
        while not refit and time.perf_counter() - t0 < kernel_budget:
            models = fit_all(log.rows, seed)
            ranked = sorted((m.cv_error or 0.0, t) for t, m in models.items()
                            if m.cv_error is not None and not t.startswith("reorder.") and t in queues)
            if not ranked:
                break
            added = 0
            for _, t in reversed(ranked[-3:]):
                rows = [r for r in log.rows if r["type"] == t]
                preds = models[t].predict([r["features"] for r in rows])
                worst = sorted(range(len(rows)), key=lambda i: -abs(preds[i] / rows[i]["s"] - 1))[:4]
                for i in worst:
                    from chipfit.deploy._samples import perturb

                    spec = perturb(rows[i]["spec"], rng)
                    if _key(spec) in log.done:
                        continue
                    try:
                        feats = _features_of(spec, t, rules)
                        if feats is None:
                            continue
                        _take(log, t, spec, feats, tmp, runtime, threads, overhead)
                        added += 1
                    except (ValueError, RuntimeError) as e:
                        failed.setdefault(t, str(e).splitlines()[0][:160])
                    if time.perf_counter() - t0 >= kernel_budget:
                        break
            say(f"kernels measured: {len(log.rows)} (adaptive)", 0.8)
            if not added:
                break
        # the correction's per-network offset is the runtime's call overhead; a log written before it was kept
        # gets it measured now (the one measurement a refit takes)
        offset = _call_seconds([row for _, _, row in used])
        offset_now = offset is None and bool(used)
        if offset_now:
            offset = call_overhead(tmp, runtime, threads)
    if refit and not used:
        raise ValueError(f"nothing to refit in {out}: none of its networks.jsonl rows are this build's training "
                         f"networks (seed {seed}, {networks} networks) measured on this machine")
    models = fit_all(log.rows, seed, in_network)
    meas = [row["measured_s"] for _, _, row in used]
    names = [cfg.name for cfg, _, _ in used]
    ctx_counts = [Counter(k.context for k in kernels(prof, rules, specs=False) if k.context) for _, prof, _ in used]
    executed = [Counter(row["executed"]) for _, _, row in used]
    predictor = Predictor({"environment": env, "fusion": rules.to_dict()}, models)
    survival = fit_survival(ctx_counts, executed)
    predictor.manifest["survival"] = survival
    predictor = Predictor(predictor.manifest, models)
    preds = [predictor.predict(p) for _, p, _ in used]
    ks_sum = [p.kernel_s for p in preds]
    corr = fit_correction([p.group_s for p in preds], [len(p.kernels) - len(p.unknown) for p in preds],
                          [view_count(p) for _, p, _ in used], meas,
                          # no weight-byte term: the labels taken inside networks hold the weights' trips from memory
                          # already; fitted, it took up what slow processes added (+23% on mobilenetv2_050 at 28 px)
                          act_bytes=[p.act_bytes for p in preds], spill_bytes=[p.spill_bytes for p in preds],
                          prior=group_priors(preds, labelled), offset=offset)
    corr["outliers"] = [{"name": names[i], "measured_over_fit": r} for i, r in corr["outliers"]]
    corr["cache_bytes"] = predictor.cache_bytes
    predictor.manifest["correction"] = corr
    predictor = Predictor(predictor.manifest, models)
    build_s = time.perf_counter() - t0
    predictor.manifest["build"] = {"minutes": build_s / 60, "budget_minutes": minutes, "samples": len(log.rows),
                                   "networks": len(meas), "in_network_labels": dict(sorted(labelled.items())),
                                   "unpaired_classes": unpaired,
                                   "canary_waited_s": canary.waited_s if canary is not None else 0.0,
                                   "call_overhead_s": overhead, "failed": failed, "refit": refit,
                                   "network_call_s": offset, "network_call_measured_at_fit": offset_now,
                                   "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    predictor.save(out)
    report = {"fusion": fusion_rows, "types": {t: {"samples": m.samples, "cv_error": m.cv_error,
                                                   "in_network": labelled[t] >= MIN_IN_NETWORK}
                                               for t, m in sorted(models.items())},
              "in_network_labels": dict(sorted(labelled.items())),
              "correction": corr, "survival": survival, "build_minutes": build_s / 60, "samples": len(log.rows),
              "failed": failed,
              "networks": [{"name": n, "measured_s": m, "kernel_s": k, "predicted_s": p.latency_s}
                           for n, m, k, p in zip(names, meas, ks_sum, preds, strict=True)]}
    (out / "build_report.json").write_text(json.dumps(report, indent=2))
    return predictor, report
