"""Engines other than the systolic array, over the same :class:`SimLayer` list: their records and their registry.

An engine is a frozen dataclass with a ``name`` and a ``run(layers, *, batch=1)`` method returning an
:class:`EngineResult`: the in-memory crossbar (:mod:`chipfit.hw.sim.crossbar`, ``isaac-like`` and ``prime-like``) and
the binary XNOR-popcount engine (:mod:`chipfit.hw.sim.binary`, ``xnor``). :func:`simulate_engine` runs a network on
one of them by name or instance.

Conventions: a MAC is one multiply-add (one XNOR for a binary layer); times in seconds, energies in joules (the
``energy`` breakdowns in joules too), bytes at the width each engine stores activations in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from chipfit.hw.sim._engine import UNITS, Engine, EngineLayer, EngineResult, batched, check_layers
from chipfit.hw.sim.binary import XNOR_ENGINE
from chipfit.hw.sim.crossbar import ISAAC_LIKE, PRIME_LIKE
from chipfit.hw.sim.workload import SimLayer


class _Builtins(Mapping[str, Engine]):
    """The built-in engines by name."""

    def _table(self) -> dict[str, Engine]:
        return {e.name: e for e in (ISAAC_LIKE, PRIME_LIKE, XNOR_ENGINE)}

    def __getitem__(self, name: str) -> Engine:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


ENGINES: Mapping[str, Engine] = _Builtins()


def is_engine(spec: Any) -> bool:
    """Whether ``spec`` names a built-in engine (``isaac-like``, ``prime-like``, ``xnor``) or is one."""
    if isinstance(spec, str):
        return spec.strip().lower().replace("_", "-") in ENGINES
    return callable(getattr(spec, "run", None)) and isinstance(getattr(spec, "name", None), str)


def load_engine(spec: str | Engine) -> Engine:
    """A built-in engine by name (``isaac-like``, ``prime-like``, ``xnor``; underscores work too), or ``spec`` itself.

    Raises:
        ValueError: an unknown name (naming the known ones).
    """
    if not isinstance(spec, str):
        if callable(getattr(spec, "run", None)):
            return spec
        raise ValueError(f"cannot use {type(spec).__name__} as an engine: give one of {', '.join(ENGINES)}, a "
                         "Crossbar or a BinaryEngine")
    key = spec.strip().lower().replace("_", "-")
    if key not in ENGINES:
        from chipfit.hw.cited import hint

        raise ValueError(f"unknown engine {spec!r}{hint(key, list(ENGINES))}: use one of {', '.join(ENGINES)}, or "
                         "build a Crossbar / BinaryEngine (dataclasses.replace on a built-in)")
    return ENGINES[key]


def simulate_engine(layers: Sequence[SimLayer], engine: str | Engine, *, batch: int = 1) -> EngineResult:
    """Run ``layers`` (as :func:`~chipfit.hw.sim.workload.layers_from_profile` gives them) on ``engine``.

    Args:
        layers: the network.
        engine: a name (:data:`ENGINES`) or an engine instance.
        batch: images per run (each layer's own batch times this).
    """
    return load_engine(engine).run(layers, batch=batch)


__all__ = ["ENGINES", "UNITS", "Engine", "EngineLayer", "EngineResult", "batched", "check_layers", "is_engine",
           "load_engine", "simulate_engine"]
