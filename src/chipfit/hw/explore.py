"""The accelerator front of a fixed network (``chipfit hw explore``): simulate many arrays of a :class:`~chipfit.hw.
space.HwSpace` and keep those no other beats in latency, energy and area.

One design is scored by :func:`evaluate`: the simulator's cycles and dynamic energy (scaled from the 45 nm energy
table to the space's node; DRAM energy is the DRAM's and does not scale), the leakage energy over the latency
(:func:`chipfit.hw.area.static_energy_j`), area and peak power (:mod:`chipfit.hw.area`), and the budgets it breaks.
A design whose layer fits no buffer is kept with its error and counts as infeasible.

:func:`explore` picks the designs: ``grid`` (every point; spaces of up to ``trials`` points), ``random`` (``trials``
distinct points drawn without replacement) or ``refine`` (the default for large spaces: half the trials random, then
the one-step neighbours of the current front, nearest first, until the trials are spent or the front stops moving).
Each design is appended to a JSON-lines log as it is scored, so an interrupted run loses nothing and the same call
continues from the log (points already in it are not scored again).

:func:`placement` says where another design (a built-in chip) sits against explored ones: the multiplicative epsilon
indicator, ``min over explored p of max over objectives p_k / d_k``: below 1, an explored design is at least
``1 / eps`` times better in every objective (``d`` lies inside the front); above 1, ``d`` is better than anything
explored by that factor in its weakest objective (outside it).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chipfit.hw.area import area, energy_factor, power, static_energy_j
from chipfit.hw.array import Arch
from chipfit.hw.space import HwPoint, HwSpace

OBJECTIVES = ("latency_s", "energy_j", "area_mm2")
ALL_OBJECTIVES = (*OBJECTIVES, "period_s", "peak_w")
STRATEGIES = ("auto", "grid", "random", "refine")


_AREA = {"mm2": 1.0, "cm2": 100.0, "um2": 1e-6}
_POWER = {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "kw": 1e3}


def _quantity(text: str, units: dict[str, float], what: str, example: str) -> float:
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*([A-Za-z0-9]*)\s*", str(text))
    unit = m.group(2).lower() if m else ""
    if not m or unit not in units:
        raise ValueError(f"{what} {text!r}: a number and a unit ({', '.join(units)}), e.g. {example}")
    value = float(m.group(1)) * units[unit]
    if not value > 0:
        raise ValueError(f"{what} {text!r}: must be > 0")
    return value


def parse_area(text: str) -> float:
    """``10mm2``, ``0.5cm2`` -> mm2."""
    return _quantity(text, _AREA, "area", "10mm2")


def parse_power(text: str) -> float:
    """``2W``, ``500mW`` -> W."""
    return _quantity(text, _POWER, "power", "2W or 500mW")


@dataclass(frozen=True)
class Budgets:
    """Hard limits on a design (None: no limit)."""

    area_mm2: float | None = None
    power_w: float | None = None
    latency_s: float | None = None
    energy_j: float | None = None

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
                raise ValueError(f"budget {k} must be a positive number, not {v!r}")

    def violations(self, d: dict[str, float]) -> dict[str, float]:
        """Budget name -> value / budget - 1 for the budgets set (<= 0 is met)."""
        key = {"area_mm2": "area_mm2", "power_w": "peak_w", "latency_s": "latency_s", "energy_j": "energy_j"}
        return {k: d[key[k]] / v - 1 for k, v in asdict(self).items() if v is not None}


@dataclass
class Design:
    """One accelerator scored on one network.

    Attributes:
        name: the array's name.
        key: the space point's key (None for a design not from a space, such as a built-in chip).
        point: the point's choices.
        latency_s: one inference (pipeline latency with several chips).
        period_s: time between results (1 / throughput).
        energy_j: dynamic + leakage energy per inference.
        dynamic_j, static_j: its parts.
        area_mm2: all chips.
        peak_w: peak power of all chips (every unit busy, plus leakage).
        avg_w: energy_j / period_s at full throughput.
        violations: budget -> value / budget - 1.
        error: why it could not run the network (then infeasible, objectives inf).
    """

    name: str
    key: str | None
    point: dict[str, Any] | None
    latency_s: float
    period_s: float
    energy_j: float
    dynamic_j: float
    static_j: float
    area_mm2: float
    peak_w: float
    avg_w: float
    violations: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def feasible(self) -> bool:
        return self.error is None and all(v <= 0 for v in self.violations.values())

    def value(self, objective: str) -> float:
        return float(getattr(self, objective))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"feasible": self.feasible}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Design:
        return cls(**{k: v for k, v in d.items() if k != "feasible"})


def evaluate(layers: Sequence[Any], arch: Arch, *, chips: int = 1, node_nm: float = 45.0, precision: str = "int8",
             batch: int = 1, sparsity: str | None = None, budgets: Budgets | None = None,
             key: str | None = None, point: dict[str, Any] | None = None) -> Design:
    """Score ``arch`` (``chips`` of it in a layer pipeline) on the simulator's ``layers``.

    ``sparsity`` (``"2:4"``) applies where the array supports N:M sparsity; elsewhere the network runs dense.
    """
    from chipfit.hw.sim import LayerFitsNoBufferError, simulate

    budgets = budgets or Budgets()
    a = area(arch, node_nm=node_nm, chips=chips)
    pw = power(arch, node_nm=node_nm).peak_w * chips
    sp = sparsity if sparsity and "nm" in arch.sparsity else None
    try:
        res = simulate(list(layers), arch, precision=precision, batch=batch, chips=chips, sparsity=sp)
    except LayerFitsNoBufferError as e:
        inf = math.inf
        d = Design(arch.name, key, point, inf, inf, inf, inf, inf, a.all_chips_mm2, pw, inf, error=str(e))
        d.violations = budgets.violations({"area_mm2": d.area_mm2, "peak_w": pw, "latency_s": inf, "energy_j": inf})
        return d
    tot = res.total
    dram_j = (tot["dram_read_bytes"] + tot["dram_write_bytes"]) * arch.energy.dram_pj_per_byte * 1e-12
    dynamic = (tot["energy_j"] - dram_j) * energy_factor(node_nm) + dram_j
    latency = tot["time_s"]
    period = batch / tot["inferences_per_s"]
    static = static_energy_j(arch, latency, node_nm=node_nm, chips=chips) / batch
    energy = dynamic / batch + static
    d = Design(arch.name, key, point, latency, period, energy, dynamic / batch, static, a.all_chips_mm2, pw,
               energy / period)
    d.violations = budgets.violations({"area_mm2": d.area_mm2, "peak_w": pw, "latency_s": latency,
                                       "energy_j": energy})
    return d


def dominates(a: Design, b: Design, objectives: Sequence[str] = OBJECTIVES) -> bool:
    va, vb = [a.value(o) for o in objectives], [b.value(o) for o in objectives]
    return all(x <= y for x, y in zip(va, vb, strict=True)) and any(x < y for x, y in zip(va, vb, strict=True))


def pareto(designs: Iterable[Design], objectives: Sequence[str] = OBJECTIVES) -> list[Design]:
    """The feasible designs no other feasible design dominates, by the first objective."""
    pool = sorted((d for d in designs if d.feasible), key=lambda d: [d.value(o) for o in objectives])
    front: list[Design] = []
    for d in pool:
        if not any(dominates(f, d, objectives) or [f.value(o) for o in objectives] ==
                   [d.value(o) for o in objectives] for f in front):
            front.append(d)
    return front


def placement(d: Design, designs: Iterable[Design], objectives: Sequence[str] = OBJECTIVES) -> dict[str, Any]:
    """Where ``d`` sits against ``designs``: the epsilon indicator, how many dominate it, and at no more area the best
    explored latency and energy as ratios to its own (ratios < 1: the front does better)."""
    pool = [p for p in designs if p.error is None]
    if d.error is not None or not pool:
        return {"epsilon": None, "dominated_by": None, "note": d.error or "nothing explored"}
    eps, best = math.inf, None
    for p in pool:
        e = max(p.value(o) / d.value(o) for o in objectives)
        if e < eps:
            eps, best = e, p
    small = [p for p in pool if p.area_mm2 <= d.area_mm2]
    out: dict[str, Any] = {"epsilon": eps, "epsilon_design": best.key if best else None,
                           "dominated_by": sum(dominates(p, d, objectives) for p in pool),
                           "inside_front": eps < 1}
    if small:
        lat = min(small, key=lambda p: p.latency_s)
        en = min(small, key=lambda p: p.energy_j)
        out.update({"latency_ratio_at_area": lat.latency_s / d.latency_s, "latency_design": lat.key,
                    "energy_ratio_at_area": en.energy_j / d.energy_j, "energy_design": en.key})
    return out


@dataclass
class Exploration:
    """What :func:`explore` scored: every design, the front, and the run's figures."""

    space: HwSpace
    designs: list[Design]
    objectives: tuple[str, ...]
    strategy: str
    seconds: float
    evaluated: int

    def front(self) -> list[Design]:
        return pareto(self.designs, self.objectives)

    @property
    def per_s(self) -> float | None:
        return self.evaluated / self.seconds if self.seconds > 0 and self.evaluated else None

    def to_dict(self) -> dict[str, Any]:
        front = {d.key for d in self.front()}
        return {"space": self.space.to_dict(), "space_size": self.space.size(), "objectives": list(self.objectives),
                "strategy": self.strategy, "designs": [d.to_dict() | {"pareto": d.key in front} for d in self.designs],
                "front": sorted(front), "stats": {"evaluated": self.evaluated, "seconds": self.seconds,
                                                  "designs_per_s": self.per_s, "designs": len(self.designs)}}


def _read_log(path: Path | None) -> dict[str, Design]:
    if path is None or not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        try:
            d = Design.from_dict(json.loads(line))
        except (json.JSONDecodeError, TypeError):
            continue  # a line cut short by a kill
        if d.key:
            done[d.key] = d
    return done


def explore(layers: Sequence[Any], space: HwSpace, *, trials: int = 2000, strategy: str = "auto", seed: int = 0,
            budgets: Budgets | None = None, objectives: Sequence[str] = OBJECTIVES, precision: str = "int8",
            batch: int = 1, sparsity: str | None = None, log: str | Path | None = None,
            on_design: Callable[[Design, int], None] | None = None, start: Sequence[HwPoint] = ()) -> Exploration:
    """Score up to ``trials`` accelerators of ``space`` on ``layers`` and return them with the front.

    Args:
        layers: the network as the simulator's layers (``layers_from_profile(count(model, shape))``).
        space: the accelerator space.
        trials: designs to score in all (a resumed run counts those already in ``log``).
        strategy: ``auto`` (grid when the space has at most ``trials`` points, else refine), ``grid``, ``random``
            or ``refine``.
        seed: the random draws.
        budgets: area, power, latency, energy limits.
        objectives: what the front minimises (of :data:`ALL_OBJECTIVES`).
        precision, batch, sparsity: how the network runs (:func:`chipfit.hw.sim.simulate`).
        log: a JSON-lines file: every design is appended as scored and read back on the next run.
        on_design: called with each new design and the count scored so far (progress bars).
        start: points to score first (points of ``space``; a warm start, e.g. what suited similar networks).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    bad = [o for o in objectives if o not in ALL_OBJECTIVES]
    if bad or not objectives:
        raise ValueError(f"objective {bad[0] if bad else ''!r}: choose from {', '.join(ALL_OBJECTIVES)}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1, not {trials}")
    size = space.size()
    if strategy == "grid" and size > trials:
        raise ValueError(f"the space has {size:,} points, more than --trials {trials:,}: raise --trials or use "
                         "--strategy random or refine")
    if strategy == "auto":
        strategy = "grid" if size <= trials else "refine"
    budgets = budgets or Budgets()
    log_path = Path(log) if log is not None else None
    done = _read_log(log_path)
    base = _base_arch(space)
    fh = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = log_path.open("a")
    t0, fresh = time.perf_counter(), 0

    def score(p: HwPoint) -> Design:
        nonlocal fresh
        k = p.key()
        if k in done:
            return done[k]
        d = evaluate(layers, space.build(p, base), chips=p.chips, node_nm=space.node_nm, precision=precision,
                     batch=batch, sparsity=sparsity, budgets=budgets, key=k, point=p.to_dict())
        done[k] = d
        fresh += 1
        if fh is not None:
            fh.write(json.dumps(d.to_dict(), default=_finite) + "\n")
            fh.flush()
        if on_design is not None:
            on_design(d, len(done))
        return d

    try:
        want = min(trials, size)
        for p in start:
            space.check(p)
            if len(done) >= want:
                break
            score(p)
        if strategy == "grid":
            for p in space.points():
                score(p)
        else:
            rng = random.Random(seed)
            first = want if strategy == "random" else max(1, want // 2)
            for i in sorted(rng.sample(range(size), first), key=lambda _: rng.random()):
                if len(done) >= want:
                    break
                score(space.point(i))
            if strategy == "refine":
                _refine(space, score, done, want, objectives)
    finally:
        if fh is not None:
            fh.close()
    return Exploration(space, list(done.values()), tuple(objectives), strategy, time.perf_counter() - t0, fresh)


def _refine(space: HwSpace, score: Callable[[HwPoint], Design], done: dict[str, Design], want: int,
            objectives: Sequence[str]) -> None:
    """Score the neighbours of the front until ``want`` designs are scored or every neighbour of the front is."""
    while len(done) < want:
        front = pareto(done.values(), objectives)
        todo = [q for d in front if d.point for q in space.neighbours(HwPoint.from_dict(d.point))
                if q.key() not in done]
        if not todo:
            return
        for q in dict.fromkeys(todo):
            if len(done) >= want:
                return
            score(q)


def _base_arch(space: HwSpace) -> Arch:
    from chipfit.hw.sim.arch import load_arch

    return load_arch(space.base)


def _finite(x: Any) -> Any:
    raise TypeError(f"not JSON: {type(x).__name__}")


__all__ = ["ALL_OBJECTIVES", "OBJECTIVES", "STRATEGIES", "Budgets", "Design", "Exploration", "dominates", "evaluate",
           "explore", "pareto", "parse_area", "parse_power", "placement"]
