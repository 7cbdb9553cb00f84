"""Rebuild one kernel alone as a small PyTorch module, from the ``spec`` that :mod:`chipfit.deploy.kernels` keeps.

The predictor measures kernels in isolation (nn-Meter's method), so each kernel type needs a module that exports to
the same ONNX pattern the network's own export holds: a conv with its batch norm, activation, layer scale and residual
add; a linear layer; a layer norm over the last dimension; attention with its mask; a transpose; a concat. A spec this
file cannot rebuild raises :class:`UnknownKernel`, and the kernel stays unmeasured (listed, never costed as zero).
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTS = {"relu": F.relu, "hardtanh": lambda x: F.hardtanh(x, 0.0, 6.0), "gelu": F.gelu, "sigmoid": torch.sigmoid,
        "silu": F.silu, "tanh": torch.tanh, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid,
        "leaky_relu": F.leaky_relu, "elu": F.elu}


class UnknownKernel(ValueError):
    """A kernel that no builder here rebuilds."""


def _t(shape: list[int]) -> torch.Tensor:
    return torch.randn(*[int(d) for d in shape])


class Chain(nn.Module):
    """A head op then its followers, each reading the running tensor (reshaped to the shape it had in the network:
    views between chained ops are free) and, for ``.w`` / ``.a`` followers, a weight or a further input."""

    def __init__(self, head: nn.Module, followers: list[tuple[str, list[int], Any]]):
        super().__init__()
        self.head = head
        self.kinds = [k for k, _, _ in followers]
        self.shapes = [tuple(x) for _, x, _ in followers]
        self.params = nn.ParameterList([nn.Parameter(p) if isinstance(p, torch.Tensor) else nn.Parameter(_t([1]))
                                        for _, _, p in followers])
        self.mods = nn.ModuleList([p if isinstance(p, nn.Module) else nn.Identity() for _, _, p in followers])

    def forward(self, x: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        y = self.head(x)
        it = iter(extra)
        for kind, shape, p, m in zip(self.kinds, self.shapes, self.params, self.mods, strict=True):
            if shape and tuple(y.shape) != shape:
                perm = _perm(list(y.shape), list(shape)) if sorted(y.shape) == sorted(shape) else None
                y = y.permute(*perm) if perm else y.reshape(shape)
            base, _, arg = kind.partition(".")
            if base == "batch_norm":
                y = m(y)
            elif base in ACTS:
                y = ACTS[base](y)
            elif base in ("add", "mul", "sub", "div"):
                other = next(it) if arg == "a" else p
                y = {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}[base](y, other)
            else:
                raise UnknownKernel(f"follower {kind!r}")
        return y


def _followers(spec: dict[str, Any], channels: int) -> tuple[list[tuple[str, list[int], Any]], list]:
    parts = spec["chain"].split("|")[1:]
    steps = spec.get("steps") or [{"x": [], "others": []} for _ in parts]
    fol, extra = [], []
    for kind, step in zip(parts, steps, strict=False):
        base, _, arg = kind.partition(".")
        x = step.get("x", [])
        if base == "batch_norm":
            bn = nn.BatchNorm2d(channels)
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            fol.append((kind, x, bn))
        elif base in ACTS:
            fol.append((kind, x, None))
        elif base in ("add", "mul", "sub", "div"):
            others = step.get("others", [])
            if arg == "a":
                extra.append(next((s for s, r in others if r in ("act", "input")), x))
                fol.append((kind, x, None))
            else:
                fol.append((kind, x, _t(next((s for s, r in others if r in ("weight", "const")), [1]))))
        else:
            raise UnknownKernel(f"follower {kind!r} of {spec['chain']}")
    return fol, extra


class Fn(nn.Module):
    def __init__(self, fn, *params: torch.Tensor):
        super().__init__()
        self.fn = fn
        self.ps = nn.ParameterList([nn.Parameter(p) for p in params])

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.fn(*xs, *self.ps)


def _perm(a: list[int], b: list[int]) -> tuple[int, ...] | None:
    """A permutation taking shape ``a`` to shape ``b`` (the first found; dims of equal size are interchangeable)."""
    if len(a) <= 8:
        for p in itertools.permutations(range(len(a))):
            if [a[i] for i in p] == list(b) and list(p) != list(range(len(a))):
                return p
    return None


def build(spec: dict[str, Any]) -> tuple[nn.Module, list[list[int]]]:
    """(module in eval mode, input shapes) that runs the kernel ``spec`` describes alone."""
    chain = spec["chain"]
    head = chain.split("|")[0]
    x, out = [int(d) for d in spec["input"]], [int(d) for d in spec["output"]]
    ws = spec.get("weights", [])
    if head == "conv":
        w = spec["weight"]
        conv = nn.Conv2d(x[1], w[0], tuple(w[2:]), tuple(spec["stride"]), tuple(spec["padding"]),
                         groups=spec["groups"], bias=spec.get("bias", False))
        fol, extra = _followers(spec, w[0])
        mod, shapes = Chain(conv, fol), [x, *extra]
    elif head == "linear":
        w = spec["weight"]
        k_in, k_out = (w[1], w[0]) if spec.get("transposed") else (w[0], w[1])
        fol, extra = _followers(spec, k_out)
        mod, shapes = Chain(nn.Linear(k_in, k_out, bias=spec.get("bias", True)), fol), [x, *extra]
    elif chain == "layer_norm":
        c = x[-1]
        mod, shapes = Fn(lambda a, g, b: F.layer_norm(a, (c,), g, b), _t([c]), _t([c])), [x]
    elif chain == "batch_norm":
        bn = nn.BatchNorm2d(x[1])
        bn.running_var.uniform_(0.5, 2.0)
        mod, shapes = bn, [x]
    elif chain in ACTS:
        mod, shapes = Fn(ACTS[chain]), [x]
    elif chain.startswith(("add", "mul", "sub", "div")) and chain.split(".")[0] in ("add", "mul", "sub", "div"):
        op = {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}[chain.split(".")[0]]
        acts = spec.get("inputs") or [x]
        if len(acts) >= 2:
            mod, shapes = Fn(op), acts[:2]
        else:
            mod, shapes = Fn(op, _t(ws[0] if ws else [1])), [acts[0]]
    elif chain == "mean":
        dims = tuple(range(len(out), len(x))) if x[:len(out)] == out else tuple(
            i for i, (a, b) in enumerate(zip(x, out, strict=False)) if a != b)
        keep = len(out) == len(x)
        mod, shapes = Fn(lambda a: a.mean(dims, keepdim=keep)), [x]
    elif chain == "max_pool":
        k = tuple(spec.get("kernel") or (3, 3))
        s = max(1, round(x[2] / max(out[2], 1)))
        pad = max(0, ((out[2] - 1) * s + k[0] - x[2] + 1) // 2)
        mod, shapes = Fn(lambda a: F.max_pool2d(a, k, s, min(pad, k[0] // 2))), [x]
    elif chain == "attention":
        acts = spec["inputs"]
        if spec.get("mask") and ws:
            mask = _t(ws[0])
            mod, shapes = Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m), mask), acts[:3]
        else:
            mod, shapes = Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v)), acts[:3]
    elif chain == "matmul":
        mod, shapes = Fn(torch.matmul), spec["inputs"][:2]
    elif chain == "transpose" or spec.get("target") in ("aten.clone.default", "aten.contiguous.default"):
        perm = (_perm(x, out) if sorted(x) == sorted(out) else None) or tuple(reversed(range(len(x))))
        mod, shapes = Fn(lambda a: a.permute(*perm).contiguous()), [x]
    elif chain == "cat" or spec.get("target") == "aten.cat.default":
        acts = spec.get("inputs") or [x]
        dim = next((i for i in range(len(out)) if any(a[i] != out[i] for a in acts)), 1)
        mod, shapes = Fn(lambda *a: torch.cat(a, dim)), acts
    elif spec.get("target") in ("aten.split.Tensor", "aten.split_with_sizes.default", "aten.unbind.int"):
        if len(out) < len(x):  # unbind: the dimension whose removal leaves the output's shape
            dim = next((i for i in range(len(x)) if x[:i] + x[i + 1:] == out), 0)
            mod, shapes = Fn(lambda a: torch.unbind(a, dim)), [x]
        else:
            dim = next((i for i in range(len(x)) if x[i] != out[i]), 0)
            mod, shapes = Fn(lambda a: torch.split(a, max(out[dim], 1), dim)), [x]
    elif spec.get("target") == "aten.roll.default" and len(x) >= 3:
        # a shifted window's roll: half a window's shift in both map dimensions (the shift sets no cost: each
        # element is copied once whatever it is)
        dims = (1, 2) if len(x) == 4 else (len(x) - 2,)
        shifts = tuple(max(1, x[d] // 4) for d in dims)
        mod, shapes = Fn(lambda a: torch.roll(a, shifts, dims)), [x]
    else:
        raise UnknownKernel(f"no isolated builder for kernel {chain!r} ({spec.get('target', '?')})")
    return mod.eval(), shapes


class Tail(nn.Module):
    """The kernel, then the L2 norm of its (first) output: the kernel's output becomes an intermediate tensor, which a
    runtime keeps in its arena as inside a network, rather than a graph output it allocates on every call. The norm
    exports as ``ReduceL2`` (:data:`TAIL_OPS`), a node no kernel type uses, left out of the kernel's time."""

    def __init__(self, kernel: nn.Module):
        super().__init__()
        self.kernel = kernel

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        y = self.kernel(*xs)
        return torch.linalg.vector_norm(y[0] if isinstance(y, (tuple, list)) else y)


TAIL_OPS = ("ReduceL2",)


def perturb(spec: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A neighbour of ``spec``: the same kernel on a map or width scaled by 0.5-2 (for adaptive sampling)."""
    s = {k: (list(v) if isinstance(v, list) else v) for k, v in spec.items()}
    head = s["chain"].split("|")[0]
    f = rng.choice((0.5, 0.75, 1.5, 2.0))
    if head == "conv" and len(s["input"]) == 4:
        side = max(int(round(s["input"][2] * f)), s["weight"][2])
        st = s["stride"][0]
        o = (side + 2 * s["padding"][0] - s["weight"][2]) // st + 1
        if o < 1:
            return spec
        s["input"] = [s["input"][0], s["input"][1], side, side]
        s["output"] = [s["output"][0], s["output"][1], o, o]
        s["inputs"] = [s["input"]]
        return s
    # other kernels: scale the leading spatial/token dimension of every activation shape alike
    def scale(shape: list[int]) -> list[int]:
        if len(shape) < 2:
            return shape
        i = 2 if len(shape) == 4 else len(shape) - 2
        return [*shape[:i], max(1, int(round(shape[i] * f))), *shape[i + 1:]]
    if head in ("layer_norm", "gelu", "relu", "hardtanh", "sigmoid", "silu", "add", "mul"):
        s["input"], s["output"] = scale(s["input"]), scale(s["output"])
        s["inputs"] = [scale(a) for a in s.get("inputs", [])]
        if s.get("weights") and head in ("add", "mul"):
            return spec  # a weight broadcast may no longer fit the scaled map
        return s
    return spec
