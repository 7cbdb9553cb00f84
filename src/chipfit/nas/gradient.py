"""The gradient strategy: ProxylessNAS (Cai et al., ICLR 2019), as the QuadraNet paper runs it.

Every slot of the space gets architecture parameters alpha over its candidate ops; p = softmax(alpha). The widths
stay those of a given point (ProxylessNAS searches ops, not widths; give widths with ``--widths`` or search them with
the evolutionary strategy). Training alternates two steps, both binarised so that memory stays at one or two paths:

- **weight step** (a training batch): one op per slot is drawn from p and only that path runs and learns;
- **architecture step** (a held-out batch): two ops per slot are drawn from p, one of them is active (drawn in
  proportion to their renormalised probabilities) and the slot's output is ``sum_k (g_k + q_k - sg(q_k)) o_k``
  where g is the one-hot gate of the active op, q the renormalised probabilities and sg stops the gradient. Its
  value is the active op's output; its gradient reaches alpha as ProxylessNAS's dL/dg_k = <dL/dy, o_k>.

The loss of the architecture step is the cross-entropy times the latency term of every target with a budget T,
``CE x (log E[LAT] / log T)^beta`` (``loss="mul"``; latencies in microseconds so that both logarithms are
positive), or ``CE + lambda (E[LAT] - T) / T`` (``loss="add"``). E[LAT] is the softmax-weighted latency of every
slot's candidates from the target's :class:`~chipfit.nas.latency.LatencyTable` plus the fixed parts (stem,
downsamplers, head), so it is differentiable in alpha and equals the table's latency for a one-hot alpha.
The result is the point of the largest alpha in every slot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from chipfit.nas.space import Arch
from chipfit.nas.supernet import Supernet

LOSSES = ("mul", "add")


@dataclass(frozen=True)
class GradientConfig:
    """Options of one gradient search.

    Attributes:
        steps: alternations of a weight step and an architecture step.
        batch_size: images per step.
        weight_lr, alpha_lr: learning rates of the weights (AdamW) and of alpha (Adam, as ProxylessNAS).
        loss: ``mul`` (CE x (log E[LAT] / log T)^beta) or ``add`` (CE + lambda (E[LAT] - T) / T).
        beta, lam: the exponent of ``mul`` and the weight of ``add``.
        warmup_steps: weight steps with uniform paths before alpha starts to learn.
        seed: the path draws and the data order.
    """

    steps: int = 300
    batch_size: int = 128
    weight_lr: float = 1e-3
    alpha_lr: float = 6e-3
    loss: str = "mul"
    beta: float = 0.6
    lam: float = 1.0
    warmup_steps: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"--grad-loss {self.loss!r}: must be one of {', '.join(LOSSES)}")
        if self.steps < 1 or self.batch_size < 1 or self.warmup_steps < 0:
            raise ValueError("--grad-steps and the batch size must be >= 1 and the warm-up >= 0")
        if not (self.alpha_lr > 0 and self.weight_lr >= 0 and self.beta >= 0 and self.lam >= 0):
            raise ValueError("the learning rates, beta and lambda must be >= 0 (alpha's learning rate > 0)")


@dataclass
class GradientResult:
    """What a gradient search found: the point, its alpha and probabilities, and the run's history."""

    arch: Arch
    alphas: list[list[list[float]]]
    probs: list[list[list[float]]]
    history: list[dict[str, float]] = field(default_factory=list)


def latency_term(expected_s: torch.Tensor, budget_s: float, cfg: GradientConfig) -> torch.Tensor:
    """The factor (``mul``) or summand (``add``) that one target's expected latency adds to the loss."""
    if cfg.loss == "mul":
        e_us, t_us = expected_s * 1e6, budget_s * 1e6
        if t_us <= 1.0:
            raise ValueError(f"budget {budget_s * 1e6:.3g} us: the multiplicative loss needs a budget above 1 us "
                             "(log T > 0); use --grad-loss add")
        return (torch.log(e_us.clamp_min(1.0 + 1e-6)) / math.log(t_us)) ** cfg.beta
    return cfg.lam * (expected_s - budget_s) / budget_s


class _Alphas(torch.nn.Module):
    """alpha per slot, zero-initialised (uniform p). Slots with a single candidate get none."""

    def __init__(self, net: Supernet):
        super().__init__()
        self.shape = [[len(st.slot_ops(j)) for j in range(st.slots)] for st in net.space.stages]
        self.params = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(n)) for stage in self.shape for n in stage)

    def per_slot(self) -> list[list[torch.Tensor]]:
        it = iter(self.params)
        return [[next(it) for _ in stage] for stage in self.shape]

    def probs(self) -> list[list[torch.Tensor]]:
        return [[F.softmax(a, 0) for a in stage] for stage in self.per_slot()]


def _draw(p: torch.Tensor, n: int, g: torch.Generator) -> list[int]:
    return torch.multinomial(p.detach(), min(n, len(p)), replacement=False, generator=g).tolist()


def gradient_search(net: Supernet, data: Any, widths: Arch, targets: Sequence[tuple[str, float, Any]],
                    cfg: GradientConfig | None = None, *,
                    progress: Callable[[int, dict[str, float]], None] | None = None) -> GradientResult:
    """Search the ops of ``net``'s space at the widths (and resolution) of ``widths``.

    Args:
        net: a (trained) supernet; its weights go on learning in the weight steps.
        data: the data bundle; weight steps read ``train``, architecture steps ``val``.
        widths: a point whose widths and resolution are kept; its ops are ignored.
        targets: ``(label, budget_s, table)`` per target with a latency budget; ``table.expected(arch, probs)``
            gives E[LAT] in seconds (:class:`~chipfit.nas.latency.LatencyTable`).
        cfg: the options.
        progress: called after every step with the step and the latest figures.
    """
    cfg = cfg or GradientConfig()
    space = net.space
    space.check(widths)
    alphas = _Alphas(net)
    opt_w = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=cfg.weight_lr,
                              weight_decay=0.0)
    opt_a = torch.optim.Adam(alphas.parameters(), lr=cfg.alpha_lr, betas=(0.0, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(cfg.seed)
    train_it = _forever(data, "train", cfg.batch_size, g, train=True)
    val_it = _forever(data, "val", cfg.batch_size, g, train=True)
    history: list[dict[str, float]] = []
    net.train()
    for step in range(cfg.steps):
        probs = alphas.probs()
        # weight step: one path drawn from p (uniform while warming up)
        x, y = next(train_it)
        ops = [[_draw(torch.ones_like(p) if step < cfg.warmup_steps else p, 1, g)[0] for p in stage]
               for stage in probs]
        arch = Arch(widths.widths, tuple(tuple(s) for s in ops), widths.resolution)
        if cfg.weight_lr > 0:
            net.set_arch(arch)
            loss_w = F.cross_entropy(net(x), y)
            opt_w.zero_grad(set_to_none=True)
            loss_w.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt_w.step()
        if step < cfg.warmup_steps:
            continue
        # architecture step: two paths per slot, one active, gradients to alpha through the renormalised gates
        x, y = next(val_it)
        logits, active = _two_path_forward(net, x, widths, probs, g)
        ce = F.cross_entropy(logits, y)
        loss = ce
        rec: dict[str, float] = {"step": step, "ce": float(ce.detach())}
        for label, budget, table in targets:
            exp = table.expected(widths, probs)
            term = latency_term(exp, budget, cfg)
            loss = loss * term if cfg.loss == "mul" else loss + term
            rec[f"{label} E[latency_s]"] = float(exp.detach())
        opt_a.zero_grad(set_to_none=True)
        loss.backward()
        opt_a.step()
        net.zero_grad(set_to_none=True)
        rec["loss"] = float(loss.detach())
        history.append(rec)
        if progress is not None:
            progress(step, rec)
    net.set_arch(None)
    final = [[int(torch.argmax(a)) for a in stage] for stage in alphas.per_slot()]
    arch = Arch(widths.widths, tuple(tuple(s) for s in final), widths.resolution)
    return GradientResult(arch, [[a.detach().tolist() for a in s] for s in alphas.per_slot()],
                          [[p.detach().tolist() for p in s] for s in alphas.probs()], history)


def _two_path_forward(net: Supernet, x: torch.Tensor, widths: Arch, probs: list[list[torch.Tensor]],
                      g: torch.Generator) -> tuple[torch.Tensor, list[list[int]]]:
    space = net.space
    ops_all = [[st.slot_ops(j) for j in range(st.slots)] for st in space.stages]
    active: list[list[int]] = []
    h = net.stem_forward(x, widths)
    for i in range(len(space.stages)):
        h = net.enter_stage(i, h, widths)
        chosen: list[int] = []
        for j, p in enumerate(probs[i]):
            pair = _draw(p, 2, g)
            q = F.softmax(torch.log(p[pair] + 1e-12), 0)  # the pair's renormalised probabilities
            k = pair[int(torch.multinomial(q.detach(), 1, generator=g))]
            outs = [net.slot_forward(i, j, ops_all[i][j][c], h, widths) for c in pair]
            gates = torch.tensor([1.0 if c == k else 0.0 for c in pair])
            h = sum((gates[n] + q[n] - q[n].detach()) * outs[n] for n in range(len(pair)))
            chosen.append(k)
        active.append(chosen)
    return net.head_forward(h), active


def _forever(data: Any, split: str, batch_size: int, g: torch.Generator, train: bool):
    batch_size = min(batch_size, len(getattr(data, split)))  # a small validation split: one batch of it all
    while True:
        n = 0
        for batch in data.batches(split, batch_size, train=train, generator=g):
            n += 1
            yield batch
        if not n:
            raise ValueError(f"the {split!r} split of {getattr(data, 'name', 'the data')} holds no images")


__all__ = ["GradientConfig", "GradientResult", "LOSSES", "gradient_search", "latency_term"]
