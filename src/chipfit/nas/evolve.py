"""Evolutionary and multi-objective search over a :class:`~chipfit.nas.space.SearchSpace`, with hard constraints.

:func:`run_search` asks an Optuna sampler for points of the space (each gene a categorical choice named as in
:meth:`SearchSpace.genes`, its option *labels* stored, so the database reads ``s1.b0 = quadra_k5_e4``), calls the
caller's ``evaluate(arch) -> Evaluation`` and tells the study the objectives. Strategies (:data:`STRATEGIES`):

- ``nsga2``: NSGA-II (Deb et al., 2002), Optuna's ``NSGAIISampler``: a population of ``population`` points, crossover
  and mutation, survival by non-domination rank with Deb's constrained domination (a feasible point beats an
  infeasible one; among infeasible, the smaller total violation wins).
- ``tpe``: multivariate TPE with Optuna's constraint handling (infeasible trials rank below feasible ones, by their
  violation); ``population`` random start-up trials; constant liar so parallel workers don't all sample one point.
- ``random``: uniform sampling, the control every search should beat.

Constraints follow Optuna's convention: a value <= 0 is satisfied (``latency - budget``). They are stored as the user
attribute ``chipfit.constraints`` of each trial and handed to the sampler's ``constraints_func``, as Optuna documents.
Give them names that mean something (``edge-npu/simulator latency_s``) and record value and budget with
:meth:`Evaluation.add_limit`, so :func:`infeasible_report` can say "no architecture meets edge-npu/simulator latency_s
<= 100 us; the smallest reached is 230 us".

State lives in an Optuna storage, which is what makes a search resumable and shareable:

- ``storage`` a path: SQLite in that file (``sqlite:///...``, a 60 s lock timeout so several local processes can
  share it); an URL (``postgresql://...``, ``mysql://...``): used as given, several machines can share it; ``None``:
  in memory, lost at exit.
- ``trials`` is the TOTAL of complete trials the study should hold, not how many this call runs: a search stopped by
  Ctrl-C or killed continues to the same total when the same command runs again, and several workers on one storage
  share the count. Before each trial a worker counts complete trials plus those running elsewhere; the last slots go to
  the trials ahead of it (complete, or running with a lower number), so two workers racing for the last slot never
  overshoot: the one behind marks its fresh trial FAIL (user attribute ``chipfit.surplus``, no point sampled) and
  waits. A worker returns once the study holds ``trials`` complete trials; while the missing ones run elsewhere it
  waits for them (they complete, fail, or go stale). Only COMPLETE trials count: the search never prunes, and failed or
  stale trials are not results.
- Stale trials. A killed worker leaves its trial RUNNING; it must neither block the count nor be counted. Each chipfit
  trial carries ``chipfit.worker`` (host, process id, PID namespace) and a heartbeat ``chipfit.alive`` (epoch
  seconds, refreshed by a thread every ``stale_after / 4`` seconds while ``evaluate`` runs). A RUNNING trial is stale,
  and is marked FAIL by the next worker that looks, when its process is gone (same host and PID namespace: checked at
  once, so a resume right after a kill needs no wait) or its heartbeat is older than ``stale_after`` seconds (another
  host; a trial made by something else, with no heartbeat, by its start time). Optuna's own heartbeat
  (``RDBStorage(heartbeat_interval=...)``) was not used: it runs only inside ``study.optimize``, never fails a trial
  that has no heartbeat record, and always waits a grace period even when the process is known to be dead. A worker
  whose trial was failed as stale (a machine that slept past ``stale_after``) drops that result with a note and goes
  on. Clocks of machines sharing a database should agree to well within ``stale_after``.
- Duplicates: an architecture already evaluated in the study (same :meth:`Arch.key`, from complete trials' user
  attributes) is not evaluated again: its stored objectives, constraints and extras are told for the new trial, which
  records ``chipfit.duplicate_of``. The study is the cache: a changed evaluation recipe needs a new study name.
- A study keeps its space (``chipfit.space``, the space's ``to_dict``) and objectives (``chipfit.objectives``) as study
  user attributes; a run with another space or other objectives / directions is refused, naming what differs. The
  constraint names and :meth:`Evaluation.add_limit` budgets are pinned by the first evaluation in the same way.
- Ctrl-C stops after the current trial (a second Ctrl-C abandons it, marked FAIL) and prints how to resume.

Seeds: ``seed`` seeds the sampler of a fresh study; a resumed one derives its seed from ``seed`` and the trials present,
so it does not replay the random draws already made. Concurrent workers starting a fresh study should get different
seeds, or they draw the same first points (the cache then saves the evaluations, not the trial slots).

This module holds the entry points (:func:`run_search`, :func:`load_search`, :func:`open_storage`,
:func:`infeasible_report`) and the strategies; the records (:class:`Evaluation`, :class:`Objective`,
:class:`TrialRecord`, :class:`SearchResult`) are defined in ``chipfit.nas._records`` and the study machinery (storage,
study checks, heartbeat, stale trials, Ctrl-C, progress, the worker's loop) in ``chipfit.nas._study``; all are
public from here.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chipfit.nas._records import (
    _CONSTRAINTS,
    _LIMITS,
    _OBJECTIVES,
    _SPACE,
    DIRECTIONS,
    Evaluation,
    Objective,
    SearchResult,
    TrialRecord,
)
from chipfit.nas._records import FORMAT as FORMAT
from chipfit.nas._study import _console_bar, _open_study, _record, _Search, open_storage
from chipfit.nas.space import Arch, SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

STRATEGIES = ("nsga2", "tpe", "random")


# --- why nothing is feasible ------------------------------------------------------------------------------------------


def infeasible_report(result: SearchResult) -> list[str]:
    """Why no architecture is feasible: for each constraint the smallest violation any trial reached.

    Returns:
        One sentence per constraint (empty when some trial is feasible). With :meth:`Evaluation.add_limit`'s records:
        "no architecture meets NAME <= BUDGET; the smallest reached is VALUE (trial N)"; a constraint that some trials
        meet, but never together with the others, says so.
    """
    if result.feasible():
        return []
    if not result.trials:
        return ["no architecture was evaluated: the study holds no complete trial"]
    names = sorted({n for t in result.trials for n in t.constraints})
    out = []
    for name in names:
        holding = [t for t in result.trials if name in t.constraints]
        low = min(holding, key=lambda t: (t.constraints[name], t.number))
        lim = low.extra.get(_LIMITS, {}).get(name) if isinstance(low.extra.get(_LIMITS), dict) else None
        met = sum(1 for t in holding if t.constraints[name] <= 0)
        if isinstance(lim, dict) and {"value", "budget"} <= set(lim):
            unit = str(lim.get("unit", ""))
            bound = f"{name} <= {_quantity(lim['budget'], unit)}"
            reached = f"the smallest reached is {_quantity(lim['value'], unit)}"
        else:
            bound = f"{name} (violation <= 0)"
            reached = f"the smallest violation reached is {low.constraints[name]:.4g}"
        if met:
            out.append(f"{bound} is met by {met} of {len(holding)} trials, but never together with the other "
                       f"constraints")
        else:
            out.append(f"no architecture meets {bound}; {reached} (trial {low.number})")
    return out


def _quantity(value: float, unit: str) -> str:
    if unit == "s" and value != 0 and abs(value) < 1:
        return f"{value * 1e3:.4g} ms" if abs(value) >= 1e-3 else f"{value * 1e6:.4g} us"
    return f"{value:.4g} {unit}".rstrip()


# --- the search -------------------------------------------------------------------------------------------------------


def run_search(space: SearchSpace, evaluate: Callable[[Arch], Evaluation], objectives: Sequence[Objective], *,
               trials: int, study_name: str, storage: str | Path | optuna.storages.BaseStorage | None = None,
               strategy: str = "nsga2", seed: int = 0, population: int = 16, progress: bool = True,
               on_trial: Callable[[TrialRecord], None] | None = None, stale_after: float = 120.0,
               poll: float = 1.0, catch: tuple[type[Exception], ...] = ()) -> SearchResult:
    """Search ``space`` until the study holds ``trials`` complete trials (see the module docstring).

    Args:
        space: the space searched.
        evaluate: architecture -> :class:`Evaluation`. An exception marks the trial FAIL and propagates (the
            search resumes on the next run) unless its type is in ``catch``.
        objectives: what to optimize, in order (the first is the one the progress bar and :meth:`SearchResult.best`
            show by default).
        trials: the total of complete trials the study should reach, counting earlier runs and other workers.
        study_name: the study in the storage; the same name resumes it.
        storage: a file path (SQLite), a database URL, an Optuna storage object, or None (in memory).
        strategy: ``nsga2``, ``tpe`` or ``random``.
        seed: the sampler's seed.
        population: NSGA-II's population size; TPE's random start-up trials.
        progress: show a progress bar with the best feasible value of the first objective.
        on_trial: called with each trial this run completes (duplicates included).
        stale_after: seconds without a heartbeat after which another host's RUNNING trial counts as dead.
        poll: seconds between looks while the last trials run elsewhere.
        catch: exception types of ``evaluate`` that fail the trial (user attribute ``chipfit.error``) and go on.

    Returns:
        The study's complete trials; ``interrupted`` when Ctrl-C stopped the run early.

    Raises:
        ValueError: a bad option (named), or a study of another space or other objectives under ``study_name``.
    """
    objectives = tuple(objectives)
    _check_options(space, objectives, strategy, trials, population, study_name, stale_after, poll)
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        store, where = open_storage(storage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = _open_study(store, where, study_name, space, objectives)
            present = len(study.get_trials(deepcopy=False))
            study.sampler = _sampler(strategy, seed if present == 0 else _derived_seed(seed, present), population)
            search = _Search(study, where, space, evaluate, objectives, trials, stale_after, poll, catch, on_trial)
            with _console_bar(progress, f"{strategy} {study_name}", trials) as bar:
                search.run(bar)
        return search.result()
    finally:
        optuna.logging.set_verbosity(verbosity)


def load_search(storage: str | Path | optuna.storages.BaseStorage, study_name: str) -> SearchResult:
    """The complete trials of a study :func:`run_search` made, its space and objectives read from the study.

    Raises:
        ValueError: no such study, or one chipfit did not make.
    """
    import optuna

    if isinstance(storage, (str, Path)) and "://" not in str(storage) and not Path(storage).expanduser().is_file():
        raise ValueError(f"storage {str(storage)!r}: no such file (a search's SQLite file or a database URL)")
    store, where = open_storage(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        raise ValueError(f"study_name {study_name!r}: no such study in {where}") from None
    attrs = study.user_attrs
    if _SPACE not in attrs or _OBJECTIVES not in attrs:
        raise ValueError(f"study {study_name!r} in {where} was not made by chipfit's search (no {_SPACE} attribute)")
    space = SearchSpace.from_dict(attrs[_SPACE])
    objectives = tuple(Objective(n, d) for n, d in attrs[_OBJECTIVES])
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    genes = space.genes()
    return SearchResult(study_name, where, space, objectives, [_record(t, space, genes, objectives) for t in done])


# --- helpers ----------------------------------------------------------------------------------------------------------


def _check_options(space: SearchSpace, objectives: tuple[Objective, ...], strategy: str, trials: int, population: int,
                   study_name: str, stale_after: float, poll: float) -> None:
    if not all(callable(getattr(space, m, None)) for m in ("genes", "decode", "to_dict", "arch_from_dict")):
        raise TypeError(f"space must be a SearchSpace (see chipfit.nas.load_space) or a space with genes, decode, "
                        f"to_dict and arch_from_dict (chipfit.nas.codesign.JointSpace), got {type(space).__name__}")
    if not objectives or not all(isinstance(o, Objective) for o in objectives):
        raise ValueError("objectives must be a non-empty sequence of Objective(name, direction)")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives repeat a name: {names}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a whole number >= 1 (the study's total), got {trials!r}")
    if isinstance(population, bool) or not isinstance(population, int) or population < 2:
        raise ValueError(f"population must be a whole number >= 2, got {population!r}")
    if not isinstance(study_name, str) or not study_name:
        raise ValueError(f"study_name must be a non-empty string, got {study_name!r}")
    if not stale_after > 0:
        raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
    if not poll > 0:
        raise ValueError(f"poll must be > 0 seconds, got {poll!r}")
    for name, labels in space.genes():
        if len(set(labels)) != len(labels):
            raise ValueError(f"space {space.name!r}: gene {name} repeats an option label: {list(labels)}")


def _derived_seed(seed: int, present: int) -> int:
    return random.Random(f"{seed}:{present}").randrange(2**31)


def _constraints_of(trial: FrozenTrial) -> list[float]:
    """The sampler's view of a trial's constraints: values in the order of their sorted names."""
    c = trial.user_attrs.get(_CONSTRAINTS) or {}
    return [float(c[k]) for k in sorted(c)]


def _sampler(strategy: str, seed: int, population: int) -> optuna.samplers.BaseSampler:
    import optuna

    if strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, constraints_func=_constraints_of)
    if strategy == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=population, multivariate=True, constant_liar=True, seed=seed,
                                          constraints_func=_constraints_of)
    return optuna.samplers.RandomSampler(seed=seed)


__all__ = ["DIRECTIONS", "STRATEGIES", "Evaluation", "Objective", "SearchResult", "TrialRecord", "infeasible_report",
           "load_search", "open_storage", "run_search"]
