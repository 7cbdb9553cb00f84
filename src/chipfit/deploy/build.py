"""Build a latency predictor on this machine: sample kernels, measure them, fit, correct on whole networks.

1. Training networks: random architectures of the zoo's families (:mod:`chipfit.models.sample`), costed once.
2. Fusion rules: every conv/linear chain among them is built alone and the runtime says what it fused
   (:func:`chipfit.deploy.fusion.detect`).
3. Kernel samples: the networks' kernels (so the shapes are the ones the zoo and its search spaces produce), each
   built alone (:mod:`chipfit.deploy._samples`) with its output kept inside the graph, exported, and timed by the
   runtime's own profiler (ONNX Runtime; elsewhere the median call minus the call's fixed cost). The layout
   reorders around a lone conv become samples of their own. Round-robin over kernel types.
4. Adaptive sampling: with half the time left, the types whose cross-validated error is largest get neighbours
   (other map sizes and widths) of their worst-predicted samples.
5. Survival: in each training network's executed graph, the share of transposes, adds, multiplies and reorders the
   runtime's optimizer kept, per kernel context (:func:`fit_survival`).
6. Correction: whole training networks are measured (:func:`chipfit.deploy.measure.measure`, three fresh
   processes: on this kind of machine one process's latency can differ from the next one's by 1.5x), and
   ``measured = sum over kernel groups of scale_g * their kernels' sum + per_kernel * kernels + per_view * views +
   per_byte terms for weights and activations + offset`` is fitted by bounded least squares (:func:`fit_correction`).

Every measured sample is appended to ``samples.jsonl`` in the output folder as it is taken: an interrupted build
run again on the same folder keeps what it had.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipfit.deploy.kernels import FusionRules, Kernel, chains, kernels, view_count
from chipfit.deploy.ort import ort_options, time_file
from chipfit.deploy.predictor import Predictor, environment, fit_type

Progress = Callable[[str, float], None]


def profile_file(path: Path, *, threads: int = 1, runs: int = 30, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Per op type of a file, (seconds per run, nodes per run) as ONNX Runtime's own profiler gives them: a kernel's
    time without the call's fixed cost. The profiler truncates each node's time to whole microseconds (half a
    microsecond per node is added back) and adds its own cost to every node (:func:`profiler_node_cost`)."""
    import numpy as np
    import onnxruntime as ort

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
    out: dict[str, tuple[float, float]] = {}
    for e in nodes[warmup * per_run:]:  # the warm-up runs' events come first
        op = e.get("args", {}).get("op_name", "?")
        s, n = out.get(op, (0.0, 0.0))
        out[op] = (s + (e["dur"] + 0.5) * 1e-6 / runs, n + 1 / runs)
    return out


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

    path = export_sample(torch.nn.ReLU(), [[1]], tmp / "overhead.onnx")
    return min(time_file(path, runtime, threads=threads, min_repeats=200) for _ in range(3))


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
    log.add(kernel_type, spec, features, seconds)
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


def fit_all(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Per-type regressors from measured rows (``type``, ``features``, ``s``)."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(r["type"], []).append(r)
    return {t: fit_type(t, [r["features"] for r in rs], [r["s"] for r in rs], seed=seed)
            for t, rs in by_type.items()}


def fit_correction(group_s: list[dict[str, float]], n_kernels: list[int], n_views: list[int], measured: list[float],
                   prior: float = 0.3, weight_bytes: list[float] | None = None,
                   act_bytes: list[float] | None = None, spill_bytes: list[float] | None = None) -> dict[str, Any]:
    """Fit, on whole networks, ``measured = sum_g scale_g * kernels_g + per_kernel * kernels + per_view * views +
    per_weight_byte * weight bytes + per_act_byte * activation bytes + per_spill_byte * bytes beyond the cache +
    offset`` by bounded least squares in relative
    terms (a 0.2 ms network counts as much as a 20 ms one), each scale pulled towards 1 with weight ``prior`` so that
    a group few networks exercise keeps its kernels' sum.

    Why the byte terms: a kernel measured alone finds its weights in cache on every run; inside a network each
    layer's weights come from memory once per inference, and its inputs from the kernel before, from cache only when
    they fit (``spill_bytes``: per kernel, what it moves beyond the L2 cache, summed). ``per_kernel`` may be
    slightly negative (down to -3 us): what is left of the profiler's own cost on small kernels.

    Args:
        group_s: per network, the predicted kernel seconds summed per group
            (:func:`~chipfit.deploy.predictor.group_of`).
        n_kernels, n_views: per network, its kernels and its renaming views.
        measured: per network, its measured seconds.
        weight_bytes, act_bytes: per network, the bytes of weights its kernels read and of activations they move.
        spill_bytes: per network, the bytes its kernels move beyond the cache.
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
    k = len(groups)
    scale_cols = a[:, k + 2:k + 5].max(axis=0)  # bytes are ~1e6 times larger than seconds: solve in scaled units
    scale_cols[scale_cols == 0] = 1.0
    a[:, k + 2:k + 5] /= scale_cols
    w = 1.0 / np.maximum(y, 1e-9)
    reg = np.zeros((k, a.shape[1]))
    reg[:, :k] = np.sqrt(prior) * np.eye(k)
    lo = np.array([0.0] * k + [-3e-6, 0.0, 0.0, 0.0, 0.0, 0.0])
    hi = np.array([3.0] * k + [1e-5, 1e-5, np.inf, np.inf, np.inf, np.inf])
    res = lsq_linear(np.vstack([a * w[:, None], reg]), np.concatenate([y * w, np.sqrt(prior) * np.ones(k)]),
                     bounds=(lo, hi))
    coef = res.x
    fitted = a @ coef
    return {"scales": {g: float(c) for g, c in zip(groups, coef[:k], strict=True)}, "per_kernel_s": float(coef[k]),
            "per_view_s": float(coef[k + 1]), "per_weight_byte_s": float(coef[k + 2] / scale_cols[0]),
            "per_act_byte_s": float(coef[k + 3] / scale_cols[1]),
            "per_spill_byte_s": float(coef[k + 4] / scale_cols[2]),
            "offset_s": float(coef[k + 5]),
            "networks": len(y), "train_rmspe": float(np.sqrt(np.mean((fitted / y - 1) ** 2)))}


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


def training_networks(count_: int, seed: int) -> list[tuple[Any, Any]]:
    """(ModelConfig, Profile) of ``count_`` random networks; seeds below 10**6 + seed, apart from evaluation seeds."""
    from chipfit.cost import count
    from chipfit.models import build_model
    from chipfit.models.sample import random_config

    rng = random.Random(10**6 + seed)
    out = []
    for _ in range(count_):
        cfg = random_config(rng)
        out.append((cfg, count(build_model(cfg), (1, cfg.in_chans, cfg.input_size, cfg.input_size), name=cfg.name)))
    return out


def export_network(cfg, path: Path) -> Path:
    """Export a sampled network the way ``chipfit deploy`` does."""
    from chipfit.deploy.onnx import export_float
    from chipfit.models import build_model

    export_float(build_model(cfg), path, (1, cfg.in_chans, cfg.input_size, cfg.input_size))
    return path


def build_predictor(out: str | Path, *, runtime: str = "ort", minutes: float = 10.0, threads: int = 1, seed: int = 0,
                    networks: int = 40, progress: Progress | None = None) -> tuple[Predictor, dict[str, Any]]:
    """Train a predictor for ``runtime`` on this machine within about ``minutes`` and save it in ``out``.

    Returns:
        the predictor and a report (fusion table, samples per type, cross-validated errors, correction, times).
    """
    if minutes <= 0:
        raise ValueError(f"--minutes must be > 0, got {minutes}")
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    say = progress or (lambda msg, frac: None)
    out = Path(out)
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
    kernel_budget = 0.65 * budget
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        overhead = profiler_node_cost(tmp, threads) if runtime == "ort" else call_overhead(tmp, runtime, threads)
        # first pass: round-robin over types until half the kernel budget is spent
        queues = {t: list(ks) for t, ks in by_type.items()}
        rounds = 0
        while any(queues.values()) and (rounds < 2 or time.perf_counter() - t0 < 0.5 * kernel_budget):
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
            say(f"kernels measured: {len(log.rows)}", min(0.05 + 0.6 * (time.perf_counter() - t0) / kernel_budget,
                                                           0.65))
        # adaptive pass: the worst types get neighbours of their worst-predicted samples
        while time.perf_counter() - t0 < kernel_budget:
            models = fit_all(log.rows, seed)
            ranked = sorted((m.cv_error or 0.0, t) for t, m in models.items()
                            if m.cv_error is not None and not t.startswith("reorder."))  # reorders come with convs
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
            say(f"kernels measured: {len(log.rows)} (adaptive)", 0.65)
            if not added:
                break
        models = fit_all(log.rows, seed)
        predictor = Predictor({"environment": env, "fusion": rules.to_dict()}, models)
        # correction on whole networks
        from chipfit.deploy.fusion import executed_ops
        from chipfit.deploy.measure import measure

        meas, names, used, ctx_counts, executed = [], [], [], [], []
        for i, (cfg, prof) in enumerate(nets):
            if time.perf_counter() - t0 > budget and i >= 8:
                break
            path = export_network(cfg, tmp / "net.onnx")
            meas.append(measure(path, runtime=runtime, threads=threads, processes=3, repeats=20).median_s)
            executed.append(Counter(executed_ops(path, runtime, threads=threads, compute_only=False)))
            ctx_counts.append(Counter(k.context for k in kernels(prof, rules) if k.context))
            names.append(cfg.name)
            used.append(prof)
            say(f"whole networks measured: {len(meas)}", 0.65 + 0.35 * min(1.0, i / max(len(nets), 1)))
    survival = fit_survival(ctx_counts, executed)
    predictor.manifest["survival"] = survival
    predictor = Predictor(predictor.manifest, models)
    preds = [predictor.predict(p) for p in used]
    ks_sum = [p.kernel_s for p in preds]
    corr = fit_correction([p.group_s for p in preds], [len(p.kernels) - len(p.unknown) for p in preds],
                          [view_count(p) for p in used], meas, weight_bytes=[p.weight_bytes for p in preds],
                          act_bytes=[p.act_bytes for p in preds], spill_bytes=[p.spill_bytes for p in preds])
    corr["cache_bytes"] = predictor.cache_bytes
    predictor.manifest["correction"] = corr
    predictor = Predictor(predictor.manifest, models)
    build_s = time.perf_counter() - t0
    predictor.manifest["build"] = {"minutes": build_s / 60, "budget_minutes": minutes, "samples": len(log.rows),
                                   "networks": len(meas), "call_overhead_s": overhead, "failed": failed,
                                   "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    predictor.save(out)
    report = {"fusion": fusion_rows, "types": {t: {"samples": m.samples, "cv_error": m.cv_error}
                                               for t, m in sorted(models.items())},
              "correction": corr, "survival": survival, "build_minutes": build_s / 60, "samples": len(log.rows),
              "failed": failed,
              "networks": [{"name": n, "measured_s": m, "kernel_s": k, "predicted_s": p.latency_s}
                           for n, m, k, p in zip(names, meas, ks_sum, preds, strict=True)]}
    (out / "build_report.json").write_text(json.dumps(report, indent=2))
    return predictor, report
