"""The training engine: ``fit(model, data, TrainConfig(...)) -> TrainResult``.

AdamW (weight decay on weight matrices only, never on norms, biases or layer scales), cosine learning rate with
linear warm-up (per step), label smoothing, gradient clipping, optional EMA of the weights. Seeded: the same seed
gives the same curve on the same machine. A checkpoint is written atomically every epoch and on Ctrl-C (with the
position inside the epoch), and ``resume=True`` continues exactly where the last checkpoint stopped. Under
``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel over gloo; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn

from chipfit.data import DataBundle
from chipfit.train.checkpoint import check_spec, load_checkpoint, model_spec, save_checkpoint
from chipfit.train.config import TrainConfig
from chipfit.train.task import ClassifyTask, Task, evaluate, is_dist, rank_world

__all__ = ["TrainHooks", "TrainResult", "evaluate", "fit", "lr_at", "param_groups"]


@dataclass
class TrainResult:
    """What a run produced: final metrics, the per-epoch history and where the files are.

    ``best_val_accuracy``, ``val_accuracy`` and ``test_accuracy`` hold the task's score, named by ``score``:
    top-1 accuracy for a classifier, mIoU for a segmenter, mAP@0.5 for a detector; ``test_metrics`` has the whole
    test evaluation (per class, per image).
    """

    model: nn.Module
    best_val_accuracy: float
    val_accuracy: float
    test_accuracy: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    out: Path | None = None
    interrupted: bool = False
    score: str = "accuracy"
    test_metrics: dict[str, Any] | None = None


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay only tensors of 2+ dimensions (conv/linear weights); norms, biases and layer scales are 1-d."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_at(step: int, total: int, warmup: int, base: float, min_ratio: float) -> float:
    """Linear warm-up to ``base`` over ``warmup`` steps, then cosine down to ``base * min_ratio``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


class _Ema:
    """Exponential moving average of the weights (and a copy of the buffers)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


@dataclass
class TrainHooks:
    """What compression adds to a training run, without a second training loop.

    Attributes:
        extra_loss: ``(x, logits, y) -> tensor`` added to the cross-entropy (distillation); called after the forward.
        after_step: ``(step, total_steps) -> None`` after every optimiser step (pruning masks and schedules).
        modules: extra trainable modules (distillation adapters): their parameters join the optimiser and their
            state the checkpoint, so a resumed run continues them too.
        close: ``() -> None`` that takes whatever the hooks attached off the networks; the caller runs it once
            training is over (``fit`` does not, so that the hooks may serve several runs).
    """

    extra_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    after_step: Callable[[int, int], None] | None = None
    modules: nn.Module | None = None
    close: Callable[[], None] | None = None


def fit(model: nn.Module, data: DataBundle | Any, cfg: TrainConfig | None = None,
        hooks: TrainHooks | None = None, task: Task | None = None) -> TrainResult:
    """Train ``model`` on ``data``; see the module docstring for what it does and writes.

    Files in ``cfg.out``: ``last.pt`` (every epoch and on Ctrl-C), ``best.pt`` (best validation score),
    ``metrics.jsonl`` (one line per epoch). The test set is evaluated once, at the end. ``hooks`` add a loss term,
    a per-step callback and extra trainable modules (see :class:`TrainHooks`). ``task`` says what is learnt
    (default: classification with ``cfg.label_smoothing``; segmentation and detection: :mod:`chipfit.train.dense`).
    """
    cfg = cfg or TrainConfig()
    task = task or ClassifyTask(cfg.label_smoothing)
    run = _start_run(model, data, cfg, hooks or TrainHooks(), task)
    if cfg.resume:
        _restore(run)
    epoch_gen_state = run.gen.get_state() if run.pos.start_batch else None
    interrupted = False
    stop = {"flag": False}
    at = _Interruption()
    with _stop_on_signals(stop):
        t0 = time.perf_counter()
        progress = _progress(cfg.progress and run.rank == 0)
        try:
            with progress:
                while run.pos.epoch < cfg.epochs:
                    run.net.train()
                    at.rng = epoch_gen_state if epoch_gen_state is not None else run.gen.get_state()
                    run.gen.set_state(at.rng)
                    epoch_gen_state = None
                    stats = _train_epoch(run, progress, stop, at)
                    _end_epoch(run, progress, stats)
        except KeyboardInterrupt:
            interrupted = True
            if run.rank == 0 and run.out:
                batch = at.batch + 1 if at.batch is not None else 0
                save_checkpoint(run.out / "last.pt", _state(run, batch, at.rng))
                progress.console.print(f"interrupted: saved {run.out / 'last.pt'}; continue with --resume",
                                       highlight=False)
    return _finish(run, interrupted, time.perf_counter() - t0)


@dataclass
class _Position:
    """Where a run stands: the epoch under way and the batch it starts at, optimiser steps taken, the best validation
    accuracy so far (-1 before the first epoch) and one history record per finished epoch."""

    epoch: int = 0
    start_batch: int = 0
    step: int = 0
    best: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Run:
    """What one ``fit`` call trains, where it is, and where it writes."""

    model: nn.Module
    net: nn.Module  # the model, wrapped in DistributedDataParallel when there are several processes
    data: DataBundle
    cfg: TrainConfig
    hooks: TrainHooks
    task: Task
    opt: torch.optim.Optimizer
    ema: _Ema | None
    spec: str
    gen: torch.Generator  # the data order
    out: Path | None
    rank: int
    world: int
    steps_per_epoch: int
    total: int
    warmup: int
    pos: _Position


@dataclass
class _Interruption:
    """What a checkpoint on Ctrl-C needs: the last batch started (None before any) and the data order's state at the
    start of the epoch under way."""

    batch: int | None = None
    rng: torch.Tensor | None = None


@dataclass
class _EpochStats:
    """Running totals of one epoch's training batches (the task's figures, summed)."""

    totals: dict[str, float]
    started: float  # perf_counter at the start of the epoch

    @property
    def seen(self) -> int:
        return int(self.totals.get("n", 0))


def _start_run(model: nn.Module, data: DataBundle, cfg: TrainConfig, hooks: TrainHooks, task: Task) -> _Run:
    """Join the processes, seed, check the model takes the data, and build the optimiser, the schedule's lengths,
    the EMA and the output folder (in this order: it fixes what the seeded RNGs are consumed by)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_dist():
        dist.init_process_group("gloo")  # launched by torchrun: one process per rank, CPU collectives
    rank, world = rank_world()
    out = Path(cfg.out) if cfg.out else None
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    task.check_fits(model, data)
    # a model that trains one path per step (a supernet) says so: DDP then expects weights without gradients
    unused = bool(getattr(model, "find_unused_parameters", False))
    net: nn.Module = (nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused) if world > 1
                      else model)
    opt = _optimiser(model, cfg, hooks)
    steps_per_epoch = _steps_per_epoch(data, cfg, world)
    ema = _Ema(model, cfg.ema_decay) if cfg.ema_decay else None
    spec = model_spec(model, cfg.model_name)
    if out and rank == 0:
        _check_out(out, cfg)
        out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(cfg.seed)
    return _Run(model, net, data, cfg, hooks, task, opt, ema, spec, gen, out, rank, world, steps_per_epoch,
                total=steps_per_epoch * cfg.epochs, warmup=int(round(cfg.warmup_epochs * steps_per_epoch)),
                pos=_Position())


def _check_out(out: Path, cfg: TrainConfig) -> None:
    """A run never writes over files it did not make: an ``out`` that holds anything needs --resume or --force."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder: choose another --out")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held and not cfg.resume and not cfg.force:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        what = "a run (last.pt): continue it with --resume, " if "last.pt" in held else f"files ({shown}): "
        raise FileExistsError(f"{out} already holds {what}start afresh over them with --force, or choose another "
                              "--out")


# What defines a run: resuming with another value of any of these would silently continue a different run.
_RUN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr", "weight_decay": "--weight-decay",
                "warmup_epochs": "--warmup-epochs", "min_lr_ratio": "min_lr_ratio", "label_smoothing":
                "--label-smoothing", "clip_grad": "clip_grad", "ema_decay": "--ema", "seed": "--seed",
                "max_steps_per_epoch": "max_steps_per_epoch"}


def _check_same_run(st: dict[str, Any], cfg: TrainConfig, data: DataBundle, path: Path) -> None:
    """Refuse to resume with other options or other data than the run was started with, naming what differs."""
    saved = json.loads(st.get("train_config", "{}"))
    now = cfg.to_dict()
    diff = [f"{flag} {saved[k]!r} -> {now[k]!r}" for k, flag in _RUN_OPTIONS.items()
            if k in saved and saved[k] != now[k]]
    if "classes" in st and json.loads(st["classes"]) != list(data.classes):
        diff.append("--data: other classes")
    if "norm" in st and json.loads(st["norm"]) != {"mean": data.mean, "std": data.std}:
        diff.append("--data: other images (their mean and std differ)")
    if diff:
        raise ValueError(f"--resume: {path} was started with other options ({'; '.join(diff)}); resume with the "
                         "options it was started with, or start a new run (another --out, or --force)")


def _optimiser(model: nn.Module, cfg: TrainConfig, hooks: TrainHooks) -> torch.optim.Optimizer:
    """AdamW over the model's parameters and the hooks' extra modules, each split into decayed and not."""
    groups = param_groups(model, cfg.weight_decay)
    if hooks.modules is not None:
        for g, extra in zip(groups, param_groups(hooks.modules, cfg.weight_decay), strict=True):
            g["params"] = g["params"] + extra["params"]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _steps_per_epoch(data: DataBundle, cfg: TrainConfig, world: int) -> int:
    steps = len(data.train) // world // cfg.batch_size
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(f"batch size {cfg.batch_size} x {world} process(es) exceeds the {len(data.train)} training "
                         "images: lower --batch-size")
    return steps


def _restore(run: _Run) -> None:
    """Continue from ``last.pt``: weights, optimiser, position, every RNG, the history, the EMA and hook modules."""
    out = run.out
    if out is None or not (out / "last.pt").is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {out / 'last.pt' if out else '(no --out given)'}")
    st = load_checkpoint(out / "last.pt")
    check_spec(st["model_spec"], run.model, run.cfg.model_name, out / "last.pt")
    _check_same_run(st, run.cfg, run.data, out / "last.pt")
    run.model.load_state_dict(st["model"])
    run.opt.load_state_dict(st["optimizer"])
    run.pos = _Position(int(st["epoch"]), int(st["batch"]), int(st["step"]), float(st["best"]),
                        json.loads(st["history"]))
    run.gen.set_state(st["data_rng"])
    torch.set_rng_state(st["torch_rng"])
    random.setstate(_py_state(st["py_rng"]))
    if run.ema and "ema" in st:
        run.ema.shadow = st["ema"]
    if run.hooks.modules is not None and "hook_modules" in st:
        run.hooks.modules.load_state_dict(st["hook_modules"])


def _state(run: _Run, batch_in_epoch: int, epoch_start_rng: torch.Tensor | None) -> dict[str, Any]:
    """A checkpoint of the run as it stands, to continue at ``batch_in_epoch`` of the current epoch."""
    pos, data = run.pos, run.data
    s = {"model_spec": run.spec, "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
         "epoch": pos.epoch, "batch": batch_in_epoch, "step": pos.step, "best": pos.best,
         "data_rng": epoch_start_rng, "torch_rng": torch.get_rng_state(), "py_rng": _py_state_out(random.getstate()),
         "history": json.dumps(pos.history), "train_config": json.dumps(run.cfg.to_dict()),
         "classes": json.dumps(data.classes), "norm": json.dumps({"mean": data.mean, "std": data.std})}
    if run.ema:
        s["ema"] = run.ema.shadow
    if run.hooks.modules is not None:
        s["hook_modules"] = run.hooks.modules.state_dict()
    return s


@contextlib.contextmanager
def _stop_on_signals(stop: dict[str, bool]):
    """SIGINT and SIGTERM set ``stop["flag"]`` (the epoch loop checks it after each step) until the block ends."""
    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        stop["flag"] = True

    old_handlers = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not in the main thread: no handler, no checkpoint on Ctrl-C
            old_handlers[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, h in old_handlers.items():
            signal.signal(sig, h)


def _train_epoch(run: _Run, progress: Any, stop: dict[str, bool], at: _Interruption) -> _EpochStats:
    """The training batches of one epoch, from ``run.pos.start_batch``; raises KeyboardInterrupt after the step
    during which a stop signal came."""
    cfg, pos, hooks, model, opt = run.cfg, run.pos, run.hooks, run.model, run.opt
    task = progress.add_task(f"epoch {pos.epoch + 1}/{cfg.epochs}", total=run.steps_per_epoch,
                             completed=pos.start_batch, stats="")
    st = _EpochStats({}, time.perf_counter())
    batches = run.data.batches("train", cfg.batch_size, train=True, generator=run.gen, rank=run.rank,
                               world=run.world, start=pos.start_batch)
    for b, (x, y) in enumerate(batches, start=pos.start_batch):
        at.batch = b
        if b >= run.steps_per_epoch:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(pos.step, run.total, run.warmup, cfg.lr, cfg.min_lr_ratio)
        logits = run.net(x)
        loss, figures = run.task.loss(logits, y)
        if hooks.extra_loss is not None:
            loss = loss + hooks.extra_loss(x, logits, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {pos.epoch + 1}, step {pos.step}: "
                                     "lower --lr or raise clipping")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip_grad:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        opt.step()
        if run.ema:
            run.ema.update(model)
        pos.step += 1
        if hooks.after_step is not None:
            hooks.after_step(pos.step, run.total)
        for k, v in figures.items():
            st.totals[k] = st.totals.get(k, 0) + v
        ips = st.seen * run.world / max(time.perf_counter() - st.started, 1e-9)
        shown = " ".join(f"{k.removeprefix('train_')} {v:.3f}" for k, v in run.task.train_figures(st.totals).items())
        progress.update(task, advance=1, stats=f"{shown} {ips:.0f} img/s")
        if stop["flag"]:
            raise KeyboardInterrupt
    progress.remove_task(task)
    return st


def _end_epoch(run: _Run, progress: Any, st: _EpochStats) -> None:
    """Validate, record the epoch and move to the next; rank 0 prints it and writes ``metrics.jsonl``, ``last.pt``
    and, on a new best validation accuracy, ``best.pt``."""
    pos, cfg, out = run.pos, run.cfg, run.out
    val = run.task.evaluate(ema_model(run.model, run.ema) if run.ema else run.model, run.data, "val")
    score = float(val[run.task.score])
    rec = {"epoch": pos.epoch + 1, **run.task.train_figures(st.totals), **run.task.val_figures(val),
           "lr": run.opt.param_groups[0]["lr"], "seconds": time.perf_counter() - st.started,
           "images_per_s": st.seen * run.world / max(time.perf_counter() - st.started, 1e-9)}
    pos.history.append(rec)
    pos.epoch += 1
    pos.start_batch = 0
    if run.rank == 0:
        if progress.console.is_terminal or cfg.progress:
            train_more = "".join(f" train {v:.4f}" for k, v in rec.items() if k == "train_acc")
            progress.console.print(
                f"epoch {rec['epoch']}: loss {rec['train_loss']:.4f}{train_more} val {run.task.score} {score:.4f} "
                f"({rec['images_per_s']:.0f} img/s)", highlight=False)
        if out:
            # rewritten from the history each epoch, so a run killed and resumed never repeats a line
            tmp = out / ".metrics.jsonl.tmp"
            tmp.write_text("".join(json.dumps(h) + "\n" for h in pos.history))
            os.replace(tmp, out / "metrics.jsonl")
            save_checkpoint(out / "last.pt", _state(run, 0, run.gen.get_state()))
            if score > pos.best:
                pos.best = score
                save_checkpoint(out / "best.pt", _state(run, 0, run.gen.get_state()))
    pos.best = max(pos.best, score)


def _finish(run: _Run, interrupted: bool, train_seconds: float) -> TrainResult:
    """Agree on the buffers across processes, take the EMA weights and test once (unless interrupted)."""
    model = run.model
    if is_dist():  # running statistics (BatchNorm) drift per rank after the last step: take rank 0's everywhere
        for buf in model.buffers():
            dist.broadcast(buf, 0)
    if run.ema and not interrupted:
        model.load_state_dict(run.ema.shadow)
    test_acc, test = None, None
    history = run.pos.history
    final_val = history[-1][run.task.record_key] if history else 0.0
    if not interrupted:
        test = run.task.evaluate(model, run.data, "test")
        test_acc = float(test[run.task.score])
    return TrainResult(model, run.pos.best, final_val, test_acc, history, train_seconds, run.out, interrupted,
                       run.task.score, test)


def ema_model(model: nn.Module, ema: _Ema) -> nn.Module:
    """A copy of ``model`` holding the EMA weights (for validation)."""
    import copy

    m = copy.deepcopy(model)
    m.load_state_dict(ema.shadow)
    return m


def _py_state_out(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _py_state(saved: list) -> tuple:
    return (saved[0], tuple(saved[1]), saved[2])


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    TextColumn("{task.fields[stats]}"), disable=not enabled, transient=True)
