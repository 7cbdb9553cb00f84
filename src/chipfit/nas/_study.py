"""The machinery of one search worker, following the protocol in :mod:`chipfit.nas.evolve`'s docstring.

Opening a storage (SQLite's lock timeout; retrying the race of workers creating a new database's tables), opening a
study and checking its attributes against this run's space and objectives, reading trials back as
:class:`~chipfit.nas.evolve.TrialRecord`, the worker's identity (host, process, PID namespace) and its heartbeat,
stale trials, the Ctrl-C stopper, the progress bar, and :class:`_Search`, the loop of ask, evaluate and tell. Optuna
and rich are imported when a search runs, not with this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import random
import signal
import socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chipfit.nas._records import (
    _ALIVE,
    _ARCH,
    _CONSTRAINTS,
    _DUPLICATE,
    _ERROR,
    _FORMAT,
    _KEY,
    _LIMITS,
    _OBJECTIVES,
    _PINNED,
    _PREFIX,
    _SPACE,
    _SURPLUS,
    _WORKER,
    FORMAT,
    Evaluation,
    Objective,
    SearchResult,
    TrialRecord,
)
from chipfit.nas.space import Arch, SearchSpace

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial
    from rich.console import Console


# --- storage and study ------------------------------------------------------------------------------------------------


def open_storage(storage: str | Path | optuna.storages.BaseStorage | None) -> tuple[Any, str | None]:
    """An Optuna storage and the URL it is known by.

    Args:
        storage: a file path (SQLite in it; its folder is made), a database URL (anything with ``://``), an Optuna
            storage (used as is), or None (a fresh in-memory storage).

    Returns:
        (storage, URL or None for memory).
    """
    import optuna

    if storage is None:
        return optuna.storages.InMemoryStorage(), None
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage, getattr(storage, "url", None) or type(storage).__name__
    if not isinstance(storage, (str, Path)) or not str(storage):
        raise ValueError(f"storage must be a file path, a database URL or None, got {storage!r}")
    text = str(storage)
    if isinstance(storage, str) and "://" in text:
        url = text
    else:
        path = Path(text).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    # SQLite locks the whole file per write: wait for the other processes rather than fail with "database is locked"
    sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60.0}} if sqlite else {"pool_pre_ping": True}
    return _rdb_storage(url, kwargs), url


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """Open an RDB storage; workers starting together on a new database race to create its tables, and the losers
    (a "table exists" or unique-version error) try again once the winner is done."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(8):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            if attempt == 7:
                raise
            time.sleep(0.1 * (attempt + 1) + random.random() * 0.1)
    raise AssertionError("unreachable")


def _open_study(store: Any, where: str | None, study_name: str, space: SearchSpace,
                objectives: tuple[Objective, ...]) -> optuna.Study:
    import optuna

    # the space goes last: a worker that sees it sees the others (several may be creating the study at once)
    want = {_FORMAT: FORMAT, _OBJECTIVES: [[o.name, o.direction] for o in objectives], _SPACE: _json(space.to_dict())}
    study = optuna.create_study(storage=store, study_name=study_name, directions=[o.direction for o in objectives],
                                sampler=optuna.samplers.RandomSampler(), load_if_exists=True)
    have = study.user_attrs
    if _SPACE not in have:
        if study.get_trials(deepcopy=False):
            raise ValueError(f"study {study_name!r} in {where or 'memory'} holds trials but was not made by chipfit's "
                             f"search (no {_SPACE} attribute); give another study_name")
        for k, v in want.items():  # a fresh study (or one another worker is creating): pin what it searches
            study.set_user_attr(k, v)
        have = study.user_attrs
    hint = "give another study_name (or storage) for a different search"
    if have.get(_FORMAT) != FORMAT:
        raise ValueError(f"study {study_name!r} in {where or 'memory'} was written by another version of chipfit's "
                         f"search (format {have.get(_FORMAT)!r}, this one reads {FORMAT}); {hint}")
    if have[_OBJECTIVES] != want[_OBJECTIVES] or [d.name.lower() for d in study.directions] != [
            o.direction for o in objectives]:
        def say(objs: Any) -> str:
            return ", ".join(f"{n} ({d})" for n, d in objs)

        raise ValueError(f"study {study_name!r} in {where or 'memory'} optimizes {say(have[_OBJECTIVES])}; this run "
                         f"asks for {say(want[_OBJECTIVES])}; {hint}")
    if have[_SPACE] != want[_SPACE]:
        old, new = have[_SPACE], want[_SPACE]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"study {study_name!r} in {where or 'memory'} searched space {old.get('name')!r}; this run's "
                         f"space {new.get('name')!r} differs in {', '.join(diff)}; {hint}")
    return study


def _json(x: Any) -> Any:
    """``x`` as it reads back from the storage (attributes are kept as JSON)."""
    return json.loads(json.dumps(x, sort_keys=True))


# --- trials -----------------------------------------------------------------------------------------------------------


def _record(t: FrozenTrial, space: SearchSpace, genes: list[tuple[str, tuple[str, ...]]],
            objectives: tuple[Objective, ...]) -> TrialRecord:
    ua = t.user_attrs
    if isinstance(ua.get(_ARCH), dict):
        arch = space.arch_from_dict(ua[_ARCH])
    else:  # a trial told by hand: read its genes back
        arch = space.decode({n: labels.index(t.params[n]) for n, labels in genes if n in t.params})
    constraints = {str(k): float(v) for k, v in (ua.get(_CONSTRAINTS) or {}).items()}
    values = dict(zip((o.name for o in objectives), map(float, t.values or ()), strict=True))
    extra = {k: v for k, v in ua.items() if not k.startswith(_PREFIX)}
    dup = ua.get(_DUPLICATE)
    return TrialRecord(t.number, arch, values, constraints, all(v <= 0 for v in constraints.values()), extra,
                       dup if isinstance(dup, int) else None)


def _checked(ev: Any, objectives: tuple[Objective, ...]) -> Evaluation:
    """Refuse an evaluation the study could not store faithfully, naming what is wrong."""
    if not isinstance(ev, Evaluation):
        raise TypeError(f"evaluate must return an Evaluation, got {type(ev).__name__}")
    want = [o.name for o in objectives]
    if set(ev.objectives) != set(want):
        raise ValueError(f"evaluate returned objectives {sorted(ev.objectives)}; the search optimizes {want}")
    for kind, d in (("objective", ev.objectives), ("constraint", ev.constraints)):
        for k, v in d.items():
            if not isinstance(k, str) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(f"evaluate returned {kind} {k!r} = {v!r}; a finite number is required (.item() a "
                                 f"tensor)")
    for k in ev.extra:
        if not isinstance(k, str) or k.startswith(_PREFIX):
            raise ValueError(f"Evaluation.extra key {k!r}: keys are strings not starting with {_PREFIX!r} (the "
                             f"search's own)")
    try:
        json.dumps(ev.extra, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"Evaluation.extra must be JSON-able (numbers, strings, lists, dicts): {e}") from None
    return Evaluation({k: float(v) for k, v in ev.objectives.items()},
                      {k: float(v) for k, v in ev.constraints.items()}, dict(ev.extra))


# --- the worker -------------------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host runs (a zombie does not). Off POSIX it cannot be asked safely: assumed alive,
    so the heartbeat decides."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _pid_namespace() -> str:
    """The PID namespace of this process (Linux: ``pid:[4026531836]``), empty where there is none to read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


class _Stop:
    """Ctrl-C during the search: the first asks to stop after the current trial, the second stops now."""

    def __init__(self, console: Console) -> None:
        self.requested = False
        self._event = threading.Event()
        self._console = console
        self._old: Any = None
        self._installed = False

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._old = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._event.set()
        self._console.print("[yellow]Ctrl-C: stopping after the current trial (Ctrl-C again to stop now)[/]")

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)


class _Heartbeat:
    """Refresh a trial's ``chipfit.alive`` while its evaluation runs, so other workers see the process live."""

    def __init__(self, trial: optuna.Trial, every: float) -> None:
        self._trial, self._every = trial, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="chipfit-search-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._trial.set_user_attr(_ALIVE, time.time())
            except Exception:  # the trial was failed elsewhere, or the database is gone: the tell will say so
                return

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Bar:
    """The progress bar (or nothing) and the console for messages."""

    def __init__(self, console: Console, progress: Any, task: Any) -> None:
        self.console, self._progress, self._task = console, progress, task

    def update(self, done: int, note: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, note=note)


@contextlib.contextmanager
def _console_bar(show: bool, title: str, total: int) -> Iterator[_Bar]:
    from rich.console import Console

    console = Console(stderr=True)
    if not show:
        yield _Bar(console, None, None)
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}", markup=False), console=console) as progress:
        yield _Bar(console, progress, progress.add_task(escape(title), total=total, note=""))


class _Search:
    """One worker's loop over the study (see :mod:`chipfit.nas.evolve` for the protocol)."""

    def __init__(self, study: optuna.Study, where: str | None, space: SearchSpace,
                 evaluate: Callable[[Arch], Evaluation], objectives: tuple[Objective, ...], total: int,
                 stale_after: float, poll: float, catch: tuple[type[Exception], ...],
                 on_trial: Callable[[TrialRecord], None] | None) -> None:
        self.study, self.where, self.space, self.evaluate = study, where, space, evaluate
        self.objectives, self.total, self.stale_after, self.poll = objectives, total, stale_after, poll
        self.catch, self.on_trial = catch, on_trial
        self.genes = space.genes()
        self.records: dict[int, TrialRecord] = {}
        self.by_key: dict[str, TrialRecord] = {}
        self.stale_failed: list[int] = []
        self.interrupted = False
        self.host, self.pid, self.pidns = socket.gethostname(), os.getpid(), _pid_namespace()
        self._pinned: dict[str, Any] | None = None

    def result(self) -> SearchResult:
        return SearchResult(self.study.study_name, self.where, self.space, self.objectives,
                            [self.records[n] for n in sorted(self.records)], self.interrupted, self.stale_failed)

    # --- the loop ----------------------------------------------------------------------------------------------

    def run(self, bar: _Bar) -> None:
        with _Stop(bar.console) as stop:
            try:
                while not stop.requested:
                    done, running = self._look()
                    bar.update(done, self._note())
                    if done >= self.total:
                        return
                    if done + running >= self.total:  # the missing trials run elsewhere: wait for them to end
                        bar.update(done, self._note() + f" · waiting for {running} trial(s) running elsewhere")
                        stop.wait(self.poll)
                        continue
                    self._one(bar)
            except KeyboardInterrupt:
                pass
            done, _ = self._look()
            bar.update(done, self._note())
            if done < self.total:
                self.interrupted = True
                if self.where is None:
                    how = "The study was in memory and is gone: give a storage (a file) to make a search resumable."
                else:
                    how = (f"Run the same command again to continue study {self.study.study_name!r} in {self.where} "
                           f"to {self.total}.")
                bar.console.print(f"Interrupted with {done} of {self.total} trials. {how}", markup=False,
                                  highlight=False)

    def _look(self) -> tuple[int, int]:
        """Fail stale trials, take in new complete ones; (complete, running) counts."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        now = time.time()
        running = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE and t.number not in self.records:
                rec = _record(t, self.space, self.genes, self.objectives)
                self.records[t.number] = rec
                self.by_key.setdefault(rec.arch.key(), rec)
            elif t.state == TrialState.RUNNING:
                if self._stale(t, now):
                    try:
                        self.study.tell(t.number, state=TrialState.FAIL)
                        self.stale_failed.append(t.number)
                    except UpdateFinishedTrialError:  # another worker failed it first, or it just ended
                        pass
                    continue
                running += 1
        return len(self.records), running

    def _stale(self, t: FrozenTrial, now: float) -> bool:
        worker = t.user_attrs.get(_WORKER)
        # a process id means something only on the same host and in the same PID namespace (containers may share a
        # host name); elsewhere the heartbeat decides
        if (isinstance(worker, dict) and worker.get("host") == self.host and worker.get("pidns", "") == self.pidns
                and isinstance(worker.get("pid"), int) and worker["pid"] != self.pid
                and not _pid_alive(worker["pid"])):
            return True
        alive = t.user_attrs.get(_ALIVE)
        if not isinstance(alive, (int, float)):  # no heartbeat (not chipfit's): its start, by the local clock
            start = t.datetime_start
            alive = start.timestamp() if isinstance(start, datetime) else now
        return now - float(alive) > self.stale_after

    def _note(self) -> str:
        o = self.objectives[0]
        feasible = [r for r in self.records.values() if r.feasible]
        if not feasible:
            return f"no feasible trial among {len(self.records)}" if self.records else ""
        best = max(feasible, key=lambda r: r.values[o.name] if o.direction == "maximize" else -r.values[o.name])
        return f"best {o.name} {best.values[o.name]:.4g} (trial {best.number}) · {len(feasible)} feasible"

    def _one(self, bar: _Bar) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        trial = self.study.ask()
        told = False
        try:
            trial.set_user_attr(_WORKER, {"host": self.host, "pid": self.pid, "pidns": self.pidns})
            trial.set_user_attr(_ALIVE, time.time())
            if self._surplus(trial.number):
                trial.set_user_attr(_SURPLUS, True)
                self.study.tell(trial, state=TrialState.FAIL)
                told = True
                return
            picks = {name: trial.suggest_categorical(name, labels) for name, labels in self.genes}
            arch = self.space.decode({name: labels.index(picks[name]) for name, labels in self.genes})
            trial.set_user_attr(_ARCH, arch.to_dict())
            trial.set_user_attr(_KEY, arch.key())
            hit = self.by_key.get(arch.key())
            if hit is not None:
                ev = Evaluation(dict(hit.values), dict(hit.constraints), dict(hit.extra))
                trial.set_user_attr(_DUPLICATE, hit.number)
            else:
                try:
                    with _Heartbeat(trial, self.stale_after / 4):
                        ev = _checked(self.evaluate(arch), self.objectives)
                except self.catch as e:
                    trial.set_user_attr(_ERROR, repr(e)[:2000])
                    self.study.tell(trial, state=TrialState.FAIL)
                    told = True
                    bar.console.print(f"trial {trial.number} failed: {e!r}", markup=False, highlight=False)
                    return
                self._pin(ev)
            for k, v in ev.extra.items():
                trial.set_user_attr(k, v)
            trial.set_user_attr(_CONSTRAINTS, ev.constraints)
            frozen = self.study.tell(trial, [ev.objectives[o.name] for o in self.objectives])
            told = True
        except UpdateFinishedTrialError:
            told = True
            bar.console.print(f"trial {trial.number} was marked failed by another worker (no heartbeat for "
                              f"{self.stale_after:g} s); its result is dropped", markup=False)
            return
        finally:
            if not told:
                with contextlib.suppress(Exception):
                    self.study.tell(trial, state=TrialState.FAIL)
        rec = _record(frozen, self.space, self.genes, self.objectives)
        self.records[rec.number] = rec
        self.by_key.setdefault(rec.arch.key(), rec)
        if self.on_trial is not None:
            self.on_trial(rec)

    def _surplus(self, number: int) -> bool:
        """Whether the study's slots are taken by the trials ahead of ``number`` (complete, or running and older)."""
        from optuna.trial import TrialState

        ahead = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if t.state == TrialState.COMPLETE or t.number < number:
                ahead += 1
        return ahead >= self.total

    def _pin(self, ev: Evaluation) -> None:
        """The first evaluation fixes the study's constraint names and budgets; later ones must agree."""
        limits = ev.extra.get(_LIMITS) if isinstance(ev.extra.get(_LIMITS), dict) else {}
        mine = _json({"names": sorted(ev.constraints),
                      "budgets": {k: v.get("budget") for k, v in limits.items() if isinstance(v, dict)}})
        if self._pinned is None:
            pinned = self.study.user_attrs.get(_PINNED)
            if pinned is None:
                self.study.set_user_attr(_PINNED, mine)
                pinned = self.study.user_attrs.get(_PINNED, mine)
            self._pinned = pinned
        name = self.study.study_name
        if mine["names"] != self._pinned["names"]:
            raise ValueError(f"evaluate returned constraints {mine['names']}; study {name!r} was run with "
                             f"{self._pinned['names']}. Its stored feasibility would mean another thing: give "
                             f"another study_name for other constraints")
        if mine["budgets"] != self._pinned["budgets"]:
            raise ValueError(f"evaluate's budgets {mine['budgets']} differ from those study {name!r} was run with "
                             f"({self._pinned['budgets']}); give another study_name for other budgets")
