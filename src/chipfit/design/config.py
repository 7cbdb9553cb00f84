"""``DesignConfig``: what ``chipfit design`` is asked (the chip, the budgets, the data, the time) and how it works
(the search space, the source of latency, the plan's lengths when given instead of planned from the time)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

RUNTIMES = ("ort", "openvino")


@dataclass(frozen=True)
class DesignConfig:
    """Options of one design run.

    Attributes:
        hw: the target chip (``chipfit hw list``) or a chip YAML file.
        latency_budget_s, energy_budget_j, params_budget: the budgets (None: no limit; at least one is needed).
        data: ``fashion-mnist`` or a class-per-folder tree.
        minutes: the time box of the whole run on this machine; the plan splits it between the stages.
        out: the design folder.
        space: the search space (default: ``quadranet_s28``, QuadraNet blocks).
        source: how latency on the target is found: ``simulator`` for a chip with an array, else ``roofline``.
        precision: the target's precision (default int8: the network is deployed in int8).
        runtime: what the exported network is measured on, on this machine (``ort`` or ``openvino``).
        qat_threshold: quantization-aware training follows when post-training int8 loses more than this (a fraction:
            0.01 is one point of accuracy).
        supernet_epochs, supernet_steps, generations, population, epochs, steps_per_epoch: the plan's lengths; None
            plans them from ``minutes`` and this machine's measured speed (the plan is kept in the state file, so a
            resumed run follows the same one).
        inherit: start the chosen network from the supernet's weights for it (then train it; the recipe of
            once-for-all / BigNAS), rather than from random weights.
        zoo_epochs: train the best zoo network within the budgets for this many epochs with the same recipe, to set
            beside the design (0: compare modelled cost only).
        measure: time the deployed files on this machine.
        seed: data split, supernet, search and training.
        progress: progress display.
    """

    hw: str = "edge-npu"
    latency_budget_s: float | None = None
    energy_budget_j: float | None = None
    params_budget: float | None = None
    data: str = "fashion-mnist"
    minutes: float = 8.0
    out: str = "design"
    space: str = "quadranet_s28"
    source: str | None = None
    precision: str = "int8"
    runtime: str = "ort"
    qat_threshold: float = 0.01
    supernet_epochs: int | None = None
    supernet_steps: int | None = None
    generations: int | None = None
    population: int = 12
    epochs: int | None = None
    steps_per_epoch: int | None = None
    inherit: bool = True
    zoo_epochs: int = 0
    measure: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        def bad(option: str, value: Any, expected: str) -> ValueError:
            return ValueError(f"{option} {value!r}: must be {expected}")

        if self.latency_budget_s is None and self.energy_budget_j is None and self.params_budget is None:
            raise ValueError("give a budget: --latency (e.g. 0.3ms), --energy (e.g. 50uJ) or --params (e.g. 300k)")
        for option, v in (("--latency", self.latency_budget_s), ("--energy", self.energy_budget_j),
                          ("--params", self.params_budget)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise bad(option, v, "a number > 0 with its unit")
        if not (math.isfinite(self.minutes) and 1 <= self.minutes <= 24 * 60):
            raise bad("--minutes", self.minutes, "between 1 and 1440")
        if self.runtime not in RUNTIMES:
            raise bad("--runtime", self.runtime, f"one of {', '.join(RUNTIMES)}")
        if self.source is not None and self.source not in ("roofline", "simulator"):
            raise bad("--source", self.source, "roofline or simulator")
        if not 0 <= self.qat_threshold < 1:
            raise bad("--qat-threshold", self.qat_threshold, "a fraction in [0, 1), e.g. 0.01 for one point")
        for option, v in (("--supernet-epochs", self.supernet_epochs), ("--supernet-steps", self.supernet_steps),
                          ("--generations", self.generations), ("--epochs", self.epochs),
                          ("--steps-per-epoch", self.steps_per_epoch)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise bad(option, v, "a whole number >= 1")
        if not isinstance(self.population, int) or self.population < 2:
            raise bad("--population", self.population, "a whole number >= 2")
        if not isinstance(self.zoo_epochs, int) or self.zoo_epochs < 0:
            raise bad("--zoo-epochs", self.zoo_epochs, "a whole number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def asked(self) -> dict[str, Any]:
        """What defines the result: a resumed run must be asked the same (the plan's time box aside)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("progress", "measure", "out")}
