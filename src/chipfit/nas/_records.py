"""The records of a search, public through :mod:`chipfit.nas.evolve`: what ``evaluate`` says about a point
(:class:`Evaluation`), what is optimized (:class:`Objective`), what a search gives back (:class:`TrialRecord`,
:class:`SearchResult`), and the names of the user attributes a study keeps them under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chipfit.nas.space import Arch, SearchSpace

DIRECTIONS = ("maximize", "minimize")
FORMAT = 1  # of the study attributes below; bump when their meaning changes

_PREFIX = "chipfit."
_SPACE, _OBJECTIVES, _FORMAT = "chipfit.space", "chipfit.objectives", "chipfit.format"
_PINNED = "chipfit.constraints_pinned"  # {"names": [...], "budgets": {...}}: one attribute, so no worker sees half
_ARCH, _KEY, _CONSTRAINTS = "chipfit.arch", "chipfit.arch_key", "chipfit.constraints"
_WORKER, _ALIVE, _DUPLICATE, _SURPLUS, _ERROR = ("chipfit.worker", "chipfit.alive", "chipfit.duplicate_of",
                                                 "chipfit.surplus", "chipfit.error")
_LIMITS = "limits"  # key of Evaluation.extra holding add_limit's records


# --- what the caller gives and gets -----------------------------------------------------------------------------------


@dataclass
class Evaluation:
    """What ``evaluate`` says about one architecture.

    Attributes:
        objectives: a value per objective name (every :class:`Objective` of the search, no others).
        constraints: violations by name; <= 0 is satisfied (Optuna's convention: ``latency - budget``).
        extra: JSON-able facts kept with the trial as user attributes (keys must not start with ``chipfit.``).
            :meth:`add_limit` keeps value, budget and unit of each constraint under ``extra["limits"]``.
    """

    objectives: dict[str, float]
    constraints: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """Every constraint satisfied (value <= 0)."""
        return all(v <= 0 for v in self.constraints.values())

    def add_limit(self, name: str, value: float, budget: float, *, unit: str = "") -> Evaluation:
        """Constrain ``value <= budget``: sets ``constraints[name] = value - budget`` and records the three.

        Args:
            name: what is limited, on what: ``edge-npu/simulator latency_s``.
            value: the measured or modelled quantity.
            budget: its upper bound.
            unit: the unit of both (``s`` is printed in ms or us by :func:`~chipfit.nas.evolve.infeasible_report`).

        Returns:
            self, for chaining.
        """
        value, budget = float(value), float(budget)
        self.constraints[name] = value - budget
        self.extra.setdefault(_LIMITS, {})[name] = {"value": value, "budget": budget, "unit": unit}
        return self


@dataclass(frozen=True)
class Objective:
    """One objective of the search.

    Attributes:
        name: the key of :attr:`Evaluation.objectives`.
        direction: ``maximize`` or ``minimize``.
    """

    name: str
    direction: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"objective name must be a non-empty string, got {self.name!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"objective {self.name!r}: direction must be 'maximize' or 'minimize', got "
                             f"{self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


@dataclass(frozen=True)
class TrialRecord:
    """A complete trial of the study.

    Attributes:
        number: Optuna's trial number in the study.
        arch: the point evaluated.
        values: objective values by name.
        constraints: constraint violations by name (<= 0 satisfied).
        feasible: every constraint satisfied.
        extra: the evaluation's extras.
        duplicate_of: the earlier trial whose result was reused (the same architecture), or None.
    """

    number: int
    arch: Arch
    values: dict[str, float]
    constraints: dict[str, float]
    feasible: bool
    extra: dict[str, Any]
    duplicate_of: int | None = None


@dataclass
class SearchResult:
    """The complete trials of a study and what they say.

    Attributes:
        study_name: the Optuna study.
        storage: where it lives (an URL), None in memory.
        space: the space searched.
        objectives: the objectives, in the study's order.
        trials: complete trials by number (this run's and every earlier run's or worker's).
        interrupted: the run stopped on Ctrl-C before the study held its total.
        stale_failed: numbers of RUNNING trials this run found stale and marked FAIL.
    """

    study_name: str
    storage: str | None
    space: SearchSpace
    objectives: tuple[Objective, ...]
    trials: list[TrialRecord]
    interrupted: bool = False
    stale_failed: list[int] = field(default_factory=list)

    def feasible(self) -> list[TrialRecord]:
        """The trials meeting every constraint."""
        return [t for t in self.trials if t.feasible]

    def pareto(self) -> list[TrialRecord]:
        """The non-dominated feasible trials, one per architecture (the first trial of it), best first by the first
        objective. Computed here rather than by Optuna so that infeasible trials never enter the front."""
        first: dict[str, TrialRecord] = {}
        for t in self.feasible():
            first.setdefault(t.arch.key(), t)
        cands = list(first.values())
        if not cands:
            return []
        import numpy as np

        # minimization form: a row dominates another when it is <= everywhere and < somewhere
        m = np.array([[-t.values[o.name] if o.direction == "maximize" else t.values[o.name] for o in self.objectives]
                      for t in cands])
        keep = [not np.any(np.all(m <= m[i], axis=1) & np.any(m < m[i], axis=1)) for i in range(len(cands))]
        front = [t for t, k in zip(cands, keep, strict=True) if k]
        o0 = self.objectives[0]
        return sorted(front, key=lambda t: (-t.values[o0.name] if o0.direction == "maximize" else t.values[o0.name],
                                            t.number))

    def best(self, objective: str | None = None) -> TrialRecord | None:
        """The feasible trial best in one objective (the first by default; ties: the earliest), None if none is
        feasible.

        Raises:
            ValueError: ``objective`` is not one of the search's objectives.
        """
        obj = self._objective(objective)
        best: TrialRecord | None = None
        for t in self.feasible():
            if best is None or obj.better(t.values[obj.name], best.values[obj.name]):
                best = t
        return best

    def _objective(self, name: str | None) -> Objective:
        if name is None:
            return self.objectives[0]
        for o in self.objectives:
            if o.name == name:
                return o
        names = ", ".join(o.name for o in self.objectives)
        raise ValueError(f"objective {name!r} is not one of this search's: {names}")
