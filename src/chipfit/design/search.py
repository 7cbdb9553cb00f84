"""The design's search: a fixed number of generations of evolution over a trained supernet, deterministic under
interruption.

Generation 0 is the space's smallest network and ``population - 1`` architectures drawn from the space with the
seed (the smallest anchors a tight budget, which random draws may all break); every later generation mutates
parents chosen by tournament among the feasible candidates seen so far (most accurate first; while none is feasible,
the ones that break their budgets least), each gene changed with probability 1/genes. A generation's candidates
depend only on the seed and on the scores before it, and every scored candidate is appended to ``candidates.jsonl``
as it is scored: a killed search continues where it stopped and reaches exactly what an uninterrupted one reaches
(Optuna's samplers re-seed on resume, so a resumed study may take other steps; this one cannot).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chipfit.nas.evolve import Evaluation
from chipfit.nas.space import Arch, SearchSpace


def _violation(rec: dict[str, Any]) -> float:
    """How far a candidate is from its budgets: the sum of (value / limit - 1) over the limits it breaks."""
    return sum(max(0.0, v / lim - 1) for v, lim in rec["limits"].values())


def _rank_key(rec: dict[str, Any]) -> tuple:
    return (0, -rec["accuracy"]) if rec["feasible"] else (1, _violation(rec))


def _cost_of_label(label: str) -> tuple[float, ...]:
    """Order of a gene's options by size: by the numbers in the label (a width, or the kernel and expansion of
    ``quadra_k3_e2``)."""
    nums = [float(x) for x in re.findall(r"[0-9]+(?:\.[0-9]+)?", label)]
    return tuple(nums) or (0.0,)


def smallest(space: SearchSpace) -> Arch:
    """The space's smallest network with every slot filled: the narrowest widths and the cheapest block (not the
    identity) in every slot."""
    def pick(opts: tuple[str, ...]) -> int:
        real = [i for i in range(len(opts)) if opts[i] != "identity"] or list(range(len(opts)))
        return min(real, key=lambda i: _cost_of_label(opts[i]))

    return space.decode({name: pick(opts) for name, opts in space.genes()})


def _mutate(space: SearchSpace, arch: Arch, rng: random.Random) -> Arch:
    genes = space.genes()
    values = space.encode(arch)
    p = 1 / max(len(genes), 1)
    changed = False
    for name, choices in genes:
        if len(choices) > 1 and rng.random() < p:
            values[name] = rng.choice([i for i in range(len(choices)) if i != values[name]])
            changed = True
    if not changed:  # every child differs from its parent in at least one gene
        name, choices = rng.choice([g for g in genes if len(g[1]) > 1])
        values[name] = rng.choice([i for i in range(len(choices)) if i != values[name]])
    return space.decode(values)


def record(arch: Arch, ev: Evaluation, generation: int) -> dict[str, Any]:
    """A scored candidate as ``candidates.jsonl`` holds it."""
    extra = {k: v for k, v in ev.extra.items() if k != "limits"}
    limits = {name: (lim["value"], lim["budget"]) for name, lim in ev.extra.get("limits", {}).items()}
    return {"generation": generation, "arch": arch.to_dict(), "key": arch.key(),
            "accuracy": ev.objectives["accuracy"], "values": ev.objectives, "limits": limits,
            "feasible": ev.feasible, **extra}


def evolve(space: SearchSpace, evaluate: Callable[[Arch], Evaluation], log: Path, *, generations: int,
           population: int, seed: int, on_candidate: Callable[[dict[str, Any]], None] | None = None
           ) -> list[dict[str, Any]]:
    """Run (or continue) the search and return every candidate scored, in order.

    Args:
        space: the search space.
        evaluate: architecture -> :class:`~chipfit.nas.evolve.Evaluation` (accuracy, latency, limits).
        log: the JSONL file of scored candidates (read first: those are not scored again).
        generations, population: the search's length (generation 0 included) and width.
        seed: draws the first generation and every choice after it.
        on_candidate: called with each candidate's record (progress display).
    """
    done: dict[str, dict[str, Any]] = {}
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill mid-write: scored again
                    continue
                done[rec["key"]] = rec
    log.parent.mkdir(parents=True, exist_ok=True)
    seen: list[dict[str, Any]] = []
    with log.open("a") as f:
        for g in range(generations):
            rng = random.Random(f"{seed}:{g}")
            if g == 0:
                archs = [smallest(space)] + [space.sample(rng) for _ in range(population - 1)]
            else:
                pool = sorted(seen, key=_rank_key)[:max(2, population // 2)]
                archs = []
                for _ in range(population):
                    a, b = rng.sample(pool, 2) if len(pool) > 1 else (pool[0], pool[0])
                    parent = min((a, b), key=_rank_key)
                    archs.append(_mutate(space, space.arch_from_dict(parent["arch"]), rng))
            for arch in archs:
                key = arch.key()
                rec = done.get(key) or next((r for r in seen if r["key"] == key), None)
                if rec is None:
                    rec = record(arch, evaluate(arch), g)
                    f.write(json.dumps(rec) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                    done[key] = rec
                seen.append(rec)
                if on_candidate is not None:
                    on_candidate(rec)
    return seen


def best(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most accurate feasible candidate (ties: fewer MACs), or None."""
    ok = [c for c in candidates if c["feasible"]]
    return min(ok, key=lambda c: (-c["accuracy"], c.get("macs", 0))) if ok else None


def front(candidates: list[dict[str, Any]], latency_key: str) -> list[dict[str, Any]]:
    """The distinct candidates no other beats in both estimated accuracy and ``latency_key`` latency, fastest first
    (of points equal in both, the one with fewer MACs)."""
    uniq = {c["key"]: c for c in candidates}.values()
    out, top = [], -1.0
    for c in sorted(uniq, key=lambda c: (c["values"][latency_key], -c["accuracy"], c.get("macs", 0))):
        if c["accuracy"] > top:
            out.append(c)
            top = c["accuracy"]
    return out
