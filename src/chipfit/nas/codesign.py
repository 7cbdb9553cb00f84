"""Co-design: the network space and an accelerator space searched together (``chipfit search --hw-space FILE``).

A point of a :class:`JointSpace` is a network of the search space and an accelerator of a
:class:`~chipfit.hw.space.HwSpace` (:class:`JointArch`); its genes are the network's and the accelerator's (prefixed
``hw.``), so the same Optuna study machinery (NSGA-II / TPE / random, storage, resume, workers, duplicates) runs it.

One candidate is scored by accuracy from the weight-sharing supernet (cached per network: many accelerators share one
network), and latency, energy (dynamic + leakage), area and peak power of the network on the accelerator
(:func:`chipfit.hw.explore.evaluate`; each network counted once). The objectives are accuracy (max), latency, energy
and area (min); the budgets are hard constraints: area and peak power, latency and energy, parameters. A network
whose layer fits no buffer of the accelerator breaks the constraint ``fits buffers``.

Network-only search on a fixed chip through the same scoring: ``--hw-space chip:edge-npu`` (the one-point space of
that chip's array). Files are those of :mod:`chipfit.nas.run`, plus each front point's accelerator as a chip profile
``front/NN_NAME.hw.yaml`` that ``chipfit simulate --hw`` reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chipfit.hw.explore import Budgets, Design, explore
from chipfit.hw.explore import evaluate as hw_evaluate
from chipfit.hw.space import HwPoint, HwSpace
from chipfit.nas.evolve import Evaluation, Objective, SearchResult, infeasible_report
from chipfit.nas.space import Arch, SearchSpace

HW = "hw."
OBJECTIVES = (Objective("accuracy", "maximize"), Objective("latency_s", "minimize"),
              Objective("energy_j", "minimize"), Objective("area_mm2", "minimize"))


@dataclass(frozen=True)
class JointArch:
    """A network and the accelerator it runs on."""

    net: Arch
    hw: HwPoint

    def key(self) -> str:
        return f"{self.net.key()}#{self.hw.key()}"

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net.to_dict(), "hw": self.hw.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JointArch:
        return cls(Arch.from_dict(d["net"]), HwPoint.from_dict(d["hw"]))


@dataclass(frozen=True)
class JointSpace:
    """A network space and an accelerator space, searched as one (the interface :func:`run_search` uses)."""

    net: SearchSpace
    hw: HwSpace

    @property
    def name(self) -> str:
        return f"{self.net.name}+{self.hw.name}"

    def genes(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.net.genes() + [(HW + n, labels) for n, labels in self.hw.genes()]

    def decode(self, values: Mapping[str, int]) -> JointArch:
        net = {k: v for k, v in values.items() if not k.startswith(HW)}
        hw = {k[len(HW):]: v for k, v in values.items() if k.startswith(HW)}
        return JointArch(self.net.decode(net), self.hw.decode(hw))

    def size(self) -> int:
        return self.net.size() * self.hw.size()

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net.to_dict(), "hw": self.hw.to_dict()}

    def arch_from_dict(self, d: Any) -> JointArch:
        return JointArch.from_dict(d)


WEIGHTS = {"latency": 1.0, "l3e1": 0.75, "edp": 0.5, "l1e3": 0.25, "energy": 0.0}


@dataclass(frozen=True)
class NestedArch:
    """A network and how its accelerator is picked from those explored for it: the weight ``w`` of
    ``w log(latency) + (1 - w) log(energy)`` (:data:`WEIGHTS`; ``edp`` is latency x energy)."""

    net: Arch
    pick: str

    def key(self) -> str:
        return f"{self.net.key()}#{self.pick}"

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net.to_dict(), "pick": self.pick}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NestedArch:
        return cls(Arch.from_dict(d["net"]), str(d["pick"]))


@dataclass(frozen=True)
class NestedSpace:
    """The network space plus one gene, ``hw.pick``: how each network's accelerator is picked (nested co-design)."""

    net: SearchSpace
    hw: HwSpace
    picks: tuple[str, ...] = tuple(WEIGHTS)

    @property
    def name(self) -> str:
        return f"{self.net.name}+{self.hw.name}(nested)"

    def genes(self) -> list[tuple[str, tuple[str, ...]]]:
        return self.net.genes() + ([(HW + "pick", self.picks)] if len(self.picks) > 1 else [])

    def decode(self, values: Mapping[str, int]) -> NestedArch:
        net = {k: v for k, v in values.items() if not k.startswith(HW)}
        return NestedArch(self.net.decode(net), self.picks[values.get(HW + "pick", 0)])

    def size(self) -> int:
        return self.net.size() * len(self.picks)

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net.to_dict(), "hw": self.hw.to_dict(), "picks": list(self.picks)}

    def arch_from_dict(self, d: Any) -> NestedArch:
        return NestedArch.from_dict(d)


class Scorer:
    """Candidate -> :class:`Evaluation` for a joint search; accuracy and the simulator's layers cached per network.

    Two ways to search the accelerator: ``inner = 0`` (flat), the study's genes hold it (a :class:`JointArch` per
    trial); ``inner = N`` (nested: the accelerator searched per network), the study holds the network and a pick
    (:class:`NestedSpace`), and each network gets, of N accelerators explored for it once, the best by its pick.

    Attributes:
        accuracy_evaluations, hw_evaluations: how many of each were computed (cache hits not counted).
        accuracy_seconds, hw_seconds: time spent on each.
    """

    def __init__(self, space: JointSpace, accuracy: Callable[[Arch], float], *, budgets: Budgets,
                 precision: str = "int8", params_budget: float | None = None, inner: int = 0, seed: int = 0):
        from chipfit.hw.sim.arch import load_arch

        if inner < 0:
            raise ValueError(f"--hw-inner {inner}: designs per network, 0 (search the accelerator's genes) or more")
        self.space, self.accuracy, self.budgets = space, accuracy, budgets
        self.precision, self.params_budget = precision, params_budget
        self.inner, self.seed = inner, seed
        self.base = load_arch(space.hw.base)
        self._explored: dict[str, list[Design]] = {}
        self._start: dict[str, HwPoint] = {}  # warm start of the inner explorations, most recent last
        if self.inner:
            from chipfit.hw.space import HwSpaceError, chip_space

            try:  # the base chip's own array, where the space holds it
                own = chip_space(self.base).point(0)
                space.hw.check(own)
                self._start[own.key()] = own
            except HwSpaceError:
                pass
        self._acc: dict[str, float] = {}
        self._layers: dict[str, tuple[list[Any], dict[str, int]]] = {}
        self.accuracy_evaluations = self.hw_evaluations = 0
        self.accuracy_seconds = self.hw_seconds = 0.0

    def layers(self, arch: Arch) -> tuple[list[Any], dict[str, int]]:
        """The network's simulator layers (fused) and its fp32 parameters and MACs."""
        key = arch.key()
        if key not in self._layers:
            from chipfit.hw.sim import layers_from_profile
            from chipfit.models.build import build_model
            from chipfit.nas._estimate import _Counts

            cfg = self.space.net.expand(arch)
            s = self.space.net.input_size(arch)
            counts = _Counts(build_model(cfg), (1, self.space.net.in_chans, s, s), cfg.name)
            prof = counts.profile("fp32")
            self._layers[key] = (layers_from_profile(counts.profile(self.precision), True),
                                 {"params": int(prof.total.params), "macs": int(prof.total.macs)})
        return self._layers[key]

    def __call__(self, point: JointArch | NestedArch) -> Evaluation:
        """Score a network on an accelerator (a :class:`JointArch`), or, with ``inner`` designs per network, a
        network on the accelerator its exploration gives by the point's pick (a :class:`NestedArch`)."""
        net = point.net
        key = net.key()
        t0 = time.perf_counter()
        if key not in self._acc:
            self._acc[key] = float(self.accuracy(net))
            self.accuracy_evaluations += 1
        t1 = time.perf_counter()
        layers, costs = self.layers(net)
        t2 = time.perf_counter()  # counting a new network is neither accuracy nor accelerator time
        if isinstance(point, JointArch):
            p = point.hw
            d = hw_evaluate(layers, self.space.hw.build(p, self.base), chips=p.chips,
                            node_nm=self.space.hw.node_nm, precision=self.precision, budgets=self.budgets,
                            key=p.key(), point=p.to_dict())
            self.hw_evaluations += 1
        else:
            d, p = self._inner(key, layers, point.pick)
        t3 = time.perf_counter()
        self.accuracy_seconds += t1 - t0
        self.hw_seconds += t3 - t2
        ev = Evaluation({"accuracy": self._acc[key], "latency_s": d.latency_s, "energy_j": d.energy_j,
                         "area_mm2": d.area_mm2})
        units = {"area_mm2": "mm2", "power_w": "W", "latency_s": "s", "energy_j": "J"}
        values = {"area_mm2": d.area_mm2, "power_w": d.peak_w, "latency_s": d.latency_s, "energy_j": d.energy_j}
        for name, budget in vars(self.budgets).items():
            if budget is not None:
                ev.add_limit(name, values[name], budget, unit=units[name])
        if self.params_budget is not None:
            ev.add_limit("params", costs["params"], self.params_budget)
        ev.constraints["fits buffers"] = 0.0 if d.error is None else 1.0
        ev.extra.update({"describe": self.space.net.describe(net), "config": self.space.net.expand(net).to_dict(),
                         "hw": p.to_dict(), "hw_key": p.key(), "design": d.to_dict(), **costs,
                         "accuracy_seconds": t1 - t0, "hw_seconds": t3 - t2})
        return ev

    def _inner(self, key: str, layers: list[Any], pick: str) -> tuple[Design, HwPoint]:
        """Of ``inner`` designs explored for the network (:func:`chipfit.hw.explore.explore` over latency and energy
        within the budgets, seeded, once per network), the one that meets the budgets with the least ``w log(latency)
        + (1 - w) log(energy)``; when none meets them, the one closest to meeting them (least total violation).

        Each exploration starts from the base chip's own array (where the space holds it) and the latency-energy
        fronts of the networks explored before (up to half of its designs), then samples and refines as
        :func:`~chipfit.hw.explore.explore` does."""
        if key not in self._explored:
            ex = explore(layers, self.space.hw, trials=self.inner, seed=self.seed, budgets=self.budgets,
                         precision=self.precision, objectives=("latency_s", "energy_j"),
                         start=list(self._start.values())[-self.inner // 2:])
            self.hw_evaluations += ex.evaluated
            self._explored[key] = ex.designs
            for d in ex.front():  # what suited this network starts the next one's exploration
                self._start.pop(d.key, None)
                self._start[d.key] = HwPoint.from_dict(d.point)
        designs = self._explored[key]
        ok = [d for d in designs if d.feasible]
        if ok:
            w = WEIGHTS[pick]
            best = min(ok, key=lambda d: (w * math.log(d.latency_s) + (1 - w) * math.log(d.energy_j), d.area_mm2))
        else:
            best = min(designs, key=lambda d: (d.error is not None, sum(max(v, 0.0) for v in d.violations.values())))
        return best, HwPoint.from_dict(best.point)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def report(space: JointSpace, result: SearchResult, scorer: Scorer) -> dict[str, Any]:
    """``pareto.json``'s content for a joint search: every candidate with its network and accelerator."""
    front = {t.number for t in result.pareto()}
    cands = []
    for t in result.trials:
        x = t.extra
        d = x["design"]
        ja = t.arch if isinstance(t.arch, JointArch) else JointArch(t.arch.net, HwPoint.from_dict(x["hw"]))
        cands.append({"trial": t.number, "key": ja.key(), "arch": ja.to_dict(), "describe": x["describe"],
                      "pick": getattr(t.arch, "pick", None),
                      "config": x["config"], "hw": x["hw"], "hw_key": x["hw_key"],
                      "accuracy_estimate": t.values["accuracy"], "latency_s": _finite(d["latency_s"]),
                      "energy_j": _finite(d["energy_j"]), "area_mm2": d["area_mm2"], "peak_w": d["peak_w"],
                      "design": {k: (_finite(v) if isinstance(v, float) else v) for k, v in d.items()},
                      "params": x["params"], "macs": x["macs"], "feasible": t.feasible, "constraints": t.constraints,
                      "limits": x.get("limits", {}), "pareto": t.number in front, "duplicate_of": t.duplicate_of})
    stats = {"candidates": len(cands), "distinct": len({c["key"] for c in cands}),
             "networks": scorer.accuracy_evaluations, "accuracy_seconds": scorer.accuracy_seconds,
             "hw_evaluations": scorer.hw_evaluations, "hw_seconds": scorer.hw_seconds,
             "hw_evals_per_s": scorer.hw_evaluations / scorer.hw_seconds if scorer.hw_seconds else None}
    return {"codesign": True, "space": space.to_dict(), "space_size": space.size(),
            "hw_search": {"inner": scorer.inner, "mode": "nested" if scorer.inner else "flat"},
            "objectives": [{"name": o.name, "direction": o.direction} for o in OBJECTIVES],
            "budgets": vars(scorer.budgets), "precision": scorer.precision, "candidates": cands,
            "front": sorted(front), "infeasible": infeasible_report(result), "stats": stats}


def write_hw_profiles(space: JointSpace, report: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Each front point's accelerator as a chip profile next to its network (``front/NN_NAME.hw.yaml``)."""
    import yaml

    from chipfit.hw.chip import load_chip

    chip = load_chip(space.hw.base)
    raw = yaml.safe_load(Path(chip.path).read_text()) if chip.path else {}
    out = []
    for c in report["candidates"]:
        if not c["pareto"] or not c.get("config_file"):
            continue
        p = HwPoint.from_dict(c["hw"])
        arch = space.hw.build(p)
        prof = dict(raw)
        prof["name"] = f"{space.hw.name}-{c['trial']}"
        prof["description"] = f"co-designed with {c['config']['name'] or 'a searched network'}: {p.key()}"
        src = f"searched: {p.key()} in accelerator space {space.hw.name!r}"
        peak = 2 * arch.rows * arch.cols * arch.clock_hz
        prof["peak_ops_per_s"] = {f"int{arch.word_bits}": {"value": peak, "source": src}}
        prof["onchip_bytes"] = {"value": arch.ifmap_sram_bytes + arch.filter_sram_bytes + arch.ofmap_sram_bytes,
                                "source": src}
        prof["dram_bandwidth_bytes_per_s"] = {"value": arch.dram_bandwidth_bytes_per_s, "source": src}
        prof["array"] = arch.to_section(chip) | {"dram_bandwidth_bytes_per_s": {
            "value": arch.dram_bandwidth_bytes_per_s, "source": src}}
        path = Path(str(c["config_file"]).removesuffix(".json") + ".hw.yaml")
        path.write_text(yaml.safe_dump(prof, sort_keys=False))
        c["hw_file"] = str(path)
        out.append(path)
    return out


__all__ = ["HW", "OBJECTIVES", "WEIGHTS", "JointArch", "JointSpace", "NestedArch", "NestedSpace", "Scorer", "report",
           "write_hw_profiles"]
