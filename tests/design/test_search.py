"""The design's evolution: deterministic from its seed, and a search killed part-way then continued reaches the
very candidates an uninterrupted one does; the chosen one is the most accurate within the budgets."""

from __future__ import annotations

import json

import pytest

from chipfit.design.search import best, evolve, front
from chipfit.nas.evolve import Evaluation
from chipfit.nas.space import load_space


def _evaluate(arch):
    """A made-up but deterministic score: accuracy grows with the widths, latency too; a budget on latency."""
    w = sum(arch.widths) + sum(sum(s) for s in arch.ops)
    ev = Evaluation({"accuracy": 0.5 + w / 100, "t latency_s": 1e-4 * (1 + w)})
    ev.add_limit("t latency_s", 1e-4 * (1 + w), 1e-4 * 12, unit="s")
    ev.extra.update({"macs": w, "params": w, "describe": str(w)})
    return ev


class _Stop(Exception):
    pass


def test_interrupted_search_continues_to_the_same_candidates(tmp_path):
    space = load_space("quadranet_s28")
    whole = evolve(space, _evaluate, tmp_path / "a.jsonl", generations=4, population=6, seed=3)
    calls = {"n": 0}

    def dies_at_nine(arch):
        calls["n"] += 1
        if calls["n"] == 9:
            raise _Stop
        return _evaluate(arch)

    with pytest.raises(_Stop):
        evolve(space, dies_at_nine, tmp_path / "b.jsonl", generations=4, population=6, seed=3)
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 8
    again = evolve(space, _evaluate, tmp_path / "b.jsonl", generations=4, population=6, seed=3)
    assert [c["key"] for c in again] == [c["key"] for c in whole]
    assert len(whole) == 24
    other = evolve(space, _evaluate, tmp_path / "c.jsonl", generations=4, population=6, seed=4)
    assert [c["key"] for c in other] != [c["key"] for c in whole]


def test_a_line_cut_by_a_kill_is_scored_again(tmp_path):
    space = load_space("quadranet_s28")
    log = tmp_path / "a.jsonl"
    whole = evolve(space, _evaluate, log, generations=2, population=4, seed=0)
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # the fourth record half written
    again = evolve(space, _evaluate, log, generations=2, population=4, seed=0)
    assert [c["key"] for c in again] == [c["key"] for c in whole]
    assert all(json.loads(x)["key"] for x in log.read_text().splitlines()[4:])


def test_best_and_front_on_hand_made_points():
    def c(key, acc, t, ok, macs=1):
        return {"key": key, "accuracy": acc, "values": {"L": t}, "feasible": ok, "macs": macs}

    cands = [c("a", 0.80, 1.0, True), c("b", 0.85, 2.0, True, 5), c("b2", 0.85, 2.0, True, 3),
             c("c", 0.90, 3.0, False), c("d", 0.70, 2.5, True)]
    assert best(cands)["key"] == "b2"  # most accurate within the budgets, fewer MACs on a tie
    assert best([c("x", 0.9, 1, False)]) is None
    assert [x["key"] for x in front(cands, "L")] == ["a", "b2", "c"]  # d is beaten by b
