"""A latency predictor trained on this machine: one regressor per kernel type, summed over a network's kernels.

nn-Meter's method (MobiSys 2021), rebuilt: kernels are what the runtime executes (:mod:`chipfit.deploy.kernels`
with the fusion rules read from the runtime, :mod:`chipfit.deploy.fusion`); each kernel type has a gradient-boosted
regressor (LightGBM) of log latency on the kernel's cost features; a network's latency is the sum over its kernels
plus a per-network correction fitted on whole networks measured here (the runtime's per-kernel dispatch, layout
reorders between kernels). :func:`chipfit.deploy.build.build_predictor` trains one.

A predictor is a folder: ``predictor.json`` (the machine, runtime, threads and fusion rules it was built with, the
feature names, the correction, per-type sample counts and cross-validated error) and one LightGBM text model per
kernel type under ``kernels/``. Nothing is unpickled. It refuses to predict for another CPU, runtime version or
thread count, and it lists the kernels it has never seen instead of costing them 0 ms.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chipfit.cost.profile import Profile
from chipfit.deploy.kernels import FEATURES, FusionRules, Kernel, kernels, view_count
from chipfit.hw.calibrate import caches, cpu_name
from chipfit.hw.estimate import Estimate

# 2: the trees predict seconds per unit of work (work_size); 3: attention's and split's work redefined; 4: OpenVINO
# timed with its input tensors set once (chipfit.deploy.ort.openvino_call), 30 to 90 us a call less than before;
# 5: the feature net_bytes (chipfit.deploy.kernels.FEATURES)
FORMAT = 5
_WB, _BR, _BW = FEATURES.index("weight_bytes"), FEATURES.index("bytes_read"), FEATURES.index("bytes_written")
_OUT, _IN, _MACS = FEATURES.index("out_elems"), FEATURES.index("in_elems"), FEATURES.index("macs")
_WOUT, _NET = FEATURES.index("w_out"), FEATURES.index("net_bytes")
MIN_SAMPLES_GBM = 12  # fewer samples of a type: a per-element scale model instead of trees


def runtime_version(runtime: str) -> str:
    if runtime == "ort":
        import onnxruntime

        return onnxruntime.__version__
    if runtime == "openvino":
        from chipfit.deploy.openvino import openvino_version

        return openvino_version()
    raise ValueError(f"unknown runtime {runtime!r}; predictors are built for ort or openvino")


def l2_bytes() -> int:
    """cpu0's L2 cache in bytes, from sysfs (1 MiB where it does not say)."""
    return next((b for level, b, _ in caches() if level == 2), 2**20)


def environment(runtime: str, threads: int) -> dict[str, Any]:
    """What a predictor is only valid for: the CPU, the runtime and its version, the thread count (and, for the
    record, the L2 cache size that the whole-network correction uses)."""
    return {"cpu": cpu_name(), "runtime": runtime, "runtime_version": runtime_version(runtime), "threads": threads,
            "l2_bytes": l2_bytes()}


# Kernel types a runtime's graph optimizer removes or merges (ONNX Runtime cancels transposes around layer norms and
# folds multiplies and adds into convolutions), and the executed op types they show up as: the build counts these
# in each training network's executed graph and fits, per kernel context, the share that survives.
# OpenVINO runs a channel shuffle's transpose as a ShuffleChannels node (chipfit.deploy.profiling.shuffle_pairs).
SURVIVAL_OPS = {"transpose": ("Transpose", "ShuffleChannels"), "eltwise.add": ("Add", "Sum"), "eltwise.mul": ("Mul",),
                "reorder.in": ("ReorderInput",), "reorder.out": ("ReorderOutput",)}

GROUPS = {"conv": "conv", "dwconv": "dwconv", "gemm": "matmul", "matmul": "matmul", "attention": "matmul",
          "layer_norm": "norm", "batch_norm": "norm", "transpose": "data", "concat": "data", "split": "data",
          "reorder.in": "layout", "reorder.out": "layout"}


def group_of(kernel_type: str) -> str:
    """The group whose whole-network scale applies to a kernel type: conv, dwconv, matmul, norm, data (transposes,
    concats, splits, copies), layout (reorders), elementwise (activations, element-wise ops) or other (reductions,
    pooling, ...)."""
    if kernel_type in GROUPS:
        return GROUPS[kernel_type]
    head = kernel_type.split(".")[0]
    return "elementwise" if head in ("act", "eltwise") else "data" if head == "copy" else "other"


@dataclass
class TypeModel:
    """The regressor of one kernel type: LightGBM trees on log features -> log seconds per unit of work
    (:func:`work_size`), or, with few samples, a scale model ``seconds = exp(log_scale) * work_size``.
    ``cv_error`` is the 5-fold cross-validated time-weighted error, sum |predicted - measured| / sum measured."""

    type: str
    samples: int
    booster: Any = None
    log_scale: float = 0.0
    cv_error: float | None = None

    def predict(self, rows) -> Any:
        import numpy as np

        x = np.asarray(rows, dtype=np.float64)
        return self.predict_design(design(x, self.type), work_size(x, self.type))

    def predict_design(self, d, work) -> Any:
        """Seconds of rows given as the trees see them (:func:`design`) with their :func:`work_size`."""
        import numpy as np

        if self.booster is not None:
            return np.exp(_raw_predict(self.booster, d)) * work
        return math.exp(self.log_scale) * work


def _raw_predict(booster, d) -> Any:
    """``booster.predict(d)`` through LightGBM's C API directly (``LGBM_BoosterPredictForMat``, row-major float64, raw
    scores of all trees): the same numbers, without the Python wrapper's checks and conversions, which took 60% of a
    small call's time (23 of 37 us on 11 rows). No parameters are passed: the model text keeps the training ones (one
    thread), and passing ``num_threads`` again cost 0.1 ms a call."""
    import ctypes

    import numpy as np
    from lightgbm.basic import _LIB, _safe_call

    d = np.ascontiguousarray(d, dtype=np.float64)
    out = np.empty(d.shape[0], dtype=np.float64)
    got = ctypes.c_int64(0)
    dbl = ctypes.POINTER(ctypes.c_double)
    _safe_call(_LIB.LGBM_BoosterPredictForMat(
        booster._handle, d.ctypes.data_as(dbl), ctypes.c_int(1), ctypes.c_int32(d.shape[0]),  # 1: float64
        ctypes.c_int32(d.shape[1]), ctypes.c_int(1), ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(-1),  # row-major,
        ctypes.c_char_p(b""), ctypes.byref(got), out.ctypes.data_as(dbl)))  # normal prediction, every iteration
    if got.value != d.shape[0]:
        raise RuntimeError(f"LightGBM returned {got.value} predictions for {d.shape[0]} rows")
    return out


def work_size(x, kernel_type: str = "") -> Any:
    """A kernel's work in element units, ``out_elems + macs / 8 + 1`` per feature row: the regressors learn seconds
    per unit of work, so a kernel larger than any measured (a 224-pixel map where training stopped at 160) scales
    with its work instead of taking the largest measured kernel's time, as trees alone would.

    An attention's work is ``out_elems + scores + macs / 64 + 1``: its scores, ``batch x heads x L x L`` elements
    (``macs / (2 d)``, d the head width, ``w_out`` of its ``batch, heads, L, d`` output), which its softmax and mask
    run over, set its time more than its MACs do. Inside 40 training networks on ONNX Runtime (AMD EPYC) an attention
    took about 1.6 ns per score plus 0.03 ns per MAC: a score costs some 50 MACs. With MACs / 8 instead the
    regressor's cross-validated error was 20%, with this 6%."""
    import numpy as np

    if kernel_type == "attention":
        return x[:, _OUT] + x[:, _MACS] / (2 * np.maximum(x[:, _WOUT], 1)) + x[:, _MACS] / 64 + 1
    if kernel_type == "split":
        return x[:, _IN] + 1  # it copies its whole input into the pieces; its output (features) is the first piece
    return x[:, _OUT] + x[:, _MACS] / 8 + 1


# Kernel types whose trees see ``net_bytes`` (the network's traffic in one inference): a linear layer reads its
# weights once per inference, from the last-level cache or from memory as the rest of the network left it. Given to
# every type, it over-predicted 224-pixel networks, larger than any trained on, by 4-16 points more than before.
NET_BYTES_TYPES = ("gemm", "matmul")


def design(x, kernel_type: str = "") -> Any:
    """What the trees see of feature rows: every feature as log1p, and two ratios no axis-aligned split can draw from
    those, MACs per byte moved (arithmetic intensity) and MACs per output element; ``net_bytes`` only for the types
    of :data:`NET_BYTES_TYPES` (0 for the others)."""
    import numpy as np

    lx = np.log1p(x)
    if kernel_type not in NET_BYTES_TYPES:
        lx[:, FEATURES.index("net_bytes")] = 0.0
    macs = lx[:, FEATURES.index("macs")]
    moved = np.log1p(x[:, FEATURES.index("bytes_read")] + x[:, FEATURES.index("bytes_written")])
    return np.column_stack([lx, macs - moved, macs - lx[:, FEATURES.index("out_elems")]])


def fit_type(type_: str, rows, seconds, *, seed: int = 0, cv: bool = True) -> TypeModel:
    """Fit the regressor of one kernel type on feature rows and measured seconds (5-fold CV error when asked);
    times below 50 ns count as 50 ns (what is left of a kernel once the profiler's own cost is taken off)."""
    import numpy as np

    x = np.asarray(rows, dtype=np.float64)
    y = np.log(np.maximum(np.asarray(seconds, dtype=np.float64), 5e-8))
    r = y - np.log(work_size(x, type_))  # seconds per unit of work: what the trees learn
    if len(y) < MIN_SAMPLES_GBM:
        return TypeModel(type_, len(y), log_scale=float(np.mean(r)))
    model = TypeModel(type_, len(y), booster=_train_gbm(design(x, type_), r, seed))
    if cv:
        idx = np.random.default_rng(seed).permutation(len(y))
        pred = np.empty(len(y))
        for k in range(5):
            test = idx[k::5]
            train = np.setdiff1d(idx, test)
            pred[test] = _train_gbm(design(x[train], type_), r[train], seed).predict(design(x[test], type_),
                                                                            num_threads=1)
        # time-weighted: a network's latency is a sum, so a 1% error on a 1 ms conv outweighs 100% on a 0.1 us copy
        t, p = np.exp(y), np.exp(pred + y - r)
        model.cv_error = float(np.abs(p - t).sum() / t.sum())
    return model


def _train_gbm(x, y, seed: int):
    import lightgbm as lgb

    params = {"objective": "regression", "learning_rate": 0.15, "num_leaves": 15, "min_data_in_leaf": 3,
              "min_data_in_bin": 1, "feature_fraction": 1.0, "lambda_l2": 1.0, "verbose": -1, "num_threads": 1,
              "seed": seed, "deterministic": True}
    # at most 100 trees (rate 0.15) rather than 200 (rate 0.08): on one bench set (ONNX Runtime, AMD EPYC) the same
    # held-out accuracy (93.8% within +-10% either way, RMSPE 6.2% vs 6.3%) and 1.7x the predictions per second
    rounds = int(min(100, max(40, len(y))))
    return lgb.train(params, lgb.Dataset(x, y, params={"verbose": -1}), num_boost_round=rounds)


@dataclass
class Prediction:
    """A predicted latency and what it is made of.

    Attributes:
        latency_s: the network's predicted seconds (known kernels only when ``unknown`` is not empty).
        kernel_s: the sum of the kernels' predictions before the whole-network correction.
        kernels: (name, type, seconds) per kernel.
        unknown: ``name (type)`` of the kernels no regressor covers: the latency leaves them out.
        notes: what the reader should know.
        group_s: the kernels' seconds summed per group (:func:`group_of`), before the correction.
        weight_bytes, act_bytes: bytes of weights the known kernels read, and of activations they move.
        spill_bytes: what the known kernels move beyond the L2 cache, summed kernel by kernel.
    """

    latency_s: float
    kernel_s: float
    kernels: list[tuple[str, str, float]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    group_s: dict[str, float] = field(default_factory=dict)
    weight_bytes: float = 0.0
    act_bytes: float = 0.0
    spill_bytes: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.unknown

    def estimate(self, target: str, model: str, precision: str = "fp32") -> Estimate:
        notes = list(self.notes)
        if self.unknown:
            notes.append(f"{len(self.unknown)} kernels never seen by the predictor are left out (a lower bound): "
                         + ", ".join(self.unknown[:8]) + (" ..." if len(self.unknown) > 8 else ""))
        return Estimate(source="predicted", target=target, model=model, precision=precision, fused=True,
                        latency_s=self.latency_s, energy_j=None, notes=tuple(notes),
                        extra={"kernel_s": self.kernel_s, "kernels": len(self.kernels), "unknown": self.unknown})


class Predictor:
    """A trained predictor (see the module's text); :meth:`load` reads one, :meth:`predict` uses it."""

    def __init__(self, manifest: dict[str, Any], models: dict[str, TypeModel]):
        self.manifest = manifest
        self.models = models
        self.rules = FusionRules.from_dict(manifest["fusion"])
        corr = manifest.get("correction", {})
        self.scales = {str(g): float(s) for g, s in corr.get("scales", {}).items()}
        self.per_kernel_s = float(corr.get("per_kernel_s", 0.0))
        self.per_view_s = float(corr.get("per_view_s", 0.0))
        self.offset_s = float(corr.get("offset_s", 0.0))
        self.per_weight_byte_s = float(corr.get("per_weight_byte_s", 0.0))
        self.per_act_byte_s = float(corr.get("per_act_byte_s", 0.0))
        self.per_spill_byte_s = float(corr.get("per_spill_byte_s", 0.0))
        self.cache_bytes = float(corr.get("cache_bytes", manifest.get("environment", {}).get("l2_bytes", 2**20)))
        self.survival = {str(k): float(v) for k, v in manifest.get("survival", {}).items()}

    # --- persistence ---
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        (folder / "kernels").mkdir(parents=True, exist_ok=True)
        types = {}
        for t, m in sorted(self.models.items()):
            entry: dict[str, Any] = {"samples": m.samples, "cv_error": m.cv_error}
            if m.booster is not None:
                fname = f"kernels/{t}.txt"
                (folder / fname).write_text(m.booster.model_to_string())
                entry["model"] = fname
            else:
                entry["log_scale"] = m.log_scale
            types[t] = entry
        self.manifest["types"] = types
        self.manifest["format"] = FORMAT
        self.manifest["features"] = list(FEATURES)
        (folder / "predictor.json").write_text(json.dumps(self.manifest, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, check: bool = True) -> Predictor:
        """Read the predictor in ``folder``; with ``check`` refuse one built on another CPU, runtime version or
        thread count (ValueError naming the difference)."""
        folder = Path(folder)
        path = folder / "predictor.json" if folder.is_dir() else folder
        if not path.is_file():
            raise ValueError(f"{folder} holds no predictor (no predictor.json); build one with "
                             "`chipfit predictor build --out DIR`")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a predictor manifest: {e}") from e
        if not isinstance(manifest, dict) or "fusion" not in manifest or not isinstance(manifest.get("format"), int):
            raise ValueError(f"{path} is not a chipfit predictor manifest")
        if manifest["format"] != FORMAT:
            raise ValueError(f"the predictor in {path.parent} is of format {manifest['format']}, this chipfit reads "
                             f"format {FORMAT}: rebuild it with `chipfit predictor build` (or refit it, --refit, "
                             "where its measurements still hold)")
        if list(manifest.get("features", [])) != list(FEATURES):
            raise ValueError(f"{path} was built with other kernel features; rebuild it with this chipfit")
        if check:
            env = manifest.get("environment", {})
            now = environment(env.get("runtime", "ort"), int(env.get("threads", 1)))
            diff = [f"{k} {env.get(k)!r} (here: {now[k]!r})" for k in ("cpu", "runtime_version")
                    if env.get(k) != now[k]]
            if diff:
                raise ValueError(f"the predictor in {path.parent} was built for another machine: " + "; ".join(diff)
                                 + ". Build one here with `chipfit predictor build`, or pass --any-machine to use it "
                                 "anyway")
        import lightgbm as lgb

        models = {}
        for t, entry in manifest.get("types", {}).items():
            if "model" in entry:
                text = (path.parent / entry["model"]).read_text()
                models[t] = TypeModel(t, int(entry["samples"]), booster=lgb.Booster(model_str=text),
                                      cv_error=entry.get("cv_error"))
            else:
                models[t] = TypeModel(t, int(entry["samples"]), log_scale=float(entry["log_scale"]),
                                      cv_error=entry.get("cv_error"))
        return cls(manifest, models)

    def check_threads(self, threads: int) -> None:
        built = int(self.manifest.get("environment", {}).get("threads", 1))
        if threads != built:
            raise ValueError(f"this predictor was built for {built} thread(s), not {threads}; build one with "
                             f"--threads {threads}")

    # --- prediction ---
    def predict_kernels(self, ks: list[Kernel], views: int = 0) -> Prediction:
        """The prediction for one network's kernels (:func:`~chipfit.deploy.kernels.kernels`) and renaming views."""
        return self.predict_many_kernels([(ks, views)])[0]

    def predict_many_kernels(self, nets: list[tuple[list[Kernel], int]]) -> list[Prediction]:
        """Predictions for many networks at once: one regressor call per kernel type for all of them (what a search
        scoring a population wants), each distinct kernel predicted once (a stage's repeated blocks run the same
        kernels: 4,035 kernels of 30 bench networks are 1,793 distinct ones), the correction's sums done as array
        operations."""
        import numpy as np

        flat = [k for ks, _ in nets for k in ks]
        # distinct (type, features) rows, and which row each kernel is
        first: dict[tuple[str, tuple[float, ...]], int] = {}
        where = [first.setdefault((k.type, k.features), len(first)) for k in flat]
        keys = list(first)
        xu = np.array([f for _, f in keys], dtype=np.float64).reshape(len(keys), len(FEATURES))
        by_type: dict[str, list[int]] = {}
        for j, (t, _) in enumerate(keys):
            by_type.setdefault(t, []).append(j)
        secs_u = np.full(len(keys), np.nan)
        groups = sorted({group_of(t) for t in by_type})
        gid_u = np.zeros(len(keys), dtype=np.int64)
        d_net = design(xu, NET_BYTES_TYPES[0])  # the trees' view of every row at once, with and without net_bytes
        d_own = d_net.copy()
        d_own[:, _NET] = 0.0
        for t, idx in by_type.items():
            gid_u[idx] = groups.index(group_of(t))
            m = self.models.get(t)
            if m is not None:
                rows = np.asarray(idx)
                secs_u[rows] = m.predict_design((d_net if t in NET_BYTES_TYPES else d_own)[rows],
                                                work_size(xu[rows], t))
        inv = np.array(where, dtype=np.int64)
        secs, x, gid = secs_u[inv], xu[inv], gid_u[inv]
        if self.survival:  # the share of such kernels the runtime's optimizer leaves (see SURVIVAL_OPS)
            for i, k in enumerate(flat):
                if k.type in self.survival:
                    secs[i] *= self.survival.get(k.context, self.survival[k.type])
        known = ~np.isnan(secs)
        net = np.repeat(np.arange(len(nets)), [len(ks) for ks, _ in nets])
        s0 = np.where(known, secs, 0.0)
        ng = len(groups)
        per_group = np.bincount(net * ng + gid, weights=s0, minlength=len(nets) * ng).reshape(len(nets), ng)
        moved = x[:, _BR] + x[:, _BW]
        cols = (known.astype(np.float64), np.where(known, x[:, _WB], 0.0), np.where(known, moved - x[:, _WB], 0.0),
                np.where(known, np.maximum(moved - self.cache_bytes, 0.0), 0.0))
        sums = np.column_stack([np.bincount(net, weights=c, minlength=len(nets)) for c in cols])
        scale = np.array([self.scales.get(g, 1.0) for g in groups])
        views = np.array([v for _, v in nets], dtype=np.float64)
        totals = (per_group @ scale + self.per_kernel_s * sums[:, 0] + self.per_view_s * views + self.offset_s
                  + self.per_weight_byte_s * sums[:, 1] + self.per_act_byte_s * sums[:, 2]
                  + self.per_spill_byte_s * sums[:, 3])
        out, start = [], 0
        for j, (ks, _) in enumerate(nets):
            s = secs[start:start + len(ks)]
            ok = known[start:start + len(ks)]
            known_s = float(s0[start:start + len(ks)].sum())
            start += len(ks)
            unknown = [] if ok.all() else [f"{k.name} ({k.type})" for k, good in zip(ks, ok, strict=True) if not good]
            notes = [] if not unknown else [f"{len(unknown)} kernels of types no regressor covers"]
            if not all(k.measured_rule for k in ks):
                notes.append("some chains' fusion was inferred (never measured on this runtime)")
            total = float(totals[j])
            if total <= self.offset_s:  # the correction extrapolates past its networks: never a zero or less
                notes.append(f"the whole-network correction gives {total * 1e3:.3f} ms here, no more than the call "
                             "overhead (a network unlike those it was fitted on); shown instead: the kernels' sum plus "
                             "the call overhead")
                total = known_s + self.offset_s
            out.append(Prediction(total, known_s, [(k.name, k.type, v) for k, v in zip(ks, s.tolist(), strict=True)],
                                  unknown, notes,
                                  {g: float(v) for g, v in zip(groups, per_group[j], strict=True) if v},
                                  float(sums[j, 1]), float(sums[j, 2]), float(sums[j, 3])))
        return out

    def predict_many(self, profiles: list[Profile]) -> list[Prediction]:
        """:meth:`predict` for many networks, batched (:meth:`predict_many_kernels`)."""
        return self.predict_many_kernels([(kernels(p, self.rules, specs=False), view_count(p)) for p in profiles])

    def predict(self, profile: Profile) -> Prediction:
        """The predicted latency of the network ``profile`` costs (counts computed once, by the cost stage)."""
        return self.predict_kernels(kernels(profile, self.rules, specs=False), view_count(profile))
