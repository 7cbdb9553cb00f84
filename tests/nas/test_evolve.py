"""The evolutionary / multi-objective search: planted optima, constraints, resume, workers, stale trials, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from chipfit.nas.evolve import Evaluation, Objective, SearchResult, infeasible_report, load_search, run_search
from chipfit.nas.space import Arch, Op, SearchSpace, StageSpace, load_space

OPS = tuple(Op("quadra", k, 2.0) for k in (3, 5, 7)) + (Op("identity"),)
IDENTITY = 3  # index of identity among OPS


def toy_space(name: str = "toy") -> SearchSpace:
    """8 genes (2 widths of 2 options, 6 slots of 4): 16384 points, small enough to search in a few hundred trials."""
    return SearchSpace(name, "metaformer", (StageSpace(3, (8, 16), OPS, stride=1), StageSpace(3, (16, 32), OPS)))


SPACE = toy_space()
GENES = SPACE.genes()
PLANTED = {n: (i * 5 + 1) % len(labels) for i, (n, labels) in enumerate(GENES)}  # s0.b0 = 2: feasible
MATCH = [Objective("match", "maximize")]


def matches(arch: Arch) -> int:
    enc = SPACE.encode(arch)
    return sum(enc[n] == v for n, v in PLANTED.items())


def blocks(arch: Arch) -> int:
    return sum(o != IDENTITY for stage in arch.ops for o in stage)


def planted_eval(arch: Arch) -> Evaluation:
    """Objective: genes equal to the planted point's; constraint: the first slot holds a block (a quarter of the space
    is infeasible)."""
    first_empty = SPACE.encode(arch)["s0.b0"] == IDENTITY
    return Evaluation({"match": matches(arch)}, {"first-block": 1.0 if first_empty else -1.0})


def study_trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials()


def same(a: SearchResult, b: SearchResult, n: int) -> bool:
    return all((x.number, x.arch, x.values, x.constraints) == (y.number, y.arch, y.values, y.constraints)
               for x, y in zip(a.trials[:n], b.trials[:n], strict=True))


# --- search quality ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("strategy", "budget", "population"), [("nsga2", 300, 12), ("tpe", 150, 16)])
def test_finds_planted_optimum_where_random_does_not(strategy: str, budget: int, population: int) -> None:
    found = run_search(SPACE, planted_eval, MATCH, strategy=strategy, trials=budget, study_name="t", seed=0,
                       population=population, progress=False)
    control = run_search(SPACE, planted_eval, MATCH, strategy="random", trials=budget, study_name="t", seed=0,
                         progress=False)
    assert len(found.trials) == budget
    best = found.best()
    assert best is not None and best.values["match"] == len(GENES)
    assert SPACE.encode(best.arch) == PLANTED
    # random search hits one point in 16384 with probability ~budget/16384; seed 0 does not
    random_best = control.best()
    assert random_best is not None and random_best.values["match"] < len(GENES)


def test_pareto_holds_only_feasible_non_dominated_points() -> None:
    objectives = [Objective("match", "maximize"), Objective("blocks", "minimize")]

    def evaluate(arch: Arch) -> Evaluation:  # fewer than 3 blocks is infeasible (as too small a net would be)
        return Evaluation({"match": matches(arch), "blocks": blocks(arch)}, {"min-blocks": 3.0 - blocks(arch)})

    result = run_search(SPACE, evaluate, objectives, strategy="random", trials=120, study_name="p", seed=1,
                        progress=False)
    front = result.pareto()
    assert front and all(t.feasible for t in front)
    assert len({t.arch.key() for t in front}) == len(front)
    feas = result.feasible()

    def dominated(t, pool) -> bool:  # independent of the module's numpy form
        return any(o.values["match"] >= t.values["match"] and o.values["blocks"] <= t.values["blocks"]
                   and (o.values["match"] > t.values["match"] or o.values["blocks"] < t.values["blocks"]) for o in pool)

    expected = {t.arch.key() for t in feas if not dominated(t, feas)}
    assert {t.arch.key() for t in front} == expected
    # the constraint matters: some infeasible point would sit on the unconstrained front, and is left out
    everyone = result.trials
    unconstrained = {t.arch.key() for t in everyone if not dominated(t, everyone)}
    assert any(not t.feasible for t in everyone if t.arch.key() in unconstrained)
    assert [t.values["match"] for t in front] == sorted((t.values["match"] for t in front), reverse=True)
    best_blocks = result.best("blocks")
    assert best_blocks is not None and best_blocks.values["blocks"] == min(t.values["blocks"] for t in feas)
    with pytest.raises(ValueError, match="not one of"):
        result.best("latency")


def test_duplicates_reuse_the_stored_result() -> None:
    small = SearchSpace("two", "metaformer", (StageSpace(1, (8, 16), OPS[:2], stride=1),))  # 4 points
    calls: list[str] = []

    def evaluate(arch: Arch) -> Evaluation:
        calls.append(arch.key())
        return Evaluation({"w": arch.widths[0] * 10 + arch.ops[0][0]}, extra={"note": f"w{arch.widths[0]}"})

    told: list[int] = []
    result = run_search(small, evaluate, [Objective("w", "maximize")], strategy="random", trials=15,
                        study_name="d", progress=False, on_trial=lambda rec: told.append(rec.number))
    assert len(result.trials) == 15 and told == list(range(15))
    assert len(calls) == len(set(calls)) <= 4
    firsts = {t.arch.key(): t for t in result.trials if t.duplicate_of is None}
    assert len(firsts) == len(calls)
    dups = [t for t in result.trials if t.duplicate_of is not None]
    assert dups
    for t in dups:
        orig = firsts[t.arch.key()]
        assert t.duplicate_of == orig.number and t.values == orig.values and t.extra == orig.extra


# --- storage, resume, workers -----------------------------------------------------------------------------------------


def test_resume_reaches_the_same_total_and_keeps_earlier_trials(tmp_path: Path) -> None:
    db = tmp_path / "search.db"
    first = run_search(SPACE, planted_eval, MATCH, trials=10, storage=db, study_name="r", population=4,
                       progress=False)
    assert len(first.trials) == 10 and first.storage == f"sqlite:///{db.resolve()}"
    second = run_search(SPACE, planted_eval, MATCH, trials=20, storage=db, study_name="r", population=4,
                        progress=False)
    assert [t.number for t in second.trials] == list(range(20))
    assert same(first, second, 10)
    assert [t.state for t in study_trials(second.storage, "r")] == [TrialState.COMPLETE] * 20
    # a total already reached runs nothing; load_search reads the same records back
    again = run_search(SPACE, planted_eval, MATCH, trials=15, storage=db, study_name="r", progress=False)
    assert len(again.trials) == 20 and same(second, again, 20)
    loaded = load_search(db, "r")
    assert loaded.space == SPACE and loaded.objectives == tuple(MATCH) and same(second, loaded, 20)


def test_ctrl_c_stops_after_the_current_trial_and_says_how_to_resume(tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.db"
    seen: list[int] = []

    def evaluate(arch: Arch) -> Evaluation:
        seen.append(1)
        if len(seen) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return planted_eval(arch)

    before = signal.getsignal(signal.SIGINT)  # Python's own, or SIG_IGN in a job a shell started in the background
    result = run_search(SPACE, evaluate, MATCH, trials=8, storage=db, study_name="c", progress=False)
    assert result.interrupted and len(result.trials) == 5
    err = capsys.readouterr().err
    assert "Run the same command again" in err and "5 of 8" in err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    done = run_search(SPACE, planted_eval, MATCH, trials=8, storage=db, study_name="c", progress=False)
    assert not done.interrupted and len(done.trials) == 8


def test_second_ctrl_c_abandons_the_trial(tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.db"
    seen: list[int] = []

    def evaluate(arch: Arch) -> Evaluation:
        seen.append(1)
        if len(seen) == 3:
            for _ in range(2):  # the loop lets the first signal's handler run before the second is sent
                os.kill(os.getpid(), signal.SIGINT)
        return planted_eval(arch)

    result = run_search(SPACE, evaluate, MATCH, trials=8, storage=db, study_name="c", progress=False)
    assert result.interrupted and len(result.trials) == 2
    states = [t.state for t in study_trials(result.storage, "c")]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert "Run the same command again" in capsys.readouterr().err


WORKER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from chipfit.nas.evolve import Evaluation, Objective, run_search
    from chipfit.nas.space import load_space

    space_file, db, mode, trials, seed, flags = sys.argv[1:7]
    space = load_space(space_file)
    flags = Path(flags)
    count = [0]

    def evaluate(arch):
        count[0] += 1
        if mode == "pair" and count[0] == 1:  # a barrier: both workers are inside the search before either goes on
            (flags / f"ready-{seed}").touch()
            deadline = time.time() + 60
            while len(list(flags.glob("ready-*"))) < 2 and time.time() < deadline:
                time.sleep(0.01)
        if mode == "hang" and count[0] == 4:
            (flags / "hanging").touch()
            time.sleep(600)
        time.sleep(0.005)
        return Evaluation({"match": sum(arch.widths) + sum(map(sum, arch.ops))}, {"c": -1.0})

    run_search(space, evaluate, [Objective("match", "maximize")], strategy="random", trials=int(trials),
               storage=db, study_name="w", seed=int(seed), progress=False)
''')


def _worker(tmp_path: Path, db: Path, mode: str, trials: int, seed: int) -> subprocess.Popen:
    script, space_file = tmp_path / "worker.py", tmp_path / "space.json"
    script.write_text(WORKER)
    space_file.write_text(json.dumps(SPACE.to_dict()))
    return subprocess.Popen([sys.executable, str(script), str(space_file), str(db), mode, str(trials), str(seed),
                             str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_processes_share_one_study_and_reach_the_total(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [_worker(tmp_path, db, "pair", 20, seed) for seed in (1, 2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trials = study_trials(f"sqlite:///{db}", "w")
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 20
    assert len({t.user_attrs["chipfit.worker"]["pid"] for t in complete}) == 2  # both did work
    # nothing is left running, and the only failures are the racers for the last slot (no live trial was failed)
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("chipfit.surplus") for t in others)
    assert len(others) <= 1


def test_killed_worker_trial_is_failed_and_not_counted_on_resume(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = _worker(tmp_path, db, "hang", 10, 0)
    deadline = time.monotonic() + 90
    while not (tmp_path / "hanging").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    before = study_trials(f"sqlite:///{db}", "w")
    assert [t.state for t in before] == [TrialState.COMPLETE] * 3 + [TrialState.RUNNING]

    def evaluate(arch: Arch) -> Evaluation:
        return Evaluation({"match": sum(arch.widths) + sum(map(sum, arch.ops))}, {"c": -1.0})

    # its process is gone: failed at once, although its heartbeat is fresh (stale_after is an hour)
    result = run_search(SPACE, evaluate, MATCH, strategy="random", trials=10, storage=db, study_name="w",
                        stale_after=3600, progress=False)
    assert result.stale_failed == [3]
    assert len(result.trials) == 10 and 3 not in {t.number for t in result.trials}
    states = [t.state for t in study_trials(result.storage, "w")]
    assert states.count(TrialState.COMPLETE) == 10 and states[3] == TrialState.FAIL
    assert TrialState.RUNNING not in states


def test_hand_made_running_trial_goes_stale_and_is_not_counted(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    run_search(SPACE, planted_eval, MATCH, trials=4, storage=db, study_name="h", progress=False)
    url = f"sqlite:///{db.resolve()}"
    orphan = optuna.load_study(study_name="h", storage=url).ask()  # RUNNING, no worker, no heartbeat
    time.sleep(0.5)
    result = run_search(SPACE, planted_eval, MATCH, trials=8, storage=db, study_name="h", stale_after=0.2,
                        progress=False)
    assert result.stale_failed == [orphan.number]
    assert [t.number for t in result.trials] == [0, 1, 2, 3, 5, 6, 7, 8]
    states = [t.state for t in study_trials(url, "h")]
    assert states[orphan.number] == TrialState.FAIL and states.count(TrialState.COMPLETE) == 8


# --- refusals and reports ---------------------------------------------------------------------------------------------


def test_other_space_or_objectives_on_the_same_study_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    run_search(SPACE, planted_eval, MATCH, trials=3, storage=db, study_name="x", progress=False)
    with pytest.raises(ValueError, match=r"space 'quadranet_s28' differs in .*stages"):
        run_search(load_space("quadranet_s28"), planted_eval, MATCH, trials=6, storage=db, study_name="x",
                   progress=False)
    with pytest.raises(ValueError, match=r"optimizes match \(maximize\); this run asks for match \(minimize\)"):
        run_search(SPACE, planted_eval, [Objective("match", "minimize")], trials=6, storage=db, study_name="x",
                   progress=False)
    with pytest.raises(ValueError, match="another study_name"):
        run_search(SPACE, planted_eval, [*MATCH, Objective("blocks", "minimize")], trials=6, storage=db,
                   study_name="x", progress=False)
    assert len(load_search(db, "x").trials) == 3  # nothing was added by the refused runs


def test_changed_budget_is_refused(tmp_path: Path) -> None:
    def with_budget(budget: float):
        def evaluate(arch: Arch) -> Evaluation:
            return Evaluation({"match": matches(arch)}).add_limit("npu latency_s", 1e-3 * blocks(arch), budget,
                                                                  unit="s")
        return evaluate

    db = tmp_path / "b.db"
    run_search(SPACE, with_budget(2e-3), MATCH, trials=3, storage=db, study_name="b", progress=False)
    with pytest.raises(ValueError, match="budgets"):
        run_search(SPACE, with_budget(5e-3), MATCH, trials=6, storage=db, study_name="b", progress=False)


def test_infeasible_report_names_the_constraint_and_the_smallest_value() -> None:
    latencies: list[float] = []

    def evaluate(arch: Arch) -> Evaluation:
        lat = 2.3e-4 + 1e-5 * blocks(arch)  # never under the 0.1 ms budget
        latencies.append(lat)
        return (Evaluation({"match": matches(arch)})
                .add_limit("edge-npu/simulator latency_s", lat, 1e-4, unit="s")
                .add_limit("params", 1000 * blocks(arch), 3000))

    result = run_search(SPACE, evaluate, MATCH, strategy="random", trials=30, study_name="i", progress=False)
    assert not result.feasible() and result.best() is None and result.pareto() == []
    lines = infeasible_report(result)
    assert len(lines) == 2
    lat_line = next(x for x in lines if x.startswith("no architecture meets edge-npu/simulator latency_s"))
    assert "<= 100 us" in lat_line and f"the smallest reached is {min(latencies) * 1e6:.4g} us" in lat_line
    params_line = next(x for x in lines if x.startswith("params"))
    met = sum(1 for t in result.trials if 1000 * blocks(t.arch) <= 3000)
    assert met > 0 and f"is met by {met} of 30 trials, but never together" in params_line

    def plain(arch: Arch) -> Evaluation:
        return Evaluation({"match": matches(arch)}, {"energy": 2.0 + blocks(arch)})

    plain_result = run_search(SPACE, plain, MATCH, strategy="random", trials=10, study_name="i2", progress=False)
    low = min(2.0 + blocks(t.arch) for t in plain_result.trials)
    assert infeasible_report(plain_result)[0].startswith(
        f"no architecture meets energy (violation <= 0); the smallest violation reached is {low:.4g}")
    feasible = run_search(SPACE, planted_eval, MATCH, trials=10, study_name="f", progress=False)
    assert infeasible_report(feasible) == []


@pytest.mark.parametrize(("option", "kwargs"), [("strategy", {"strategy": "grid"}), ("trials", {"trials": 0}),
                                                ("population", {"population": 1}), ("study_name", {"study_name": ""})])
def test_bad_options_are_named(option: str, kwargs: dict) -> None:
    args = {"trials": 2, "study_name": "o", "progress": False, **kwargs}
    with pytest.raises(ValueError, match=option):
        run_search(SPACE, planted_eval, MATCH, **args)


def test_bad_evaluation_is_refused_and_fails_the_trial(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    with pytest.raises(ValueError, match=r"evaluate returned objectives \['acc'\]; the search optimizes \['match'\]"):
        run_search(SPACE, lambda a: Evaluation({"acc": 1.0}), MATCH, trials=2, storage=db, study_name="e",
                   progress=False)
    assert [t.state for t in study_trials(f"sqlite:///{db.resolve()}", "e")] == [TrialState.FAIL]

    def flaky(arch: Arch) -> Evaluation:
        if blocks(arch) % 2:
            raise RuntimeError("out of memory")
        return planted_eval(arch)

    result = run_search(SPACE, flaky, MATCH, trials=6, storage=db, study_name="e", catch=(RuntimeError,),
                        progress=False)
    assert len(result.trials) == 6 and all(blocks(t.arch) % 2 == 0 for t in result.trials)
    failed = [t for t in study_trials(result.storage, "e") if t.state == TrialState.FAIL]
    assert all("out of memory" in t.user_attrs["chipfit.error"] for t in failed[1:])


def test_progress_bar_shows_the_best_feasible_value(capsys) -> None:
    result = run_search(SPACE, planted_eval, MATCH, strategy="random", trials=6, study_name="[b]bar", progress=True)
    best = result.best()
    assert best is not None
    err = capsys.readouterr().err
    assert "random [b]bar" in err and "6/6" in err
    assert f"best match {best.values['match']:.4g} (trial {best.number})" in err


def test_load_search_refuses_what_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_search(tmp_path / "missing.db", "s")
    assert not (tmp_path / "missing.db").exists()
    run_search(SPACE, planted_eval, MATCH, trials=2, storage=tmp_path / "s.db", study_name="s", progress=False)
    with pytest.raises(ValueError, match="study_name 'other': no such study"):
        load_search(tmp_path / "s.db", "other")
