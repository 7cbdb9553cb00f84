"""One search from options to files: data and space, the supernet (trained or loaded), the strategy's loop, and
``pareto.json`` with the front's configs.

Files in ``out``:
    supernet/        the supernet's training run (``last.pt``, ``best.pt``, ``metrics.jsonl``; resumable)
    study.db         the Optuna study (evolutionary strategies): a killed search continues with the same command
    pareto.json      every evaluated candidate (config, estimated accuracy, latency / energy per target, params,
                     MACs, feasibility, which constraints it breaks), the front, the zoo baselines and the run's
                     figures (CPU-seconds, latency evaluations per second)
    front/NN_NAME.json  the front's networks as ModelConfig files, best estimated accuracy first:
                     ``chipfit train front/00_....json`` trains one, every verb accepts it
Retraining the front and the plots are the caller's (:func:`chipfit.api.search`).
"""

from __future__ import annotations

import copy
import json
import math
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chipfit.nas.evolve import Evaluation, Objective, SearchResult, TrialRecord, infeasible_report, run_search
from chipfit.nas.gradient import GradientConfig, gradient_search
from chipfit.nas.latency import LatencyModel, Target
from chipfit.nas.space import Arch, SearchSpace, load_space

STRATEGIES = ("nsga2", "tpe", "random", "gradient")


@dataclass(frozen=True)
class SearchConfig:
    """Options of one search (``chipfit search``).

    Attributes:
        space: a built-in space or a JSON / YAML file (:func:`~chipfit.nas.space.load_space`).
        data: ``fashion-mnist`` or a class-per-folder tree.
        targets: where the network must run and with what budgets (at least one).
        params_budget: at most this many parameters (None: no limit).
        strategy: ``nsga2``, ``tpe``, ``random`` (Optuna; the control) or ``gradient`` (ProxylessNAS).
        trials: candidates the study should hold in all (evolutionary strategies; a resumed search continues to it).
        population: NSGA-II's population; TPE's random start-up trials.
        energy: add each target's energy to the objectives (where the source models energy).
        out: the search folder.
        supernet: a trained supernet's checkpoint; None trains one in ``out/supernet`` (or continues it there).
        supernet_epochs, supernet_steps: its training length (steps: at most this many per epoch; None: all).
        batch_size, lr: its batch and learning rate (AdamW, cosine, 0.3 warm-up epochs as the zoo's recipe).
        n_val, calib_batches: images of the validation split that estimate a candidate's accuracy, and training
            batches that re-estimate its BatchNorm statistics first.
        widths: the gradient strategy's widths: ``largest``, ``smallest`` or per-stage channels ``32,64,128,256``.
        gradient: the gradient strategy's options.
        seed: the data split, the supernet and the sampler.
        storage: the Optuna storage (a file or a database URL shared by several workers); None: ``out/study.db``.
        study_name: the study's name in the storage (None: ``SPACE-STRATEGY``).
        progress: progress bars.
        hw_space: an accelerator space (:func:`chipfit.hw.space.load_hw_space`) searched with the network
            (:mod:`chipfit.nas.codesign`); the first target then gives the latency / energy budgets and precision.
        area_budget_mm2, power_budget_w: the accelerator's area and peak-power limits (joint search only).
        hw_inner, hw_pick: 0 searches the accelerator's choices as genes of the study (flat); N > 0 explores N
            accelerators per network and gives it the best by ``hw_pick``: ``search`` (a gene of the study choosing
            the weight of latency against energy), or one fixed: ``latency``, ``edp``, ``energy`` (nested).
    """

    space: str = "quadranet_s28"
    data: str = "fashion-mnist"
    targets: tuple[Target, ...] = (Target("edge-npu", "simulator"),)
    params_budget: float | None = None
    strategy: str = "nsga2"
    trials: int = 100
    population: int = 16
    energy: bool = False
    out: str = "search"
    supernet: str | None = None
    supernet_epochs: int = 3
    supernet_steps: int | None = None
    batch_size: int = 128
    lr: float = 3e-3
    n_val: int = 2000
    calib_batches: int = 4
    widths: str = "largest"
    gradient: GradientConfig = field(default_factory=GradientConfig)
    seed: int = 0
    storage: str | None = None
    study_name: str | None = None
    progress: bool = True
    hw_space: str | None = None
    area_budget_mm2: float | None = None
    power_budget_w: float | None = None
    hw_inner: int = 0
    hw_pick: str = "search"

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy {self.strategy!r}: must be one of {', '.join(STRATEGIES)}")
        if not self.targets:
            raise ValueError("give at least one target: --hw CHIP (with --latency BUDGET to constrain it)")
        for name, v in (("--trials", self.trials), ("--population", self.population), ("--n-val", self.n_val),
                        ("--supernet-epochs", self.supernet_epochs), ("--batch-size", self.batch_size)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} {v!r}: must be a whole number >= 1")
        if self.calib_batches < 0 or (self.supernet_steps is not None and self.supernet_steps < 1):
            raise ValueError("--calib-batches must be >= 0 and --supernet-steps >= 1")
        if self.params_budget is not None and not self.params_budget > 0:
            raise ValueError(f"--params {self.params_budget!r}: must be > 0 (e.g. 1M)")
        if self.hw_space is None and (self.area_budget_mm2 is not None or self.power_budget_w is not None):
            raise ValueError("--area and --power limit a searched accelerator: give --hw-space too")
        if self.hw_space is not None and self.strategy == "gradient":
            raise ValueError("the gradient strategy searches the network only: use nsga2, tpe or random with "
                             "--hw-space")
        if self.hw_pick not in ("search", "latency", "l3e1", "edp", "l1e3", "energy") or self.hw_inner < 0:
            raise ValueError(f"--hw-inner {self.hw_inner} / --hw-pick {self.hw_pick!r}: a count >= 0 and one of "
                             "search, latency, l3e1, edp, l1e3, energy")
        if self.hw_inner and self.hw_space is None:
            raise ValueError("--hw-inner explores an accelerator space per network: give --hw-space too")
        if self.hw_space is not None and len(self.targets) != 1:
            raise ValueError("with --hw-space the accelerator is searched: give no --hw, or one (its budgets apply)")
        if self.strategy == "gradient":
            budgeted = [t for t in self.targets if t.latency_budget_s is not None]
            if not budgeted:
                raise ValueError("the gradient strategy needs a latency budget on a target: --hw CHIP --latency 2ms")
            bad = [t.label() for t in budgeted if t.source == "measured"]
            if bad:
                raise ValueError(f"the gradient strategy needs latencies that add up over blocks; {bad[0]} is a "
                                 "measurement: use a predictor (--source predicted --predictor DIR) or an "
                                 "evolutionary strategy")

    def name(self) -> str:
        if self.study_name:
            return self.study_name
        hw = f"+{Path(self.hw_space).stem}" if self.hw_space else ""
        hw += f"-inner{self.hw_inner}-{self.hw_pick}" if self.hw_space and self.hw_inner else ""
        return f"{Path(self.space).stem}{hw}-{self.strategy}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["targets"] = [t.to_dict() for t in self.targets]
        return d


@dataclass
class SearchOutcome:
    """What a search produced (also written to ``out/pareto.json``)."""

    report: dict[str, Any]
    result: SearchResult | None
    out: Path
    interrupted: bool = False

    @property
    def front(self) -> list[dict[str, Any]]:
        return [c for c in self.report["candidates"] if c["pareto"]]

    @property
    def infeasible(self) -> list[str]:
        return self.report["infeasible"]


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def prepare(cfg: SearchConfig) -> tuple[SearchSpace, Any]:
    """The data set and the space sized for it (classes and channels); a space made for another image size is
    refused, naming the built-in one that fits."""
    from chipfit.data import load_data

    data = load_data(cfg.data, seed=cfg.seed)
    space = load_space(cfg.space)
    side = data.image_size[0]
    if data.image_size[0] != data.image_size[1]:
        raise ValueError(f"{cfg.data}: images are {data.image_size[0]}x{data.image_size[1]}; the search spaces take "
                         "square images")
    if side not in space.input_sizes and len(space.input_sizes) == 1:
        raise ValueError(f"space {space.name!r} is made for {space.input_sizes[0]} px images and {cfg.data} has "
                         f"{side} px; use a space for that size (built-in: quadranet_s28 and mbconv_s28 for 28 px)")
    sizes = list(space.input_sizes)
    return space.with_data(data.num_classes, data.in_chans, sizes[0] if len(sizes) == 1 else None), data


def supernet_for(cfg: SearchConfig, space: SearchSpace, data: Any, out: Path) -> tuple[Any, dict[str, Any]]:
    """The supernet: loaded from ``cfg.supernet``, or trained (continued when ``out/supernet/last.pt`` exists).
    Returns it and what its training cost (seconds, CPU-seconds, validation accuracy of the largest network)."""
    from chipfit.nas.supernet import load_supernet, train_supernet
    from chipfit.train import TrainConfig

    if cfg.supernet:
        net = load_supernet(cfg.supernet)
        if net.space.to_dict() != space.to_dict():
            raise ValueError(f"{cfg.supernet}: its supernet was trained for space {net.space.name!r} "
                             f"({net.space.num_classes} classes, {net.space.in_chans} channels); this search uses "
                             f"{space.name!r} on {cfg.data}: train a new one (leave out --supernet)")
        return net, {"checkpoint": cfg.supernet, "trained_here": False}
    run_dir = out / "supernet"
    tc = TrainConfig(epochs=cfg.supernet_epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                     warmup_epochs=min(0.3, cfg.supernet_epochs), seed=cfg.seed, out=str(run_dir),
                     resume=(run_dir / "last.pt").is_file(), progress=cfg.progress,
                     max_steps_per_epoch=cfg.supernet_steps)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    res = train_supernet(space, data, tc)
    info = {"checkpoint": str(run_dir / "last.pt"), "trained_here": True, "seconds": time.perf_counter() - t0,
            "cpu_seconds": _cpu_seconds() - cpu0, "train_seconds": res.train_seconds,
            "largest_val_accuracy": res.val_accuracy, "epochs": cfg.supernet_epochs, "steps": cfg.supernet_steps,
            "interrupted": res.interrupted}
    return res.model, info


def objectives_of(cfg: SearchConfig) -> list[Objective]:
    objs = [Objective("accuracy", "maximize")]
    for t in cfg.targets:
        objs.append(Objective(f"{t.label()} latency_s", "minimize"))
        if cfg.energy and t.source in ("roofline", "simulator"):
            objs.append(Objective(f"{t.label()} energy_j", "minimize"))
    return objs


def make_evaluator(cfg: SearchConfig, space: SearchSpace, net: Any, data: Any,
                   latency: LatencyModel) -> Callable[[Arch], Evaluation]:
    """Architecture -> :class:`Evaluation`: accuracy from the supernet, latency / energy of the whole network on
    every target, params and MACs, and the budgets as constraints."""
    from chipfit.nas.supernet import estimate_accuracy

    def evaluate(arch: Arch) -> Evaluation:
        t0 = time.perf_counter()
        acc = estimate_accuracy(net, arch, data, n_val=cfg.n_val, calib_batches=cfg.calib_batches)
        t1 = time.perf_counter()
        est = latency.evaluate(arch)
        costs = latency.costs(arch)
        t2 = time.perf_counter()
        values: dict[str, float] = {"accuracy": acc}
        ev = Evaluation(values)
        lat = {label: e.latency_s for label, e in est.items()}
        energy = {label: e.energy_j for label, e in est.items()}
        for t in cfg.targets:
            label = t.label()
            values[f"{label} latency_s"] = lat[label]
            if cfg.energy and t.source in ("roofline", "simulator"):
                values[f"{label} energy_j"] = energy[label]
            if t.latency_budget_s is not None:
                ev.add_limit(f"{label} latency_s", lat[label], t.latency_budget_s, unit="s")
            if t.energy_budget_j is not None:
                if energy[label] is None:
                    raise ValueError(f"target {label}: its source models no energy; drop --energy-budget there")
                ev.add_limit(f"{label} energy_j", energy[label], t.energy_budget_j, unit="J")
        if cfg.params_budget is not None:
            ev.add_limit("params", costs["params"], cfg.params_budget)
        ev.extra.update({"describe": space.describe(arch), "config": space.expand(arch).to_dict(),
                         "params": costs["params"], "macs": costs["macs"], "latency_s": lat, "energy_j": energy,
                         "accuracy_seconds": t1 - t0, "latency_seconds": t2 - t1})
        return ev

    return evaluate


def parse_widths(text: str, space: SearchSpace) -> Arch:
    """The gradient strategy's widths: ``largest``, ``smallest`` or per-stage channel counts."""
    big = space.largest()
    if text == "largest":
        return big
    if text == "smallest":
        return replace(big, widths=tuple(0 for _ in space.stages))
    try:
        chans = [int(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(f"--widths {text!r}: largest, smallest or per-stage channels such as "
                         f"{','.join(str(s.widths[0]) for s in space.stages)}") from None
    if len(chans) != len(space.stages):
        raise ValueError(f"--widths {text!r}: {len(chans)} values for {len(space.stages)} stages")
    idx = []
    for i, (c, st) in enumerate(zip(chans, space.stages, strict=True)):
        if c not in st.widths:
            raise ValueError(f"--widths: stage {i} takes {list(st.widths)}, not {c}")
        idx.append(st.widths.index(c))
    return replace(big, widths=tuple(idx))


def train_only(cfg: SearchConfig) -> dict[str, Any]:
    """Train (or continue) the supernet in ``out/supernet`` and stop: the step to run under ``torchrun`` (each
    process trains its share with DistributedDataParallel); the search itself then runs in one process with the same
    options, which finds the trained supernet there."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    space, data = prepare(cfg)
    _, info = supernet_for(cfg, space, data, out)
    return info


def search(cfg: SearchConfig, *, on_trial: Callable[[TrialRecord], None] | None = None) -> SearchOutcome:
    """Run the search ``cfg`` describes and write its files (see the module docstring)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.hw_space is not None:
        return _codesign(cfg, out, on_trial)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    space, data = prepare(cfg)
    latency = LatencyModel(space, cfg.targets)  # chips and predictors checked before any training
    net, sn_info = supernet_for(cfg, space, data, out)
    if sn_info.get("interrupted"):
        return SearchOutcome({"candidates": [], "infeasible": []}, None, out, interrupted=True)
    net.eval()
    evaluate = make_evaluator(cfg, space, net, data, latency)
    cpu1, t1 = _cpu_seconds(), time.perf_counter()
    result, extra = None, {}
    if cfg.strategy == "gradient":
        records, extra = _gradient(cfg, space, net, data, latency, evaluate)
    else:
        storage = cfg.storage or str(out / "study.db")
        result = run_search(space, evaluate, objectives_of(cfg), trials=cfg.trials, study_name=cfg.name(),
                            storage=storage, strategy=cfg.strategy, seed=cfg.seed, population=cfg.population,
                            progress=cfg.progress, on_trial=on_trial)
        records = result.trials
    search_s, search_cpu = time.perf_counter() - t1, _cpu_seconds() - cpu1
    report = _report(cfg, space, records, result, latency, sn_info, extra)
    report["zoo"] = zoo_baselines(space, latency)
    report["stats"].update({"search_seconds": search_s, "search_cpu_seconds": search_cpu,
                            "total_seconds": time.perf_counter() - t0, "total_cpu_seconds": _cpu_seconds() - cpu0})
    _write(out, report)
    return SearchOutcome(report, result, out, interrupted=bool(result and result.interrupted))


def _codesign(cfg: SearchConfig, out: Path, on_trial: Callable[[TrialRecord], None] | None) -> SearchOutcome:
    """The network and the accelerator searched together (:mod:`chipfit.nas.codesign`)."""
    from chipfit.hw.explore import Budgets
    from chipfit.hw.space import load_hw_space
    from chipfit.nas.codesign import OBJECTIVES, WEIGHTS, JointSpace, NestedSpace, Scorer, report, write_hw_profiles
    from chipfit.nas.supernet import estimate_accuracy

    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    hw = load_hw_space(cfg.hw_space)
    space, data = prepare(cfg)
    joint = JointSpace(space, hw)
    t = cfg.targets[0]
    budgets = Budgets(cfg.area_budget_mm2, cfg.power_budget_w, t.latency_budget_s, t.energy_budget_j)
    net, sn_info = supernet_for(cfg, space, data, out)
    if sn_info.get("interrupted"):
        return SearchOutcome({"candidates": [], "infeasible": []}, None, out, interrupted=True)
    net.eval()
    scorer = Scorer(joint, lambda a: estimate_accuracy(net, a, data, n_val=cfg.n_val, calib_batches=cfg.calib_batches),
                    budgets=budgets, precision=t.precision or "int8", params_budget=cfg.params_budget,
                    inner=cfg.hw_inner, seed=cfg.seed)
    nested = NestedSpace(space, hw, tuple(WEIGHTS) if cfg.hw_pick == "search" else (cfg.hw_pick,))
    cpu1, t1 = _cpu_seconds(), time.perf_counter()
    result = run_search(nested if cfg.hw_inner else joint, scorer, OBJECTIVES, trials=cfg.trials,
                        study_name=cfg.name(), storage=cfg.storage or str(out / "study.db"),
                        strategy=cfg.strategy, seed=cfg.seed, population=cfg.population, progress=cfg.progress,
                        on_trial=on_trial)
    rep = report(joint, result, scorer)
    rep.update({"data": cfg.data, "config": cfg.to_dict()})
    rep["stats"].update({"supernet": sn_info, "search_seconds": time.perf_counter() - t1,
                         "search_cpu_seconds": _cpu_seconds() - cpu1, "total_seconds": time.perf_counter() - t0,
                         "total_cpu_seconds": _cpu_seconds() - cpu0})
    _write(out, rep)
    write_hw_profiles(joint, rep, out / "front")
    _write(out, rep, front_files=False)
    return SearchOutcome(rep, result, out, interrupted=result.interrupted)


def _gradient(cfg: SearchConfig, space: SearchSpace, net: Any, data: Any, latency: LatencyModel,
              evaluate: Callable[[Arch], Evaluation]) -> tuple[list[TrialRecord], dict[str, Any]]:
    widths = parse_widths(cfg.widths, space)
    tables = [(t.label(), t.latency_budget_s, latency.table(t)) for t in cfg.targets if t.latency_budget_s]
    # the search trains a copy: the supernet that estimates accuracy stays the one every strategy uses
    res = gradient_search(copy.deepcopy(net), data, widths, tables, cfg.gradient)
    ev = evaluate(res.arch)
    table_lat = {label: tab.latency(res.arch) for label, _, tab in tables}
    extra = {"gradient": {"alphas": res.alphas, "probs": res.probs, "history": res.history[-50:],
                          "config": asdict(cfg.gradient), "widths": space.widths_of(widths),
                          "table_latency_s": table_lat}}
    rec = TrialRecord(0, res.arch, dict(ev.objectives), dict(ev.constraints), ev.feasible, ev.extra)
    return [rec], extra


def _report(cfg: SearchConfig, space: SearchSpace, records: Sequence[TrialRecord], result: SearchResult | None,
            latency: LatencyModel, sn_info: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    if result is not None:
        front = {t.number for t in result.pareto()}
        infeasible = infeasible_report(result)
    else:
        front = {t.number for t in records if t.feasible}
        infeasible = [] if front else [f"the gradient search's point breaks {k} by {v:.3g}"
                                       for k, v in records[0].constraints.items() if v > 0]
    cands = []
    for t in records:
        x = t.extra
        cands.append({"trial": t.number, "key": t.arch.key(), "arch": t.arch.to_dict(), "describe": x["describe"],
                      "config": x["config"], "accuracy_estimate": t.values["accuracy"], "latency_s": x["latency_s"],
                      "energy_j": x["energy_j"], "params": x["params"], "macs": x["macs"], "feasible": t.feasible,
                      "constraints": t.constraints, "limits": x.get("limits", {}), "pareto": t.number in front,
                      "duplicate_of": t.duplicate_of})
    acc_s = [t.extra.get("accuracy_seconds", math.nan) for t in records if t.duplicate_of is None]
    stats = {"candidates": len(records), "distinct": len({t.arch.key() for t in records}),
             "latency_evaluations": latency.evaluations, "latency_seconds": latency.seconds,
             "latency_evals_per_s": latency.evaluations / latency.seconds if latency.seconds else None,
             "accuracy_seconds_mean": sum(acc_s) / len(acc_s) if acc_s else None, "supernet": sn_info}
    return {"space": space.to_dict(), "space_size": space.size(), "data": cfg.data, "config": cfg.to_dict(),
            "targets": [t.to_dict() | {"label": t.label()} for t in cfg.targets],
            "objectives": [asdict(o) for o in objectives_of(cfg)], "candidates": cands,
            "front": sorted(front), "infeasible": infeasible, "stats": stats, **extra}


def _write(out: Path, report: dict[str, Any], *, front_files: bool = True) -> None:
    import os

    front = sorted((c for c in report["candidates"] if c["pareto"]), key=lambda c: -c["accuracy_estimate"])
    fdir = out / "front"
    fdir.mkdir(exist_ok=True)
    for old in [*fdir.glob("*.json"), *fdir.glob("*.hw.yaml")] if front_files else []:
        old.unlink()
    for n, c in enumerate(front if front_files else []):
        name = c["config"]["name"] or f"trial{c['trial']}"
        path = fdir / f"{n:02d}_{name}.json"
        path.write_text(json.dumps(c["config"], indent=2))
        c["config_file"] = str(path)
    tmp = out / "pareto.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out / "pareto.json")


def zoo_baselines(space: SearchSpace, latency: LatencyModel) -> list[dict[str, Any]]:
    """The zoo's networks made for the space's input (registered input shape equal to it): their latency and
    energy on every target, params and MACs, to set beside the front."""
    import torch

    from chipfit.models import get_entry, list_models

    side, chans = space.input_sizes[0], space.in_chans
    out = []
    for name in list_models():
        entry = get_entry(name)
        if tuple(entry.input_shape[1:]) != (chans, side, side):
            continue
        torch.manual_seed(0)
        module = entry.factory(num_classes=space.num_classes, in_chans=chans)
        est, costs = latency.evaluate_network(module, (1, chans, side, side), name)
        out.append({"name": name, "latency_s": {k: e.latency_s for k, e in est.items()},
                    "energy_j": {k: e.energy_j for k, e in est.items()}, **costs})
    return out


__all__ = ["STRATEGIES", "SearchConfig", "SearchOutcome", "make_evaluator", "objectives_of", "parse_widths",
           "prepare", "search", "supernet_for", "train_only", "zoo_baselines"]
