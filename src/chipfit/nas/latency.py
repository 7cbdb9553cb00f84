"""Latency and energy of a search space's points on hardware targets: budgets, targets and whole networks.

A :class:`Target` names where a network should run and how its time is found: ``roofline`` (:mod:`chipfit.hw.
roofline`), ``simulator`` (:func:`chipfit.hw.sim.simulate`), ``measured`` (ONNX Runtime on this machine,
:func:`chipfit.deploy.measure`) or ``predicted`` (a latency predictor trained on this machine,
:class:`chipfit.deploy.Predictor`), with optional budgets (:func:`parse_latency`, :func:`parse_energy` read
``"0.4ms"``, ``"2mJ"``). Every source answers with the one record :class:`~chipfit.hw.estimate.Estimate`.

:class:`LatencyModel` is what a search loop calls: the whole network of a point, built from
:meth:`SearchSpace.expand`, counted once (one op-graph capture, costed once per precision) and estimated on every
target, cached by :meth:`Arch.key`.

:class:`~chipfit.nas.table.LatencyTable`, a space's network on one target cut into parts whose times add up (what a
gradient search needs), lives in :mod:`chipfit.nas.table`; :meth:`LatencyModel.table` makes them, and it is
importable from here too. :class:`Target` and the budget parsers are defined in ``chipfit.nas._estimate``, which
both modules share, and re-exported here. Units: seconds and joules throughout.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chipfit.hw.estimate import Estimate
from chipfit.nas._estimate import (
    ENERGY_UNITS,
    LATENCY_UNITS,
    MEASURE_REPEATS,
    RUNTIMES,
    Target,
    _Counts,
    _Resolved,
    format_energy,
    format_latency,
    parse_energy,
    parse_latency,
)
from chipfit.nas._estimate import MEASURE_PROCESSES as MEASURE_PROCESSES
from chipfit.nas._estimate import MEASURE_WARMUP as MEASURE_WARMUP
from chipfit.nas.space import Arch, SearchSpace, load_space
from chipfit.nas.table import METRICS, LatencyTable

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn


# --- whole networks ---------------------------------------------------------------------------------------------------


def _input_shape(space: SearchSpace, arch: Arch) -> tuple[int, int, int, int]:
    s = space.input_size(arch)
    return (1, space.in_chans, s, s)


class LatencyModel:
    """Whole-network estimates of a space's points on several targets, cached by :meth:`Arch.key`.

    Each new point is built (``build_model(space.expand(arch))``), its op graph captured once at
    ``(1, in_chans, s, s)`` and costed once per precision, then estimated on every target.

    Attributes:
        space: the search space.
        targets: the targets, in order.
        evaluations: points estimated (cache hits not included).
        cache_hits: calls answered from the cache.
        seconds: time spent estimating, in total.
    """

    def __init__(self, space: SearchSpace | str, targets: Target | Sequence[Target], *,
                 measure_repeats: int = MEASURE_REPEATS):
        """Ready the targets once: chips loaded, precisions picked and checked, predictors read.

        Args:
            space: a :class:`SearchSpace` or a built-in name / file (:func:`load_space`).
            targets: one target or several, with distinct labels.
            measure_repeats: timed runs per candidate for ``measured`` targets (one process, 3 warm-up runs).

        Raises:
            ValueError: no target, two with one label, or a target its chip, predictor or runtime cannot serve.
        """
        self.space = load_space(space)
        self.targets = (targets,) if isinstance(targets, Target) else tuple(targets)
        if not self.targets or not all(isinstance(t, Target) for t in self.targets):
            raise ValueError("targets: give one Target or a list of them")
        labels = [t.label() for t in self.targets]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"targets: two targets share the label {dup[0]!r}; estimates are keyed by label")
        self._resolved = [_Resolved(t, measure_repeats=measure_repeats) for t in self.targets]
        self._cache: dict[str, dict[str, Estimate]] = {}
        self._tables: dict[str, LatencyTable] = {}
        self._costs: dict[str, dict[str, int]] = {}
        self.evaluations = 0
        self.cache_hits = 0
        self.seconds = 0.0

    def evaluate(self, arch: Arch) -> dict[str, Estimate]:
        """The estimates of ``arch`` on every target, keyed by :meth:`Target.label`.

        Raises:
            SpaceError: ``arch`` is not a point of this space.
            ValueError: a target's estimate failed, naming the target and the arch key.
        """
        self.space.check(arch)
        key = arch.key()
        if key in self._cache:
            self.cache_hits += 1
            return dict(self._cache[key])
        from chipfit.models.build import build_model

        start = time.perf_counter()
        try:
            cfg = self.space.expand(arch)
            try:
                counts = _Counts(build_model(cfg), _input_shape(self.space, arch), cfg.name)
            except (ValueError, RuntimeError) as e:
                raise ValueError(f"arch {key}: the network could not be costed: {e}") from e
            out, self._costs[key] = self._on_targets(counts, f"arch {key}")
        finally:
            self.seconds += time.perf_counter() - start
        self.evaluations += 1
        self._cache[key] = out
        return dict(out)

    def evaluate_network(self, module: nn.Module, input_shape: Sequence[int], name: str
                         ) -> tuple[dict[str, Estimate], dict[str, int]]:
        """Estimates on every target (by label) and the parameters and MACs of any network (a zoo baseline to set
        beside a search's front), not cached."""
        return self._on_targets(_Counts(module, tuple(input_shape), name), name)

    def _on_targets(self, counts: _Counts, what: str) -> tuple[dict[str, Estimate], dict[str, int]]:
        """One captured network on every target, and its fp32 parameters and MACs."""
        out = {}
        for r in self._resolved:
            try:
                out[r.label] = r.estimate(counts)
            except (ValueError, RuntimeError) as e:
                raise ValueError(f"target {r.label}: {what}: {e}") from e
        tot = counts.profile("fp32").total
        return out, {"params": int(tot.params), "macs": int(tot.macs)}

    def costs(self, arch: Arch) -> dict[str, int]:
        """Parameters and MACs of ``arch`` (at fp32, from the op graph :meth:`evaluate` captured)."""
        if arch.key() not in self._costs:  # set with the estimates: a point not yet estimated
            self.evaluate(arch)
        return dict(self._costs[arch.key()])

    def feasible(self, arch: Arch) -> bool:
        """Whether ``arch`` keeps within every target's budgets (:meth:`Target.fits`)."""
        est = self.evaluate(arch)
        return all(r.target.fits(est[r.label]) for r in self._resolved)

    def table(self, target: Target | str) -> LatencyTable:
        """The :class:`LatencyTable` of one of this model's targets (by label or itself), kept between calls so
        that its parts are estimated once; it fills in the parts of new widths as they are asked for."""
        label = target.label() if isinstance(target, Target) else target
        found = [r for r in self._resolved if r.label == label]
        if not found:
            raise ValueError(f"no target {label!r}; targets: {', '.join(r.label for r in self._resolved)}")
        if label not in self._tables:
            self._tables[label] = LatencyTable(self.space, found[0].target, _resolved=found[0])
        return self._tables[label]


__all__ = ["ENERGY_UNITS", "LATENCY_UNITS", "METRICS", "RUNTIMES", "LatencyModel", "LatencyTable", "Target",
           "format_energy", "format_latency", "parse_energy", "parse_latency"]
